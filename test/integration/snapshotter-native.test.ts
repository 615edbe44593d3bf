// The native snapshotter's tree copy (snapshotter/copy.ts): every kind of entry and attribute
// survives a prepare on top of a committed snapshot.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { copyTree } from '../../snapshotter/copy';
import * as fst from '../../snapshotter/fstest';
import { NativeSnapshotter } from '../../snapshotter/native';
import { AT_FDCWD, AT_SYMLINK_NOFOLLOW, lsetxattr, utimensat } from '../../snapshotter/sys';

let tmp: string;
beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-snapshot-native-'));
});
afterEach(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

const tree = fst.apply(
  fst.createDir('d', 0o2750),
  fst.chown('d', 12, 34),
  fst.createFile('d/suid', 'x', 0o4711),
  fst.createFile('d/sticky-file', 'y', 0o1644),
  fst.link('d/suid', 'hard'),
  fst.symlink('../nowhere', 'd/dangling'),
  fst.chown('d/dangling', 7, 8),
  fst.mknod('d/null', 0o20666, 1, 3),
  fst.mknod('blk', 0o60640, 259, 70000),
  fst.mknod('fifo', 0o10600),
  fst.createDir('empty', 0o0),
  (root) => {
    lsetxattr(path.join(root, 'd/suid'), 'security.capability', Buffer.from('0100000200200000000000000000000000000000', 'hex'));
    lsetxattr(path.join(root, 'd'), 'user.dir', Buffer.from('on a dir'));
    lsetxattr(path.join(root, 'd/dangling'), 'security.test', Buffer.from('on a symlink'));
    fs.writeFileSync(Buffer.from(path.join(root, 'na\xefve'), 'latin1'), 'latin1 name');
    utimensat(AT_FDCWD, path.join(root, 'd/dangling'), { sec: 100, nsec: 5 }, { sec: 200, nsec: 123456789 }, AT_SYMLINK_NOFOLLOW);
    utimensat(AT_FDCWD, path.join(root, 'd'), { sec: 300, nsec: 0 }, { sec: 400, nsec: 987654321 }, 0);
  },
);

test('copyTree keeps types, owners, modes, xattrs, hard links, devices, names and times', async () => {
  const src = path.join(tmp, 'src');
  const dst = path.join(tmp, 'dst');
  fs.mkdirSync(src);
  fs.mkdirSync(dst);
  tree(src);
  fs.chmodSync(src, 0o751);
  await copyTree(src, dst);
  expect(fst.manifest(dst, { mtimes: true })).toEqual(fst.manifest(src, { mtimes: true }));
  expect(fs.statSync(dst).mode & 0o7777).toBe(0o751);
  expect(fs.readdirSync(dst, { encoding: 'buffer' }).some((n) => n.equals(Buffer.from('na\xefve', 'latin1')))).toBe(true);
});

test('native prepare copies the parent snapshot; the copy is independent of it', async () => {
  const sn = await NativeSnapshotter.open(path.join(tmp, 'root'));
  try {
    const [m] = await sn.prepare('a', '');
    tree(m.source);
    await sn.commit('c', 'a');
    const [child] = await sn.prepare('b', 'c');
    expect(child.source).not.toBe(m.source);
    expect(fst.manifest(child.source, { mtimes: true })).toEqual(fst.manifest(m.source, { mtimes: true }));
    fs.writeFileSync(path.join(child.source, 'd/suid'), 'changed');
    expect(fs.readFileSync(path.join(m.source, 'd/suid'), 'utf8')).toBe('x');
    const [view] = await sn.view('v', 'c');
    expect(view.options).toEqual(['ro', 'rbind']);
    expect(fst.manifest(view.source)).toEqual(fst.manifest(m.source));
  } finally {
    await sn.close();
  }
});
