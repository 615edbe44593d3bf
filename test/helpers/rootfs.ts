// A minimal busybox root filesystem in a temporary directory, for containers run from a rootfs
// path (ctr run --rootfs, dockerd's style) rather than from an unpacked image.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { tempDir } from './daemon';

export const APPLETS = ['sh', 'echo', 'cat', 'sleep', 'true', 'false', 'ls', 'id', 'hostname', 'ps', 'tty', 'stty', 'env'];

export function busyboxRootfs(): string {
  const root = path.join(tempDir('berth-rootfs-'), 'rootfs');
  for (const d of ['bin', 'proc', 'dev', 'sys', 'etc', 'tmp']) fs.mkdirSync(path.join(root, d), { recursive: true });
  fs.copyFileSync('/bin/busybox', path.join(root, 'bin', 'busybox'));
  fs.chmodSync(path.join(root, 'bin', 'busybox'), 0o755);
  for (const a of APPLETS) fs.symlinkSync('busybox', path.join(root, 'bin', a));
  fs.writeFileSync(path.join(root, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  fs.writeFileSync(path.join(root, 'etc', 'group'), 'root:x:0:\n');
  return root;
}

export function removeRootfs(root: string): void {
  fs.rmSync(path.dirname(root), { recursive: true, force: true });
}
