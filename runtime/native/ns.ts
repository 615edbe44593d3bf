// Namespaces: unshare(2), setns(2), sethostname(2), setdomainname(2).
//
// All of these act on the calling thread. Node is multi-threaded, so: a user namespace cannot
// be unshared at all (the kernel requires a single-threaded caller), and setns() into a mount
// namespace needs the thread's fs state unshared first (`unshare(CLONE_FS)`). unshare of
// CLONE_NEWNS copies the fs state itself. A new PID namespace applies to the thread's children.
import * as fs from 'fs';
import { check, fn, q } from './libc';
import { NAMESPACE_FLAGS, O_CLOEXEC, O_RDONLY } from './constants';

const FLAG_NAMES: ReadonlyArray<readonly [number, string]> = [
  [0x00000080, 'CLONE_NEWTIME'],
  [0x00000200, 'CLONE_FS'],
  [0x00000400, 'CLONE_FILES'],
  [0x00020000, 'CLONE_NEWNS'],
  [0x00040000, 'CLONE_SYSVSEM'],
  [0x02000000, 'CLONE_NEWCGROUP'],
  [0x04000000, 'CLONE_NEWUTS'],
  [0x08000000, 'CLONE_NEWIPC'],
  [0x10000000, 'CLONE_NEWUSER'],
  [0x20000000, 'CLONE_NEWPID'],
  [0x40000000, 'CLONE_NEWNET'],
];

/** "CLONE_NEWUTS|CLONE_NEWNET" for error messages. */
export function cloneFlagNames(flags: number): string {
  const names: string[] = [];
  let rest = flags >>> 0;
  for (const [bit, name] of FLAG_NAMES) {
    if (rest & bit) {
      names.push(name);
      rest &= ~bit;
    }
  }
  if (rest || names.length === 0) names.push('0x' + rest.toString(16));
  return names.join('|');
}

/** unshare(2) on the calling thread. */
export function unshare(flags: number): void {
  check(fn('int unshare(int)')(flags), 'unshare', () => `unshare(${cloneFlagNames(flags)})`);
}

/** setns(2): join the namespace `fd` refers to (nstype 0 accepts any kind). */
export function setns(fd: number, nstype = 0): void {
  check(fn('int setns(int, int)')(fd, nstype), 'setns', () => `setns(fd ${fd}, ${nstype ? cloneFlagNames(nstype) : 'any'})`);
}

/** setns(2) by path, e.g. `/proc/1234/ns/net`; the file is opened and closed here. */
export function setnsPath(path: string, nstype = 0): void {
  const fd = fs.openSync(path, O_RDONLY | O_CLOEXEC);
  try {
    const ret = fn('int setns(int, int)')(fd, nstype);
    check(ret, 'setns', () => `setns(${q(path)}, ${nstype ? cloneFlagNames(nstype) : 'any'})`, path);
  } finally {
    fs.closeSync(fd);
  }
}

/** The clone flag for an OCI namespace type ("network" → CLONE_NEWNET). */
export function namespaceFlag(type: string): number {
  const flag = NAMESPACE_FLAGS[type];
  if (flag === undefined) throw new Error(`unknown namespace type ${q(type)}`);
  return flag;
}

/** sethostname(2) in the calling thread's UTS namespace. */
export function sethostname(name: string): void {
  const bytes = Buffer.from(name);
  check(fn('int sethostname(const void *, size_t)')(bytes, bytes.length), 'sethostname', () => `sethostname(${q(name)})`);
}

/** setdomainname(2) in the calling thread's UTS namespace. */
export function setdomainname(name: string): void {
  const bytes = Buffer.from(name);
  check(fn('int setdomainname(const void *, size_t)')(bytes, bytes.length), 'setdomainname', () => `setdomainname(${q(name)})`);
}

/** gethostname(2) of the calling thread (os.hostname() may be cached by libuv per process). */
export function gethostname(): string {
  const buf = Buffer.alloc(256);
  check(fn('int gethostname(void *, size_t)')(buf, buf.length), 'gethostname');
  const end = buf.indexOf(0);
  return buf.toString('utf8', 0, end < 0 ? buf.length : end);
}
