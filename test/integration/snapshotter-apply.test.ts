// Layer apply (snapshotter/apply.ts) on the real kernel as root: into overlay snapshots (overlay
// whiteouts, checked through an overlay mount of the chain), into native snapshots and plain
// trees (real deletions), every kind of entry and attribute, and hostile layers that must not
// write outside the root.
import { createHash, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import * as zlib from 'node:zlib';
import { BerthError, isKind } from '../../services/errdefs';
import { applyLayer, applyToMounts } from '../../snapshotter/apply';
import { manifest } from '../../snapshotter/fstest';
import { detachAll, mountAll, unmountAll } from '../../snapshotter/mount';
import { NativeSnapshotter } from '../../snapshotter/native';
import { OverlaySnapshotter } from '../../snapshotter/overlay';
import { lgetxattr } from '../../snapshotter/sys';
import { encodeHeader, END_OF_ARCHIVE, padding } from '../../snapshotter/tar';
import type { Mount, Snapshotter } from '../../snapshotter/types';

jest.setTimeout(60_000);

let tmp: string;
const mounted: string[] = [];
const opened: Snapshotter[] = [];

beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-snapshot-apply-'));
});

afterEach(async () => {
  for (const t of mounted.splice(0).reverse()) await unmountAll(t).catch(() => detachAll(t));
  for (const s of opened.splice(0)) await s.close().catch(() => undefined);
  fs.rmSync(tmp, { recursive: true, force: true });
});

async function mountAt(mounts: Mount[], name: string): Promise<string> {
  const target = path.join(tmp, name);
  fs.mkdirSync(target, { recursive: true });
  mounted.push(target);
  await mountAll(mounts, target);
  return target;
}

interface E {
  name: string;
  /** '0' file (default), '1' hard link, '2' symlink, '3' char, '4' block, '5' dir, '6' fifo */
  type?: string;
  body?: string | Buffer;
  mode?: number;
  uid?: number;
  gid?: number;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  mtime?: number;
  xattrs?: Record<string, string | Buffer>;
}

/** An uncompressed layer tar of raw entries (names written exactly as given). */
function layer(entries: E[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const type = e.type ?? '0';
    const body = e.body === undefined ? Buffer.alloc(0) : Buffer.from(e.body);
    parts.push(
      encodeHeader({
        name: e.name,
        type,
        mode: e.mode ?? (type === '5' ? 0o755 : type === '2' ? 0o777 : 0o644),
        uid: e.uid ?? 0,
        gid: e.gid ?? 0,
        size: type === '0' ? body.length : 0,
        mtime: e.mtime ?? 1_600_000_000,
        linkname: e.linkname,
        devmajor: e.devmajor,
        devminor: e.devminor,
        xattrs: e.xattrs ? new Map(Object.entries(e.xattrs).map(([k, v]) => [k, Buffer.from(v)])) : undefined,
      }),
    );
    if (type === '0' && body.length) parts.push(body, padding(body.length));
  }
  parts.push(END_OF_ARCHIVE);
  return Buffer.concat(parts);
}

const CAP = Buffer.from('0100000200200000000000000000000000000000', 'hex'); // cap_net_bind_service+ep

const base: E[] = [
  { name: 'etc/', type: '5', mode: 0o755, mtime: 1_000_000_000 },
  { name: 'etc/passwd', body: 'root:x:0:0::/root:/bin/sh\n', mode: 0o644 },
  { name: 'bin/', type: '5' },
  { name: 'bin/ping', body: 'ELF', mode: 0o4755, xattrs: { 'security.capability': CAP, 'user.note': 'hi' } },
  { name: 'bin/ping6', type: '1', linkname: 'bin/ping', mode: 0o4755 },
  { name: 'bin/sh', type: '2', linkname: '/bin/busybox' },
  { name: 'tmp/', type: '5', mode: 0o1777 },
  { name: 'dev/', type: '5' },
  { name: 'dev/null', type: '3', mode: 0o666, devmajor: 1, devminor: 3 },
  { name: 'dev/sda', type: '4', mode: 0o660, devmajor: 8, devminor: 0, gid: 6 },
  { name: 'dev/fifo', type: '6', mode: 0o600 },
  { name: 'home/', type: '5', mode: 0o700, uid: 1000, gid: 1000, mtime: 1_100_000_000 },
  { name: 'home/u/', type: '5', mode: 0o750, uid: 1000, gid: 1000 },
  { name: 'home/u/.profile', body: 'export A=1\n', uid: 1000, gid: 1000, mode: 0o600, mtime: 1_200_000_000 },
  { name: 'opt/', type: '5' },
  { name: 'opt/old/', type: '5' },
  { name: 'opt/old/a', body: 'a' },
  { name: 'opt/old/sub/', type: '5' },
  { name: 'opt/old/sub/b', body: 'b' },
  { name: 'var/', type: '5', mode: 0o711, uid: 5, gid: 5 },
  { name: 'var/lib/', type: '5', mode: 0o700, uid: 5, gid: 5, xattrs: { 'user.lib': 'kept' } },
  { name: 'var/lib/keep', body: 'keep' },
  { name: 'gone', body: 'to be deleted' },
  { name: 'dir-to-file/', type: '5' },
  { name: 'dir-to-file/x', body: 'x' },
  { name: 'file-to-dir', body: 'f' },
  { name: 'link-to-dir', type: '2', linkname: 'etc' },
  { name: 'odd', body: 'zero', mode: 0o000 },
  { name: 'sgid/', type: '5', mode: 0o2775, gid: 50 },
];

const top: E[] = [
  { name: '.wh.gone', body: '' },
  { name: 'opt/old/', type: '5' },
  { name: 'opt/old/.wh..wh..opq' },
  { name: 'opt/old/new', body: 'new' },
  { name: 'var/lib/added', body: 'added' }, // parent dirs not in this layer: they keep their lower attributes
  { name: 'dir-to-file', body: 'now a file' },
  { name: 'file-to-dir/', type: '5', mode: 0o705 },
  { name: 'file-to-dir/inside', body: 'inside' },
  { name: 'link-to-dir/', type: '5', mode: 0o755 },
  { name: 'link-to-dir/real', body: 'a real dir now' },
  { name: 'bin/ping', body: 'ELF2', mode: 0o755 },
  { name: 'bin/ping-again', type: '1', linkname: 'bin/ping', mode: 0o755 },
  { name: 'etc/.wh.passwd' },
  { name: 'etc/passwd', body: 'root:x:0:0::/root:/bin/ash\n' }, // whiteout then re-add in one layer
];

/** What the tree of base + top must look like, checked attribute by attribute. */
function checkTree(root: string): void {
  const m = manifest(root, { mtimes: true });
  expect(m['gone']).toBeUndefined();
  expect(Object.keys(m).filter((k) => k.startsWith('opt/old/')).sort()).toEqual(['opt/old/new']);
  expect(m['var/lib/added']).toMatchObject({ type: 'file' });
  expect(m['var/lib/keep']).toMatchObject({ type: 'file' });
  expect(m['var']).toMatchObject({ mode: '711', uid: 5, gid: 5 });
  expect(m['var/lib']).toMatchObject({ mode: '700', uid: 5, gid: 5, xattrs: { 'user.lib': Buffer.from('kept').toString('hex') } });
  expect(m['dir-to-file']).toMatchObject({ type: 'file', size: 10 });
  expect(m['file-to-dir']).toMatchObject({ type: 'dir', mode: '705' });
  expect(m['file-to-dir/inside']).toMatchObject({ type: 'file' });
  expect(m['link-to-dir']).toMatchObject({ type: 'dir' });
  expect(m['link-to-dir/real']).toMatchObject({ type: 'file' });
  expect(m['etc/real']).toBeUndefined();
  expect(m['bin/ping']).toMatchObject({ type: 'file', mode: '755', links: ['bin/ping-again'] });
  expect(m['bin/ping6']).toMatchObject({ type: 'file', mode: '4755', xattrs: { 'security.capability': CAP.toString('hex'), 'user.note': Buffer.from('hi').toString('hex') } });
  expect(m['bin/ping6'].links).toBeUndefined();
  expect(m['bin/sh']).toMatchObject({ type: 'symlink', target: '/bin/busybox' });
  expect(m['tmp']).toMatchObject({ mode: '1777' });
  expect(m['dev/null']).toMatchObject({ type: 'char', dev: '1:3', mode: '666' });
  expect(m['dev/sda']).toMatchObject({ type: 'block', dev: '8:0', mode: '660', gid: 6 });
  expect(m['dev/fifo']).toMatchObject({ type: 'fifo', mode: '600' });
  expect(m['home']).toMatchObject({ mode: '700', uid: 1000, gid: 1000, mtime: String(1_100_000_000n * 1_000_000_000n) });
  expect(m['home/u/.profile']).toMatchObject({ mode: '600', uid: 1000, mtime: String(1_200_000_000n * 1_000_000_000n) });
  expect(fs.readFileSync(path.join(root, 'etc/passwd'), 'utf8')).toBe('root:x:0:0::/root:/bin/ash\n');
  expect(m['odd']).toMatchObject({ mode: '0' });
  expect(m['sgid']).toMatchObject({ mode: '2775', gid: 50 });
}

test('overlay: a chain applied into snapshots, whiteouts as overlay whiteouts, checked through an overlay mount', async () => {
  const sn = await OverlaySnapshotter.open(path.join(tmp, 'overlay'));
  opened.push(sn);
  const l1 = layer(base);
  const l2 = layer(top);

  const r1 = await applyToMounts(await sn.prepare('extract-1', ''), Readable.from([zlib.gzipSync(l1)]));
  expect(r1).toEqual({ diffID: `sha256:${createHash('sha256').update(l1).digest('hex')}`, size: l1.length, compression: 'gzip' });
  await sn.commit('layer-1', 'extract-1');

  const m2 = await sn.prepare('extract-2', 'layer-1');
  const r2 = await applyToMounts(m2, Readable.from([l2]));
  expect(r2.compression).toBe('none');
  // the upper dir holds overlay whiteouts, not OCI ones
  const upper = m2[0].options.find((o) => o.startsWith('upperdir='))!.slice('upperdir='.length);
  const gone = fs.lstatSync(path.join(upper, 'gone'));
  expect(gone.isCharacterDevice() && gone.rdev === 0).toBe(true);
  expect(lgetxattr(path.join(upper, 'opt/old'), 'trusted.overlay.opaque')?.toString()).toBe('y');
  expect(fs.existsSync(path.join(upper, '.wh.gone'))).toBe(false);
  expect(fs.existsSync(path.join(upper, 'opt/old/.wh..wh..opq'))).toBe(false);
  await sn.commit('layer-2', 'extract-2');

  const view = await mountAt(await sn.view('v', 'layer-2'), 'view');
  checkTree(view);

  // the same layers applied with real deletions into a plain tree give the same tree
  const plain = path.join(tmp, 'plain');
  fs.mkdirSync(plain);
  await applyLayer(plain, Readable.from([l1]));
  await applyLayer(plain, Readable.from([l2]));
  checkTree(plain);
  expect(manifest(view)).toEqual(manifest(plain));
});

test('native: the same chain through bind mounts and real deletions', async () => {
  const sn = await NativeSnapshotter.open(path.join(tmp, 'native'));
  opened.push(sn);
  await applyToMounts(await sn.prepare('extract-1', ''), Readable.from([layer(base)]));
  await sn.commit('layer-1', 'extract-1');
  await applyToMounts(await sn.prepare('extract-2', 'layer-1'), Readable.from([zlib.gzipSync(layer(top))]));
  await sn.commit('layer-2', 'extract-2');
  const view = await mountAt(await sn.view('v', 'layer-2'), 'view');
  checkTree(view);
});

test('zstd layers, trailing data and the diffID of the whole uncompressed stream', async () => {
  const raw = Buffer.concat([layer([{ name: 'z', body: 'zstd' }]), Buffer.alloc(4096)]);
  const file = path.join(tmp, 'l.tar');
  fs.writeFileSync(file, raw);
  execFileSync('zstd', ['-q', file, '-o', `${file}.zst`]);
  const dir = path.join(tmp, 'dir');
  fs.mkdirSync(dir);
  const r = await applyLayer(dir, fs.createReadStream(`${file}.zst`, { highWaterMark: 100 }));
  expect(r).toEqual({ diffID: `sha256:${createHash('sha256').update(raw).digest('hex')}`, size: raw.length, compression: 'zstd' });
  expect(fs.readFileSync(path.join(dir, 'z'), 'utf8')).toBe('zstd');
});

test('a large file streams through in pieces', async () => {
  const big = randomBytes(5 * 1024 * 1024 + 123);
  const dir = path.join(tmp, 'dir');
  fs.mkdirSync(dir);
  const gz = zlib.gzipSync(layer([{ name: 'big', body: big }]));
  const chunks: Buffer[] = [];
  for (let i = 0; i < gz.length; i += 65536) chunks.push(gz.subarray(i, i + 65536));
  await applyLayer(dir, Readable.from(chunks));
  expect(fs.readFileSync(path.join(dir, 'big')).equals(big)).toBe(true);
});

test('a truncated gzip layer fails cleanly; the snapshot is removed by the caller', async () => {
  const sn = await OverlaySnapshotter.open(path.join(tmp, 'overlay'));
  opened.push(sn);
  const gz = zlib.gzipSync(layer([{ name: 'a', body: randomBytes(100_000) }, { name: 'b', body: 'b' }]));
  const mounts = await sn.prepare('extract', '');
  let err: unknown;
  try {
    await applyToMounts(mounts, Readable.from([gz.subarray(0, gz.length - 1000)]));
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(BerthError);
  expect(isKind(err, 'InvalidArgument')).toBe(true);
  expect((err as Error).message).toMatch(/gzip/);
  await sn.remove('extract');
  expect(fs.readdirSync(path.join(tmp, 'overlay', 'snapshots'))).toEqual([]);
});

test('corrupt tar and bad entries fail with InvalidArgument or FailedPrecondition', async () => {
  const dir = path.join(tmp, 'dir');
  fs.mkdirSync(dir);
  const corrupt = layer([{ name: 'a', body: 'a' }]);
  corrupt[10] ^= 0xff;
  const cases: Array<[Buffer, string]> = [
    [corrupt, 'InvalidArgument'],
    [layer([{ name: 'x/.wh..', body: '' }]), 'InvalidArgument'],
    [layer([{ name: 'f', body: 'f' }, { name: 'f/child', body: 'c' }]), 'FailedPrecondition'],
    [layer([{ name: 'l', type: '1', linkname: 'missing' }]), 'FailedPrecondition'],
    [layer([{ name: 'd/', type: '5' }, { name: 'l', type: '1', linkname: 'd' }]), 'InvalidArgument'],
    [layer([{ name: 'v', type: 'V' }]), 'InvalidArgument'],
  ];
  for (const [data, kind] of cases) {
    let err: unknown;
    try {
      await applyLayer(dir, Readable.from([data]));
    } catch (e) {
      err = e;
    }
    expect({ kind, message: (err as Error)?.message, ok: isKind(err, kind as never) }).toMatchObject({ kind, ok: true });
  }
});

test('plain mode: an opaque directory keeps what the same layer created, including nested entries', async () => {
  const dir = path.join(tmp, 'dir');
  fs.mkdirSync(dir);
  await applyLayer(dir, Readable.from([layer([{ name: 'o/', type: '5' }, { name: 'o/old', body: '1' }, { name: 'o/sub/', type: '5' }, { name: 'o/sub/old', body: '1' }])]));
  await applyLayer(dir, Readable.from([layer([{ name: 'o/sub/', type: '5' }, { name: 'o/sub/new', body: '2' }, { name: 'o/.wh..wh..opq' }, { name: 'o/after', body: '3' }])]));
  expect(Object.keys(manifest(dir)).sort()).toEqual(['o', 'o/after', 'o/sub', 'o/sub/new']);
});

test('xattrs: trusted.* from the archive is ignored, user.* on a symlink is skipped', async () => {
  const dir = path.join(tmp, 'dir');
  fs.mkdirSync(dir);
  const warnings: string[] = [];
  await applyLayer(dir, Readable.from([layer([
    { name: 'd/', type: '5', xattrs: { 'trusted.overlay.opaque': 'y', 'user.ok': '1' } },
    { name: 'd/l', type: '2', linkname: 'x', xattrs: { 'user.nope': '1' } },
  ])]), { logger: { warn: (_o, msg) => warnings.push(msg) } });
  expect(lgetxattr(path.join(dir, 'd'), 'trusted.overlay.opaque')).toBeUndefined();
  expect(lgetxattr(path.join(dir, 'd'), 'user.ok')?.toString()).toBe('1');
  expect(warnings.length).toBe(2);
});

describe('hostile layers never write outside the root', () => {
  let root: string;
  let outside: string;
  let tag: string;
  let before: ReturnType<typeof manifest>;
  let passwdBefore: fs.Stats;

  beforeEach(() => {
    root = path.join(tmp, 'a', 'b', 'root');
    fs.mkdirSync(root, { recursive: true });
    outside = path.join(tmp, 'outside');
    fs.mkdirSync(outside);
    fs.writeFileSync(path.join(outside, 'target'), 'untouched');
    tag = `berth-hostile-${process.pid}-${Math.random().toString(36).slice(2)}`;
    before = manifest(tmp, { mtimes: true });
    passwdBefore = fs.statSync('/etc/passwd');
  });

  afterEach(() => {
    // nothing changed outside root: not under tmp, not in /etc, not in /tmp
    const after = manifest(tmp, { mtimes: true });
    for (const k of Object.keys(after)) if (k.startsWith('a/b/root/') || k === 'a/b/root') delete after[k];
    for (const k of Object.keys(before)) if (k.startsWith('a/b/root/') || k === 'a/b/root') delete before[k];
    expect(after).toEqual(before);
    expect(fs.existsSync(`/etc/${tag}`)).toBe(false);
    expect(fs.existsSync(`/tmp/${tag}`)).toBe(false);
    expect(fs.existsSync(path.join(tmp, tag))).toBe(false);
    const passwd = fs.statSync('/etc/passwd');
    expect([passwd.nlink, passwd.mtimeMs, passwd.size]).toEqual([passwdBefore.nlink, passwdBefore.mtimeMs, passwdBefore.size]);
  });

  async function run(entries: E[], mode: 'plain' | 'overlay' = 'plain'): Promise<unknown> {
    try {
      await applyLayer(root, Readable.from([layer(entries)]), { mode });
      return undefined;
    } catch (err) {
      return err;
    }
  }

  const contained = (p: string) => fs.existsSync(path.join(root, p));

  test('../../etc/x is contained', async () => {
    expect(await run([{ name: `../../etc/${tag}`, body: 'x' }, { name: `../../../../${tag}`, body: 'y' }])).toBeUndefined();
    expect(contained(`etc/${tag}`)).toBe(true);
    expect(contained(tag)).toBe(true);
  });

  test('/etc/x (absolute) is contained', async () => {
    expect(await run([{ name: `/etc/${tag}`, body: 'x' }, { name: `/tmp/${tag}/`, type: '5' }])).toBeUndefined();
    expect(contained(`etc/${tag}`)).toBe(true);
    expect(contained(`tmp/${tag}`)).toBe(true);
  });

  test('symlink a -> /etc then a/x lands in <root>/etc/x', async () => {
    expect(await run([{ name: 'a', type: '2', linkname: '/etc' }, { name: `a/${tag}`, body: 'x' }])).toBeUndefined();
    expect(fs.lstatSync(path.join(root, 'a')).isSymbolicLink()).toBe(true);
    expect(contained(`etc/${tag}`)).toBe(true);
  });

  test('symlink to .. (and ../../..) then writes through it stay inside', async () => {
    expect(
      await run([
        { name: 'up', type: '2', linkname: '..' },
        { name: `up/${tag}`, body: 'x' },
        { name: 'deep/', type: '5' },
        { name: 'deep/up3', type: '2', linkname: '../../..' },
        { name: `deep/up3/${tag}-2`, body: 'y' },
        { name: 'abs', type: '2', linkname: outside },
        { name: 'abs/target', body: 'overwritten?' },
      ]),
    ).toBeUndefined();
    expect(contained(tag)).toBe(true);
    expect(contained(`${tag}-2`)).toBe(true);
    expect(contained(`${outside.slice(1)}/target`)).toBe(true);
  });

  test('a file entry over a symlink to outside replaces the symlink', async () => {
    expect(await run([{ name: 'f', type: '2', linkname: path.join(outside, 'target') }, { name: 'f', body: 'mine' }])).toBeUndefined();
    expect(fs.lstatSync(path.join(root, 'f')).isFile()).toBe(true);
  });

  test('a directory entry over a symlink to outside replaces the symlink', async () => {
    expect(await run([{ name: 'd', type: '2', linkname: outside }, { name: 'd/', type: '5' }, { name: 'd/target', body: 'inside' }])).toBeUndefined();
    expect(fs.lstatSync(path.join(root, 'd')).isDirectory()).toBe(true);
    expect(fs.readFileSync(path.join(root, 'd/target'), 'utf8')).toBe('inside');
  });

  test('a device node or fifo over a symlink replaces the symlink', async () => {
    expect(await run([{ name: 'n', type: '2', linkname: path.join(outside, 'target') }, { name: 'n', type: '6' }])).toBeUndefined();
    expect(fs.lstatSync(path.join(root, 'n')).isFIFO()).toBe(true);
  });

  test('hard link to /etc/passwd fails (no such file inside the root)', async () => {
    const err = await run([{ name: 'pw', type: '1', linkname: '/etc/passwd' }]);
    expect(isKind(err, 'FailedPrecondition')).toBe(true);
    expect((err as Error).message).toMatch(/hard link target "\/etc\/passwd" does not exist/);
  });

  test('hard link to /etc/passwd links the root\'s own /etc/passwd when there is one', async () => {
    expect(await run([{ name: 'etc/passwd', body: 'inner' }, { name: 'pw', type: '1', linkname: '/etc/passwd' }, { name: 'pw2', type: '1', linkname: '../../../../etc/passwd' }])).toBeUndefined();
    expect(fs.statSync(path.join(root, 'etc/passwd')).nlink).toBe(3);
  });

  test('hard link through a symlinked parent and to ../ fail', async () => {
    const e1 = await run([{ name: 's', type: '2', linkname: '/etc' }, { name: 'pw', type: '1', linkname: 's/passwd' }]);
    expect(isKind(e1, 'FailedPrecondition')).toBe(true);
    const e2 = await run([{ name: 'up', type: '1', linkname: '../' }]);
    expect(isKind(e2, 'InvalidArgument')).toBe(true);
    const e3 = await run([{ name: 'x', type: '2', linkname: outside }, { name: 'h', type: '1', linkname: 'x/target' }]);
    expect(isKind(e3, 'FailedPrecondition')).toBe(true);
  });

  test('hard link to a symlink links the symlink itself, and attributes do not follow it', async () => {
    expect(await run([{ name: 's', type: '2', linkname: path.join(outside, 'target') }, { name: 'h', type: '1', linkname: 's', mode: 0o777, uid: 1234 }])).toBeUndefined();
    expect(fs.lstatSync(path.join(root, 'h')).isSymbolicLink()).toBe(true);
  });

  test('whiteouts through a symlinked directory delete inside the root only', async () => {
    fs.mkdirSync(path.join(root, outside.slice(1)), { recursive: true });
    fs.writeFileSync(path.join(root, outside.slice(1), 'target'), 'inner');
    expect(await run([{ name: 'lnk', type: '2', linkname: outside }, { name: 'lnk/.wh.target' }])).toBeUndefined();
    expect(contained(`${outside.slice(1)}/target`)).toBe(false);
    expect(await run([{ name: 'lnk2', type: '2', linkname: outside }, { name: 'lnk2/.wh..wh..opq' }])).toBeUndefined();
  });

  test('overlay mode: whiteouts and opaque markers through symlinks stay inside', async () => {
    expect(await run([{ name: 'lnk', type: '2', linkname: outside }, { name: 'lnk/.wh.target' }, { name: 'lnk/.wh..wh..opq' }], 'overlay')).toBeUndefined();
    const wh = fs.lstatSync(path.join(root, outside.slice(1), 'target'));
    expect(wh.isCharacterDevice() && wh.rdev === 0).toBe(true);
  });

  test('a symlink loop fails clearly', async () => {
    const err = await run([{ name: 'l1', type: '2', linkname: 'l2' }, { name: 'l2', type: '2', linkname: 'l1' }, { name: 'l1/x', body: 'x' }]);
    expect(isKind(err, 'InvalidArgument')).toBe(true);
  });

  test('a dangling symlink chain as parent is followed inside the root', async () => {
    expect(await run([{ name: 'p', type: '2', linkname: '/q' }, { name: 'q', type: '2', linkname: `../../${tag}` }, { name: 'p/file', body: 'x' }])).toBeUndefined();
    expect(contained(`${tag}/file`)).toBe(true);
  });
});

test('directory times are set after their children', async () => {
  const dir = path.join(tmp, 'dir');
  fs.mkdirSync(dir);
  await applyLayer(dir, Readable.from([layer([{ name: 'd/', type: '5', mtime: 1234567890 }, { name: 'd/a', body: 'a' }, { name: 'd/.wh.nothing' }, { name: 'd/b/', type: '5', mtime: 1000000000 }, { name: 'd/b/c', body: 'c' }])]));
  expect(fs.statSync(path.join(dir, 'd')).mtimeMs).toBe(1234567890_000);
  expect(fs.statSync(path.join(dir, 'd/b')).mtimeMs).toBe(1000000000_000);
});

test('names that are not UTF-8 are applied byte for byte', async () => {
  const dir = path.join(tmp, 'dir');
  fs.mkdirSync(dir);
  await applyLayer(dir, Readable.from([layer([{ name: 'caf\xe9/', type: '5' }, { name: 'caf\xe9/na\xefve', body: 'latin1' }])]));
  const names = fs.readdirSync(dir, { encoding: 'buffer' });
  expect(names.map((n) => n.toString('hex'))).toEqual([Buffer.from('caf\xe9', 'latin1').toString('hex')]);
  expect(fs.readFileSync(Buffer.concat([Buffer.from(dir + '/'), Buffer.from('caf\xe9/na\xefve', 'latin1')]), 'utf8')).toBe('latin1');
});

test('an aborted apply is Canceled; a missing root is NotFound', async () => {
  const dir = path.join(tmp, 'dir');
  fs.mkdirSync(dir);
  const ac = new AbortController();
  ac.abort();
  await expect(applyLayer(dir, Readable.from([layer([{ name: 'a', body: 'a' }])]), { signal: ac.signal })).rejects.toMatchObject({ kind: 'Canceled' });
  await expect(applyLayer(path.join(tmp, 'nope'), Readable.from([layer([])]))).rejects.toMatchObject({ kind: 'NotFound' });
});
