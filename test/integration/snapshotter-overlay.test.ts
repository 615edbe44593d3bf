// Overlay-specific behaviour: the exact mounts containerd's overlay snapshotter returns, deep
// chains whose lowerdir list exceeds a page (mounted through the compacting helper), the
// upperdir label and asynchronous removal.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { detachAll, mountAll, unmountAll } from '../../snapshotter/mount';
import { OverlaySnapshotter, UPPERDIR_LABEL } from '../../snapshotter/overlay';

jest.setTimeout(120_000);

let tmp: string;
let root: string;
let sn: OverlaySnapshotter;
const mounted: string[] = [];
const indexOff = fs.existsSync('/sys/module/overlay/parameters/index') ? ['index=off'] : [];

beforeEach(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-snapshot-overlay-'));
  root = path.join(tmp, 'root');
  sn = await OverlaySnapshotter.open(root);
});

afterEach(async () => {
  for (const t of mounted.splice(0).reverse()) await unmountAll(t).catch(() => detachAll(t));
  await sn.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

async function mountAt(mounts: Parameters<typeof mountAll>[0], name: string): Promise<string> {
  const target = path.join(tmp, name);
  fs.mkdirSync(target, { recursive: true });
  mounted.push(target);
  await mountAll(mounts, target);
  return target;
}

const fsDir = (id: number) => path.join(root, 'snapshots', String(id), 'fs');
const workDir = (id: number) => path.join(root, 'snapshots', String(id), 'work');

test('mounts are exactly containerd overlay snapshotter mounts', async () => {
  expect(await sn.prepare('a1', '')).toEqual([{ type: 'bind', source: fsDir(1), options: ['rw', 'rbind'] }]);
  await sn.commit('c1', 'a1');
  expect(await sn.prepare('a2', 'c1')).toEqual([
    { type: 'overlay', source: 'overlay', options: [...indexOff, `workdir=${workDir(2)}`, `upperdir=${fsDir(2)}`, `lowerdir=${fsDir(1)}`] },
  ]);
  await sn.commit('c2', 'a2');
  expect(await sn.prepare('a3', 'c2')).toEqual([
    { type: 'overlay', source: 'overlay', options: [...indexOff, `workdir=${workDir(3)}`, `upperdir=${fsDir(3)}`, `lowerdir=${fsDir(2)}:${fsDir(1)}`] },
  ]);
  expect(await sn.view('v1', 'c1')).toEqual([{ type: 'bind', source: fsDir(1), options: ['ro', 'rbind'] }]);
  expect(await sn.view('v2', 'c2')).toEqual([{ type: 'overlay', source: 'overlay', options: [...indexOff, `lowerdir=${fsDir(2)}:${fsDir(1)}`] }]);
  expect(await sn.view('v0', '')).toEqual([{ type: 'bind', source: fsDir(6), options: ['ro', 'rbind'] }]);
  expect(await sn.mounts('a3')).toEqual(await sn.mounts('a3'));
  expect((await sn.mounts('v2'))[0].options).toEqual([...indexOff, `lowerdir=${fsDir(2)}:${fsDir(1)}`]);
  // on disk: fs and work for active snapshots, fs only for views
  expect(fs.readdirSync(path.join(root, 'snapshots', '3')).sort()).toEqual(['fs', 'work']);
  expect(fs.readdirSync(path.join(root, 'snapshots', '4'))).toEqual(['fs']);
  expect(fs.statSync(workDir(3)).mode & 0o777).toBe(0o711);
});

test('the upper of a child takes the owner of its parent', async () => {
  const m = await sn.prepare('a1', '');
  fs.chownSync(m[0].source, 1234, 5678);
  await sn.commit('c1', 'a1');
  await sn.prepare('a2', 'c1');
  const st = fs.statSync(fsDir(2));
  expect([st.uid, st.gid]).toEqual([1234, 5678]);
});

test('a chain whose lowerdir list is longer than a page mounts (active and view), with the right files on top', async () => {
  // a long root makes every lowerdir long: ~150 bytes × 60 layers ≈ 9 KiB of options
  const deep = path.join(tmp, 'x'.repeat(100));
  await sn.close();
  sn = await OverlaySnapshotter.open(deep);
  let parent = '';
  const n = 60;
  for (let i = 0; i < n; i++) {
    const m = await sn.prepare(`a${i}`, parent);
    const upper = i === 0 ? m[0].source : m[0].options.find((o) => o.startsWith('upperdir='))!.slice('upperdir='.length);
    fs.writeFileSync(path.join(upper, `file-${i}`), String(i));
    fs.writeFileSync(path.join(upper, 'top'), String(i));
    await sn.commit(`c${i}`, `a${i}`);
    parent = `c${i}`;
  }
  const view = await sn.view('v', parent);
  const optionBytes = view[0].options.join(',').length;
  expect(optionBytes).toBeGreaterThan(4096);
  const target = await mountAt(view, 'view');
  expect(fs.readFileSync(path.join(target, 'top'), 'utf8')).toBe(String(n - 1));
  expect(fs.readdirSync(target).length).toBe(n + 1);

  const active = await mountAt(await sn.prepare('top', parent), 'active');
  fs.writeFileSync(path.join(active, 'new'), 'new');
  expect(fs.readFileSync(path.join(active, 'file-0'), 'utf8')).toBe('0');
  // the daemon's working directory never moved
  expect(process.cwd()).not.toContain(tmp);
  await unmountAll(active);
  mounted.splice(mounted.indexOf(active), 1);
  await sn.commit('ctop', 'top');
  expect(fs.readdirSync(path.join(deep, 'snapshots', String(n + 2), 'fs'))).toEqual(['new']);
});

test('upperdir label and asynchronous remove', async () => {
  await sn.close();
  sn = await OverlaySnapshotter.open(root, { upperdirLabel: true, asyncRemove: true });
  await sn.prepare('a', '', { labels: { x: 'y' } });
  const info = await sn.stat('a');
  expect(info.labels).toEqual({ x: 'y', [UPPERDIR_LABEL]: fsDir(1) });
  await sn.remove('a');
  expect(fs.existsSync(path.join(root, 'snapshots', '1'))).toBe(true);
  await sn.cleanup();
  expect(fs.existsSync(path.join(root, 'snapshots', '1'))).toBe(false);
  const meta = JSON.parse(fs.readFileSync(path.join(root, 'metadata.json'), 'utf8'));
  expect(meta.snapshots).toEqual({});
});
