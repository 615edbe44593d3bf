// Layer diff (snapshotter/diff.ts): the changes between two trees, or an overlay upper dir, as
// an OCI tar; applying the diff onto the lower tree must give the upper tree back.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import * as zlib from 'node:zlib';
import { applyLayer, applyToMounts } from '../../snapshotter/apply';
import { copyTree } from '../../snapshotter/copy';
import { diffStream, writeDiff, MEDIA_TYPE_LAYER, MEDIA_TYPE_LAYER_GZIP } from '../../snapshotter/diff';
import * as fst from '../../snapshotter/fstest';
import { detachAll, mountAll, unmountAll } from '../../snapshotter/mount';
import { OverlaySnapshotter } from '../../snapshotter/overlay';
import { lsetxattr } from '../../snapshotter/sys';
import { TarParser, type TarHeader } from '../../snapshotter/tar';
import type { Mount } from '../../snapshotter/types';

jest.setTimeout(60_000);

let tmp: string;
const mounted: string[] = [];
let sn: OverlaySnapshotter | undefined;

beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-snapshot-diff-'));
});

afterEach(async () => {
  for (const t of mounted.splice(0).reverse()) await unmountAll(t).catch(() => detachAll(t));
  await sn?.close();
  sn = undefined;
  fs.rmSync(tmp, { recursive: true, force: true });
});

async function mountAt(mounts: Mount[], name: string): Promise<string> {
  const target = path.join(tmp, name);
  fs.mkdirSync(target, { recursive: true });
  mounted.push(target);
  await mountAll(mounts, target);
  return target;
}

async function unmountAt(target: string): Promise<void> {
  await unmountAll(target);
  mounted.splice(mounted.indexOf(target), 1);
}

const CAP = Buffer.from('0100000200200000000000000000000000000000', 'hex');

const lowerTree = fst.apply(
  fst.createDir('etc', 0o755),
  fst.createFile('etc/hosts', '127.0.0.1 localhost\n'),
  fst.createFile('etc/keep', 'unchanged'),
  fst.createDir('bin', 0o755),
  fst.createFile('bin/tool', 'v1', 0o755),
  fst.link('bin/tool', 'bin/tool-link'),
  fst.createDir('gone-dir', 0o755),
  fst.createFile('gone-dir/a', 'a'),
  fst.createDir('gone-dir/sub', 0o755),
  fst.createFile('gone-dir/sub/b', 'b'),
  fst.createFile('gone-file', 'x'),
  fst.createFile('becomes-dir', 'f'),
  fst.createDir('becomes-file', 0o755),
  fst.createFile('becomes-file/x', 'x'),
  fst.symlink('etc/hosts', 'sym'),
  fst.createDir('opaque', 0o755),
  fst.createFile('opaque/old1', '1'),
  fst.createFile('opaque/old2', '2'),
  fst.createDir('deep', 0o755),
  fst.createDir('deep/er', 0o750),
  fst.createFile('deep/er/file', 'deep'),
);

const changes = fst.apply(
  fst.createFile('etc/hosts', '127.0.0.1 localhost berth\n'),
  fst.removeAll('gone-dir'),
  fst.removeAll('gone-file'),
  fst.removeAll('becomes-dir'),
  fst.createDir('becomes-dir', 0o700),
  fst.createFile('becomes-dir/inner', 'inner'),
  fst.removeAll('becomes-file'),
  fst.createFile('becomes-file', 'now a file'),
  fst.removeAll('sym'),
  fst.symlink('etc/keep', 'sym'),
  fst.createFile('bin/new', 'suid', 0o4755),
  fst.link('bin/new', 'bin/new-link'),
  fst.mknod('null', 0o20666, 1, 3),
  fst.mknod('fifo', 0o10600),
  fst.chown('etc/keep', 1000, 1000),
  fst.removeAll('opaque'),
  fst.createDir('opaque', 0o755),
  fst.createFile('opaque/new', 'n'),
  fst.createFile('deep/er/added', 'added'),
  fst.createDir('new-dir', 0o711),
  fst.createFile('new-dir/f', 'f'),
  (root) => lsetxattr(path.join(root, 'bin/new'), 'security.capability', CAP),
  (root) => fs.writeFileSync(path.join(root, 'big'), Buffer.alloc(3 * 1024 * 1024 + 7, 0x61)),
);

function entries(tarData: Buffer): TarHeader[] {
  const out: TarHeader[] = [];
  const p = new TarParser({ entry: () => undefined, data: () => undefined, end: (h) => out.push(h) });
  p.write(tarData);
  p.finish();
  return out;
}

async function collect(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

test('tree diff of two plain trees, applied onto the lower, gives the upper back', async () => {
  const lower = path.join(tmp, 'lower');
  const upper = path.join(tmp, 'upper');
  fs.mkdirSync(lower);
  fs.mkdirSync(upper);
  lowerTree(lower);
  await copyTree(lower, upper);
  changes(upper);

  const out = new PassThrough();
  const collected = collect(out);
  const result = await writeDiff(lower, upper, out);
  const gz = await collected;
  const raw = zlib.gunzipSync(gz);
  expect(result).toEqual({
    mediaType: MEDIA_TYPE_LAYER_GZIP,
    digest: `sha256:${createHash('sha256').update(gz).digest('hex')}`,
    diffID: `sha256:${createHash('sha256').update(raw).digest('hex')}`,
    size: gz.length,
    uncompressedSize: raw.length,
  });

  const names = entries(raw).map((h) => `${h.type}:${h.name}`);
  expect(names).toContain('0:.wh.gone-dir');
  expect(names).toContain('0:.wh.gone-file');
  expect(names).not.toContain('0:gone-dir/a');
  expect(names.filter((n) => n.endsWith('etc/keep'))).toHaveLength(1);
  expect(names).not.toContain('0:bin/tool'); // unchanged
  expect(names).toContain('5:deep/'); // parents of changes are included
  expect(names).toContain('5:deep/er/');
  expect(names.filter((n) => n.startsWith('1:'))).toEqual(['1:bin/new-link']);
  const newHdr = entries(raw).find((h) => h.name === 'bin/new')!;
  expect(newHdr.xattrs?.get('security.capability')).toEqual(CAP);
  expect(newHdr.mode).toBe(0o4755);

  // apply onto a copy of the lower tree: the result is the upper tree
  const target = path.join(tmp, 'target');
  fs.mkdirSync(target);
  await copyTree(lower, target);
  const applied = await applyLayer(target, Readable.from([gz]));
  expect(applied.diffID).toBe(result.diffID);
  expect(fst.manifest(target)).toEqual(fst.manifest(upper));
});

test('a first layer (no lower) and an uncompressed diff', async () => {
  const upper = path.join(tmp, 'upper');
  fs.mkdirSync(upper);
  lowerTree(upper);
  const { stream, result } = diffStream(undefined, upper, { compression: 'none' });
  const raw = await collect(stream);
  const r = await result;
  expect(r.mediaType).toBe(MEDIA_TYPE_LAYER);
  expect(r.digest).toBe(r.diffID);
  expect(r.size).toBe(raw.length);
  const target = path.join(tmp, 'target');
  fs.mkdirSync(target);
  await applyLayer(target, Readable.from([raw]));
  expect(fst.manifest(target)).toEqual(fst.manifest(upper));
  // file mtimes survive to the second
  const mt = (p: string) => Math.floor(fs.lstatSync(p).mtimeMs / 1000);
  expect(mt(path.join(target, 'etc/hosts'))).toBe(mt(path.join(upper, 'etc/hosts')));
});

test('snapshots: the diff of a mounted active snapshot against its parent view, tree and overlay-upper ways', async () => {
  sn = await OverlaySnapshotter.open(path.join(tmp, 'root'));
  // base layer
  const baseMount = await mountAt(await sn.prepare('base-a', ''), 'base-a');
  lowerTree(baseMount);
  await unmountAt(baseMount);
  await sn.commit('base', 'base-a');
  // the container's changes
  const active = await sn.prepare('work', 'base');
  const workMount = await mountAt(active, 'work');
  changes(workMount);
  const expected = fst.manifest(workMount);
  await unmountAt(workMount);

  const lowerView = await mountAt(await sn.view('lower-view', 'base'), 'lower-view');
  const upperMount = await mountAt(await sn.mounts('work'), 'upper-mount');

  // 1. two mounted trees
  const out1 = new PassThrough();
  const got1 = collect(out1);
  await writeDiff(lowerView, upperMount, out1);
  const tree = await got1;

  // 2. the overlay upper dir alone
  const upperDir = active[0].options.find((o) => o.startsWith('upperdir='))!.slice('upperdir='.length);
  const out2 = new PassThrough();
  const got2 = collect(out2);
  await writeDiff(lowerView, upperDir, out2, { upperKind: 'overlay' });
  const overlay = await got2;
  const ovNames = entries(zlib.gunzipSync(overlay)).map((h) => h.name);
  expect(ovNames).toContain('opaque/.wh..wh..opq');
  expect(ovNames).toContain('.wh.gone-dir');

  for (const [i, layerData] of [tree, overlay].entries()) {
    // onto a plain copy of the lower
    const plain = path.join(tmp, `plain-${i}`);
    fs.mkdirSync(plain);
    await copyTree(lowerView, plain);
    await applyLayer(plain, Readable.from([layerData]));
    expect(fst.manifest(plain)).toEqual(expected);
    // into a new overlay snapshot on the same parent, seen through its mount
    await applyToMounts(await sn.prepare(`extract-${i}`, 'base'), Readable.from([layerData]));
    await sn.commit(`applied-${i}`, `extract-${i}`);
    const view = await mountAt(await sn.view(`check-${i}`, `applied-${i}`), `check-${i}`);
    expect(fst.manifest(view)).toEqual(expected);
  }
});

test('overlay upper dirs written with redirect_dir are refused', async () => {
  const upper = path.join(tmp, 'upper');
  fs.mkdirSync(path.join(upper, 'moved'), { recursive: true });
  lsetxattr(path.join(upper, 'moved'), 'trusted.overlay.redirect', Buffer.from('/orig'));
  const out = new PassThrough();
  out.resume();
  await expect(writeDiff(undefined, upper, out, { upperKind: 'overlay' })).rejects.toMatchObject({ kind: 'FailedPrecondition' });
});
