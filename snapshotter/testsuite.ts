// The one conformance suite every snapshotter runs (containerd's snapshots/testsuite), as jest
// tests: call `snapshotterSuite('overlay', (root) => OverlaySnapshotter.open(root))` from a test
// file. Each test gets its own temporary directory (a snapshotter root and a work area); every
// mount made through the test context is unmounted in afterEach, also when the test failed.
//
// Runs as root: the tests mount what the snapshotter returns, with mountAll.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { isKind, type ErrorKind } from '../services/errdefs';
import * as fst from './fstest';
import { detachAll, mountAll, unmountAll } from './mount';
import type { Info, Labels, Mount, Snapshotter } from './types';

export type SnapshotterFactory = (root: string) => Promise<Snapshotter>;

export interface SuiteOptions {
  /** Layers in the deep-chain test (containerd: 128). */
  deepChain?: number;
}

/** What a test of the suite gets. */
export interface SuiteContext {
  sn: Snapshotter;
  root: string;
  work: string;
  /** Mounts `mounts` on `target` (created if missing); unmounted after the test. */
  mount(mounts: Mount[], target: string): Promise<void>;
  unmount(target: string): Promise<void>;
  /** Closes the snapshotter and opens a new one on the same root. */
  reopen(): Promise<Snapshotter>;
}

const gcRoot = (): Labels => ({ 'containerd.io/gc.root': new Date().toISOString() });
const opt = () => ({ labels: gcRoot() });

async function expectError(p: Promise<unknown>, kind: ErrorKind, message?: string): Promise<void> {
  let err: unknown;
  try {
    await p;
  } catch (e) {
    err = e;
  }
  if (err === undefined) throw new Error(`expected a ${kind} error, got success`);
  if (!isKind(err, kind)) throw new Error(`expected a ${kind} error, got: ${(err as Error).message ?? String(err)}`);
  if (message !== undefined) expect((err as Error).message).toBe(message);
}

/** Makes a test context with beforeEach/afterEach; tests read `ctx()`. */
export function suiteContext(name: string, factory: SnapshotterFactory): () => SuiteContext {
  let current: SuiteContext | undefined;
  let tmp = '';
  let sn: Snapshotter | undefined;
  const mounted: string[] = [];

  beforeEach(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), `berth-snapshot-suite-${name}-`));
    const root = path.join(tmp, 'root');
    const work = path.join(tmp, 'work');
    fs.mkdirSync(root);
    fs.mkdirSync(work);
    sn = await factory(root);
    const ctx: SuiteContext = {
      get sn() {
        return sn!;
      },
      root,
      work,
      async mount(mounts, target) {
        fs.mkdirSync(target, { recursive: true });
        mounted.push(target);
        await mountAll(mounts, target);
      },
      async unmount(target) {
        await unmountAll(target);
        const i = mounted.lastIndexOf(target);
        if (i >= 0) mounted.splice(i, 1);
      },
      async reopen() {
        await sn!.close();
        sn = await factory(root);
        return sn;
      },
    };
    current = ctx;
  });

  afterEach(async () => {
    for (const target of mounted.splice(0).reverse()) {
      await unmountAll(target).catch(() => detachAll(target));
    }
    await sn?.close().catch(() => undefined);
    sn = undefined;
    fs.rmSync(tmp, { recursive: true, force: true });
    current = undefined;
  });

  return () => current!;
}

/** Prepares `key` on `parent`, mounts it under work, runs `a` in it, unmounts and commits as `name`. */
async function layer(c: SuiteContext, name: string, parent: string, a: fst.Applier): Promise<void> {
  const key = `${name}-prepare`;
  const target = path.join(c.work, key);
  await c.mount(await c.sn.prepare(key, parent, opt()), target);
  a(target);
  await c.unmount(target);
  await c.sn.commit(name, key, opt());
}

/** A view of `name` compared with the directory `expected`. */
async function checkSnapshot(c: SuiteContext, name: string, expected: string): Promise<void> {
  const view = `${name}-view`;
  const target = path.join(c.work, view);
  await c.mount(await c.sn.view(view, name, opt()), target);
  try {
    expect(fst.manifest(target)).toEqual(fst.manifest(expected));
  } finally {
    await c.unmount(target);
    await c.sn.remove(view);
  }
}

/** containerd's checkSnapshots: a chain built from appliers, each layer checked against a flat dir. */
async function checkSnapshots(c: SuiteContext, ...appliers: fst.Applier[]): Promise<void> {
  const flat = fs.mkdtempSync(path.join(c.work, 'flat-'));
  let parent = '';
  for (let i = 0; i < appliers.length; i++) {
    const name = `${path.basename(flat)}-layer-${i}`;
    await layer(c, name, parent, appliers[i]);
    appliers[i](flat);
    await checkSnapshot(c, name, flat);
    parent = name;
  }
}

/**
 * Registers the conformance tests for a snapshotter. `factory` opens a snapshotter on a root
 * directory (called again on the same root by the persistence test).
 */
export function snapshotterSuite(name: string, factory: SnapshotterFactory, options: SuiteOptions = {}): void {
  describe(`snapshotter conformance: ${name}`, () => {
    const ctx = suiteContext(name, factory);

    test('basic: prepare, mount, commit, child layer, view of the chain, remove', async () => {
      const c = ctx();
      const sn = c.sn;
      const initial = fst.apply(
        fst.createFile('foo', 'foo\n', 0o777),
        fst.createDir('a', 0o755),
        fst.createDir('a/b', 0o755),
        fst.createDir('a/b/c', 0o755),
      );
      const diff = fst.apply(fst.createFile('bar', 'bar\n', 0o777), fst.createFile('foo', 'bar\n', 0o777), fst.removeAll('a/b'));

      const preparing = path.join(c.work, 'preparing');
      const mounts = await sn.prepare(preparing, '', opt());
      expect(mounts.length).toBeGreaterThanOrEqual(1);
      await c.mount(mounts, preparing);
      initial(preparing);
      await c.unmount(preparing);

      const committed = path.join(c.work, 'committed');
      await sn.commit(committed, preparing, opt());
      const si = await sn.stat(committed);
      expect(si.parent).toBe('');
      expect(si.kind).toBe('Committed');
      await expectError(sn.stat(preparing), 'NotFound', `snapshot ${preparing} does not exist: not found`);

      const next = path.join(c.work, 'nextlayer');
      await c.mount(await sn.prepare(next, committed, opt()), next);
      const expected = fs.mkdtempSync(path.join(c.work, 'expected-'));
      initial(expected);
      expect(fst.manifest(next)).toEqual(fst.manifest(expected));
      diff(next);
      await c.unmount(next);

      const ni = await sn.stat(next);
      expect(ni.parent).toBe(committed);
      expect(ni.kind).toBe('Active');

      const nextCommitted = path.join(c.work, 'committed-next');
      await sn.commit(nextCommitted, next, opt());
      const si2 = await sn.stat(nextCommitted);
      expect(si2.parent).toBe(committed);
      expect(si2.kind).toBe('Committed');
      await expectError(sn.stat(next), 'NotFound');

      const walked = new Map<string, Info>();
      await sn.walk((i) => {
        walked.set(i.name, i);
      });
      expect(walked.get(si.name)).toEqual(si);
      expect(walked.get(si2.name)).toEqual(si2);

      const nextnext = path.join(c.work, 'nextnextlayer');
      await c.mount(await sn.view(nextnext, nextCommitted, opt()), nextnext);
      diff(expected);
      expect(fst.manifest(nextnext)).toEqual(fst.manifest(expected));
      await c.unmount(nextnext);

      await sn.remove(nextnext);
      await expectError(sn.remove(committed), 'FailedPrecondition', 'cannot remove snapshot with child: failed precondition');
      await sn.remove(nextCommitted);
      await sn.remove(committed);
    });

    test('stat of an active and of a committed snapshot', async () => {
      const c = ctx();
      const preparing = path.join(c.work, 'preparing');
      await c.mount(await c.sn.prepare(preparing, '', opt()), preparing);
      fs.writeFileSync(path.join(preparing, 'foo'), 'foo\n');
      let si = await c.sn.stat(preparing);
      expect(si).toMatchObject({ name: preparing, kind: 'Active', parent: '' });
      await c.unmount(preparing);
      const committed = path.join(c.work, 'committed');
      await c.sn.commit(committed, preparing, opt());
      si = await c.sn.stat(committed);
      expect(si).toMatchObject({ name: committed, kind: 'Committed', parent: '' });
    });

    test('transitivity: A <- B <- C', async () => {
      const c = ctx();
      await layer(c, 'snapA', '', fst.createFile('foo', 'foo\n', 0o777));
      await layer(c, 'snapB', 'snapA', fst.createFile('foo', 'foo bar\n', 0o777));
      const siA = await c.sn.stat('snapA');
      const siB = await c.sn.stat('snapB');
      const siParentB = await c.sn.stat(siB.parent);
      expect(siA.parent).toBe('');
      expect(siB.parent).toBe('snapA');
      expect(siParentB.parent).toBe('');
    });

    test('prepare and view refuse a key in use', async () => {
      const c = ctx();
      await layer(c, 'snapA', '', fst.createFile('x', 'x'));
      await c.sn.prepare('newlayer', 'snapA', opt());
      await expectError(c.sn.view('newlayer', 'snapA', opt()), 'AlreadyExists', 'snapshot "newlayer": already exists');
      await c.sn.prepare('prepLayer', 'snapA', opt());
      await expectError(c.sn.prepare('prepLayer', 'snapA', opt()), 'AlreadyExists');
      await c.sn.view('viewLayer', 'snapA', opt());
      await expectError(c.sn.view('viewLayer', 'snapA', opt()), 'AlreadyExists');
      await expectError(c.sn.commit('snapA', 'prepLayer'), 'AlreadyExists', 'snapshot "snapA": already exists');
    });

    test('errors: missing parent, uncommitted parent, commit of a view, mounts of a committed snapshot', async () => {
      const c = ctx();
      const sn = c.sn;
      await expectError(sn.prepare('k', 'nope'), 'NotFound', 'parent snapshot nope does not exist: not found');
      await sn.prepare('active', '');
      await expectError(sn.prepare('k', 'active'), 'InvalidArgument', 'parent "active" is not committed snapshot: invalid argument');
      await sn.view('v', '');
      await expectError(sn.commit('c', 'v'), 'FailedPrecondition', 'snapshot "v" is not active: failed precondition');
      await sn.commit('c', 'active');
      await expectError(sn.mounts('c'), 'FailedPrecondition');
      await expectError(sn.mounts('missing'), 'NotFound', 'snapshot missing does not exist: not found');
      await expectError(sn.remove('missing'), 'NotFound', 'snapshot missing does not exist: not found');
      await expectError(sn.usage('missing'), 'NotFound');
      await expectError(sn.commit('x', 'missing'), 'NotFound');
      await expectError(sn.update({ name: 'missing', labels: {} }), 'NotFound');
      await expectError(sn.prepare(''), 'InvalidArgument');
      // nothing was left behind by the failures
      const dirs = fs.readdirSync(path.join(c.root, 'snapshots'));
      expect(dirs.filter((d) => d.startsWith('new-'))).toEqual([]);
    });

    test('update: labels replaced, set by path, times, immutable fields', async () => {
      const c = ctx();
      const sn = c.sn;
      const t1 = Date.now();
      await sn.prepare('c1-a', '', opt());
      await sn.commit('c1', 'c1-a', opt());
      await sn.prepare('c2-a', 'c1', opt());
      await sn.commit('c2', 'c2-a', opt());
      await sn.prepare('a1', 'c2', opt());
      await sn.prepare('a2', '', opt());
      await sn.view('v1', 'c2', opt());
      await sn.view('v2', '', opt());
      const t2 = Date.now();
      const cases: Array<[string, Info['kind'], string]> = [
        ['c1', 'Committed', ''],
        ['c2', 'Committed', 'c1'],
        ['a1', 'Active', 'c2'],
        ['a2', 'Active', ''],
        ['v1', 'View', 'c2'],
        ['v2', 'View', ''],
      ];
      for (const [name, kind, parent] of cases) {
        let st = await sn.stat(name);
        expect(st.createdAt.getTime()).toBeGreaterThanOrEqual(t1);
        expect(st.createdAt.getTime()).toBeLessThanOrEqual(t2);
        expect(st.updatedAt).toEqual(st.createdAt);
        expect(st).toMatchObject({ kind, parent, name });

        const createdAt = st.createdAt;
        const rootTime = new Date().toISOString();
        let expected: Labels = { l1: 'v1', l2: 'v2', l3: 'v3', 'containerd.io/gc.root': rootTime };
        const u1 = Date.now();
        st = await sn.update({ ...st, parent: 'doesnotexist', labels: expected });
        const u2 = Date.now();
        expect(st.createdAt).toEqual(createdAt);
        expect(st.updatedAt.getTime()).toBeGreaterThanOrEqual(u1);
        expect(st.updatedAt.getTime()).toBeLessThanOrEqual(u2);
        expect(st).toMatchObject({ kind, parent, name });
        expect(st.labels).toEqual(expected);

        expected = { l1: 'updated', l3: 'v3', 'containerd.io/gc.root': rootTime };
        st = await sn.update({ ...st, labels: { l1: 'updated', l4: 'v4' } }, ['labels.l1', 'labels.l2']);
        expect(st.labels).toEqual(expected);

        expected = { l4: 'v4', 'containerd.io/gc.root': rootTime };
        st = await sn.update({ ...st, labels: expected }, ['labels']);
        expect(st.labels).toEqual(expected);
        expect((await sn.stat(name)).labels).toEqual(expected);

        await expectError(sn.update({ ...st, parent: 'doesnotexist' }, ['parent']), 'InvalidArgument', `cannot update "parent" field on snapshot "${name}": invalid argument`);
      }
    });

    test('remove: keys are reusable, children block removal', async () => {
      const c = ctx();
      const sn = c.sn;
      await sn.prepare('committed-a', '', opt());
      await sn.commit('committed-1', 'committed-a', opt());
      await sn.prepare('reuse-1', 'committed-1', opt());
      await expectError(sn.remove('committed-1'), 'FailedPrecondition', 'cannot remove snapshot with child: failed precondition');
      await sn.remove('reuse-1');
      await sn.view('reuse-1', 'committed-1', opt());
      await sn.remove('reuse-1');
      await sn.prepare('reuse-1', '', opt());
      await sn.remove('committed-1');
      await sn.commit('committed-1', 'reuse-1', opt());
      // removed snapshots' directories are gone
      const ids = new Set<string>();
      await sn.walk(() => undefined);
      for (const d of fs.readdirSync(path.join(c.root, 'snapshots'))) ids.add(d);
      expect(ids.size).toBe(1);
    });

    test('remove of an intermediate snapshot fails until its children are gone', async () => {
      const c = ctx();
      const sn = c.sn;
      await layer(c, 'committed-base', '', fst.createFile('base', 'b'));
      await sn.prepare('intermediate', 'committed-base', opt());
      await sn.commit('committed-inter', 'intermediate', opt());
      await sn.prepare('toplayer', 'committed-inter', opt());
      await expectError(sn.remove('committed-inter'), 'FailedPrecondition');
      await sn.remove('toplayer');
      await sn.remove('committed-inter');
      await sn.remove('committed-base');
    });

    test('walk with filters', async () => {
      const c = ctx();
      const sn = c.sn;
      const o = { labels: { 'containerd.io/gc.root': 'check-walk' } };
      await sn.prepare('a-np', '', o);
      await sn.prepare('p-tmp', '', o);
      await sn.commit('p', 'p-tmp', o);
      await sn.prepare('a', 'p', o);
      await sn.view('v', 'p', o);
      await sn.prepare('p-wl-tmp', '', o);
      await sn.commit('p-wl', 'p-wl-tmp', { labels: { l: '1', 'containerd.io/gc.root': 'check-walk' } });
      await sn.prepare('a-wl', 'p-wl', { labels: { l: '2', 'containerd.io/gc.root': 'check-walk' } });
      await sn.view('v-wl', 'p-wl', { labels: { l: '3', 'containerd.io/gc.root': 'check-walk' } });
      await sn.prepare('a-np-wl', '', { labels: { l: '2', 'containerd.io/gc.root': 'check-walk' } });
      const cases: Array<[string[], string[]]> = [
        [['a-np', 'p', 'a', 'v', 'p-wl', 'a-wl', 'v-wl', 'a-np-wl'], ['labels."containerd.io/gc.root"==check-walk']],
        [['a-np', 'a', 'a-wl', 'a-np-wl'], ['kind==active,labels."containerd.io/gc.root"==check-walk']],
        [['v', 'v-wl'], ['kind==view,labels."containerd.io/gc.root"==check-walk']],
        [['p', 'p-wl'], ['kind==committed,labels."containerd.io/gc.root"==check-walk']],
        [['p', 'a-np-wl'], ['name==p', 'name==a-np-wl']],
        [['a-wl'], ['name==a-wl,labels.l']],
        [['a', 'v'], ['parent==p']],
        [['a', 'v', 'a-wl', 'v-wl'], ['parent!="",labels."containerd.io/gc.root"==check-walk']],
        [['p-wl', 'a-wl', 'v-wl', 'a-np-wl'], ['labels.l']],
        [['a-wl', 'a-np-wl'], ['labels.l==2']],
      ];
      for (const [matches, filters] of cases) {
        const actual: string[] = [];
        await sn.walk((i) => {
          actual.push(i.name);
        }, filters);
        expect({ filters, names: actual.sort() }).toEqual({ filters, names: [...matches].sort() });
      }
      await expectError(sn.walk(() => undefined, ['name==']), 'InvalidArgument');
    });

    test('stat during walk', async () => {
      const c = ctx();
      const sn = c.sn;
      await sn.prepare('c1-a', '', opt());
      await sn.commit('c1', 'c1-a', opt());
      await sn.prepare('c2-a', 'c1', opt());
      await sn.commit('c2', 'c2-a', opt());
      await sn.prepare('a1', 'c2', opt());
      await sn.view('v1', 'c2', opt());
      let n = 0;
      await sn.walk(async (i) => {
        expect(await sn.stat(i.name)).toEqual(i);
        n++;
      });
      expect(n).toBe(4);
    });

    test('layer file update (docker#21555)', async () => {
      const c = ctx();
      const l1 = fst.apply(fst.createDir('etc', 0o700), fst.createFile('etc/hosts', 'mydomain 10.0.0.1', 0o644), fst.createFile('etc/profile', 'PATH=/usr/bin', 0o644));
      const l2 = fst.apply(
        fst.createFile('etc/hosts', 'mydomain 10.0.0.2', 0o644),
        fst.createFile('etc/profile', 'PATH=/usr/bin', 0o666),
        fst.createDir('root', 0o700),
        fst.createFile('root/.bashrc', 'PATH=/usr/sbin:/usr/bin', 0o644),
      );
      await checkSnapshots(c, l1, l2);
      // again across a second boundary
      await new Promise((r) => setTimeout(r, 1000 - (Date.now() % 1000) + 5));
      await checkSnapshots(c, l1, l2);
    });

    test('remove a directory of a lower layer (docker#25244)', async () => {
      await checkSnapshots(
        ctx(),
        fst.apply(fst.createDir('lib', 0o700), fst.createFile('lib/hidden', '', 0o644)),
        fst.apply(fst.removeAll('lib'), fst.createDir('lib', 0o700), fst.createFile('lib/not-hidden', '', 0o644)),
        fst.apply(fst.createFile('lib/newfile', '', 0o644)),
      );
    });

    test('chown in an upper layer (docker#20240, #24913, #28391)', async () => {
      await checkSnapshots(
        ctx(),
        fst.apply(fst.createDir('opt', 0o700), fst.createDir('opt/a', 0o700), fst.createDir('opt/a/b', 0o700), fst.createFile('opt/a/b/file.txt', 'hello', 0o644)),
        fst.apply(fst.chown('opt', 1, 1), fst.chown('opt/a', 1, 1), fst.chown('opt/a/b', 1, 1), fst.chown('opt/a/b/file.txt', 1, 1)),
      );
    });

    test('directory permissions on commit (docker#27298)', async () => {
      await checkSnapshots(
        ctx(),
        fst.apply(
          fst.createDir('dir1', 0o700),
          fst.createDir('dir2', 0o700),
          fst.createDir('dir3', 0o700),
          fst.createDir('dir4', 0o700),
          fst.createFile('dir4/f1', '...', 0o644),
          fst.createDir('dir5', 0o700),
          fst.createFile('dir5/f1', '...', 0o644),
          fst.chown('dir1', 1, 1),
          fst.chown('dir2', 1, 1),
          fst.chown('dir3', 1, 1),
          fst.chown('dir5', 1, 1),
          fst.chown('dir5/f1', 1, 1),
        ),
        fst.apply(fst.chown('dir2', 0, 0), fst.removeAll('dir3'), fst.chown('dir4', 1, 1), fst.chown('dir4/f1', 1, 1)),
        fst.apply(fst.createDir('dir3', 0o700), fst.chown('dir3', 1, 1), fst.removeAll('dir5'), fst.createDir('dir5', 0o700), fst.chown('dir5', 1, 1)),
      );
    });

    test('deleted files stay deleted in child snapshots', async () => {
      await checkSnapshots(
        ctx(),
        fst.apply(fst.createFile('foo', 'foo\n', 0o777), fst.createFile('foobar', 'foobar\n', 0o777)),
        fst.apply(fst.removeAll('foobar')),
        fst.apply(),
      );
    });

    test('move a file from a lower layer (hard link, then remove)', async () => {
      await checkSnapshots(
        ctx(),
        fst.apply(fst.createDir('dir1', 0o700), fst.createFile('dir1/f1', 'Hello', 0o644), fst.createDir('dir2', 0o700), fst.createFile('dir2/f2', '...', 0o644)),
        fst.apply(fst.createDir('dir3', 0o700), fst.createFile('dir3/f1', 'Hello', 0o644), fst.removeAll('dir1'), fst.link('dir2/f2', 'dir3/f2'), fst.removeAll('dir2/f2')),
      );
    });

    test('rename files across layers', async () => {
      await checkSnapshots(
        ctx(),
        fst.apply(fst.createDir('somefiles', 0o700), fst.createFile('somefiles/f1', 'was here first!', 0o644), fst.createFile('somefiles/f2', 'nothing interesting', 0o644)),
        fst.apply(fst.createFile('somefiles/f1-overwrite', 'new content 1', 0o644), fst.rename('somefiles/f1-overwrite', 'somefiles/f1'), fst.rename('somefiles/f2', 'somefiles/f3')),
      );
    });

    test('a view mounts read-only', async () => {
      const c = ctx();
      await c.sn.prepare('preparing', '', opt());
      await c.sn.commit('committed', 'preparing', opt());
      const target = path.join(c.work, 'view-mount');
      await c.mount(await c.sn.view('view', 'committed', opt()), target);
      let err: unknown;
      try {
        fs.writeFileSync(path.join(target, 'testfile'), 'testcontent');
      } catch (e) {
        err = e;
      }
      expect((err as { code?: string })?.code).toBe('EROFS');
      await c.unmount(target);
      await c.sn.remove('view');
      await c.sn.remove('committed');
    });

    test('close twice; calls after close fail', async () => {
      const c = ctx();
      await c.sn.prepare('p', '', opt());
      await c.sn.commit('n', 'p', opt());
      await c.sn.remove('n');
      await c.sn.close();
      await c.sn.close();
      await expectError(c.sn.stat('n'), 'FailedPrecondition');
      await expectError(c.sn.prepare('x'), 'FailedPrecondition');
    });

    test('the root of a new snapshot is 0755', async () => {
      const c = ctx();
      const target = path.join(c.work, 'preparing');
      await c.mount(await c.sn.prepare('preparing', '', opt()), target);
      expect(fs.statSync(target).mode & 0o777).toBe(0o755);
    });

    test('usage: measured for active snapshots, kept from commit, hard links counted once', async () => {
      const c = ctx();
      const sn = c.sn;
      const target = path.join(c.work, 'p');
      await c.mount(await sn.prepare('p', '', opt()), target);
      const empty = await sn.usage('p');
      expect(empty.inodes).toBe(1); // the root directory
      fs.writeFileSync(path.join(target, 'a'), Buffer.alloc(64 * 1024, 1));
      fs.linkSync(path.join(target, 'a'), path.join(target, 'a-link'));
      fs.mkdirSync(path.join(target, 'd'));
      fs.writeFileSync(path.join(target, 'd', 'b'), 'b');
      const used = await sn.usage('p');
      expect(used.inodes).toBe(4); // root, a (= a-link), d, d/b
      expect(used.size).toBeGreaterThanOrEqual(64 * 1024 + 4096);
      await c.unmount(target);
      await sn.commit('c', 'p', opt());
      expect(await sn.usage('c')).toEqual(used);
      await sn.view('v', 'c');
      expect((await sn.usage('v')).inodes).toBeGreaterThanOrEqual(0);
    });

    test('close and reopen: snapshots, labels, chains and files persist', async () => {
      const c = ctx();
      await layer(c, 'base', '', fst.apply(fst.createFile('a', 'a'), fst.createDir('d'), fst.createFile('d/x', 'x')));
      await layer(c, 'top', 'base', fst.apply(fst.createFile('b', 'b'), fst.removeAll('d/x')));
      await c.sn.prepare('work', 'top', { labels: { keep: 'me' } });
      await c.sn.view('look', 'top');
      const before: Info[] = [];
      await c.sn.walk((i) => {
        before.push(i);
      });
      const mountsBefore = await c.sn.mounts('work');

      const sn = await c.reopen();
      const after: Info[] = [];
      await sn.walk((i) => {
        after.push(i);
      });
      const byName = (a: Info, b: Info) => (a.name < b.name ? -1 : 1);
      expect(after.sort(byName)).toEqual(before.sort(byName));
      expect(await sn.mounts('work')).toEqual(mountsBefore);
      const target = path.join(c.work, 'look');
      await c.mount(await sn.mounts('look'), target);
      expect(Object.keys(fst.manifest(target)).sort()).toEqual(['a', 'b', 'd']);
      await c.unmount(target);
      // new ids do not collide with old ones
      await sn.prepare('another', 'top');
      const ids = fs.readdirSync(path.join(c.root, 'snapshots'));
      expect(new Set(ids).size).toBe(ids.length);
      expect(ids.length).toBe(5);
    });

    test('a second instance on the same root is refused', async () => {
      const c = ctx();
      await expectError(factory(c.root), 'Unavailable');
    });

    test('cleanup removes directories no snapshot refers to; a crash mid-prepare leaves no record', async () => {
      const c = ctx();
      const sn = c.sn;
      await sn.prepare('keep', '', opt());
      const snapshots = path.join(c.root, 'snapshots');
      // what a crash leaves: a half-made temporary dir, and a renamed dir whose record was never written
      fs.mkdirSync(path.join(snapshots, 'new-crashed', 'fs'), { recursive: true });
      fs.mkdirSync(path.join(snapshots, '2', 'fs'), { recursive: true });
      fs.writeFileSync(path.join(snapshots, '2', 'fs', 'junk'), 'junk');
      const sn2 = await c.reopen();
      await expectError(sn2.stat('crashed'), 'NotFound');
      // the next id skips the orphan rather than reusing its directory
      const m = await sn2.prepare('next', '');
      expect(fs.readdirSync(m[0].source.replace(/\/fs$/, '') + '/fs')).toEqual([]);
      await sn2.cleanup();
      const left = fs.readdirSync(snapshots).sort();
      expect(left).toHaveLength(2);
      expect(left).not.toContain('new-crashed');
      expect(left).not.toContain('2');
      await sn2.stat('keep');
      await sn2.stat('next');
    });

    const layers = options.deepChain ?? 128;
    test(`${layers} layers: every step and the full view match a flat directory`, async () => {
      const c = ctx();
      const flat = path.join(c.work, 'flat');
      fs.mkdirSync(flat);
      const appliers: fst.Applier[] = [
        fst.apply(
          fst.createFile('bottom', 'way at the bottom\n', 0o777),
          fst.createFile('overwriteme', 'FIRST!\n', 0o777),
          fst.createDir('ADDHERE', 0o755),
          fst.createDir('ONLYME', 0o755),
          fst.createFile('ONLYME/bottom', 'bye!\n', 0o777),
        ),
      ];
      for (let i = 1; i < layers; i++) {
        appliers.push(
          fst.apply(
            fst.createFile('overwriteme', `${i} WAS HERE!\n`, 0o777),
            fst.createFile(`ADDHERE/file-${i}`, 'same\n', 0o755),
            fst.removeAll('ONLYME'),
            fst.createDir('ONLYME', 0o755),
            fst.createFile(`ONLYME/file-${i}`, 'only me!\n', 0o777),
          ),
        );
      }
      let parent = '';
      for (let i = 0; i < appliers.length; i++) {
        const preparing = path.join(c.work, `prepare-layer-${i}`);
        await c.mount(await c.sn.prepare(preparing, parent, opt()), preparing);
        expect(fst.manifest(preparing)).toEqual(fst.manifest(flat));
        appliers[i](flat);
        appliers[i](preparing);
        expect(fst.manifest(preparing)).toEqual(fst.manifest(flat));
        await c.unmount(preparing);
        parent = path.join(c.work, `committed-${i}`);
        await c.sn.commit(parent, preparing, opt());
      }
      const view = path.join(c.work, 'fullview');
      await c.mount(await c.sn.view(view, parent, opt()), view);
      expect(fst.manifest(view)).toEqual(fst.manifest(flat));
    });
  });
}
