// Pseudo-terminals: posix_openpt(3)/grantpt(3)/unlockpt(3)/ptsname_r(3), window size, and the
// controlling terminal (TIOCSCTTY) for a workload started with `terminal: true`.
import * as fs from 'fs';
import { check, fn } from './libc';
import { SyscallError } from './errno';
import { O_CLOEXEC, O_NOCTTY, O_RDWR, TIOCGWINSZ, TIOCSCTTY, TIOCSWINSZ } from './constants';

export interface Pty {
  /** the master side, O_CLOEXEC; owned by the caller */
  master: number;
  /** /dev/pts/<n> */
  slavePath: string;
}

export interface Winsize {
  rows: number;
  cols: number;
  xpixel?: number;
  ypixel?: number;
}

/** ptsname_r(3): the slave device path of a master fd. */
export function ptsname(master: number): string {
  const buf = Buffer.alloc(128);
  const err = fn('int ptsname_r(int, void *, size_t)')(master, buf, buf.length);
  if (err !== 0) throw new SyscallError('ptsname_r', err, `ptsname_r(${master})`);
  return buf.toString('utf8', 0, buf.indexOf(0));
}

/**
 * A new pty pair's master (close-on-exec, not our controlling terminal) and the slave's path.
 * Open the slave with `openPtySlave` in the process or thread that hands it to the workload.
 */
export function openPty(): Pty {
  const master = check(fn('int posix_openpt(int)')(O_RDWR | O_NOCTTY | O_CLOEXEC), 'posix_openpt');
  try {
    check(fn('int grantpt(int)')(master), 'grantpt', () => `grantpt(${master})`);
    check(fn('int unlockpt(int)')(master), 'unlockpt', () => `unlockpt(${master})`);
    return { master, slavePath: ptsname(master) };
  } catch (err) {
    fs.closeSync(master);
    throw err;
  }
}

/** Opens a pty slave without making it the controlling terminal (use setControllingTerminal). */
export function openPtySlave(path: string, cloexec = true): number {
  return fs.openSync(path, O_RDWR | O_NOCTTY | (cloexec ? O_CLOEXEC : 0));
}

/** TIOCSWINSZ */
export function setWinsize(fd: number, size: Winsize): void {
  const ws = Buffer.alloc(8);
  ws.writeUInt16LE(size.rows, 0);
  ws.writeUInt16LE(size.cols, 2);
  ws.writeUInt16LE(size.xpixel ?? 0, 4);
  ws.writeUInt16LE(size.ypixel ?? 0, 6);
  check(
    fn('int ioctl(int, unsigned long, ...)')(fd, TIOCSWINSZ, 'void *', ws),
    'ioctl',
    () => `ioctl(${fd}, TIOCSWINSZ, ${size.rows}x${size.cols})`,
  );
}

/** TIOCGWINSZ */
export function getWinsize(fd: number): Required<Winsize> {
  const ws = Buffer.alloc(8);
  check(fn('int ioctl(int, unsigned long, ...)')(fd, TIOCGWINSZ, 'void *', ws), 'ioctl', () => `ioctl(${fd}, TIOCGWINSZ)`);
  return { rows: ws.readUInt16LE(0), cols: ws.readUInt16LE(2), xpixel: ws.readUInt16LE(4), ypixel: ws.readUInt16LE(6) };
}

/**
 * TIOCSCTTY: make the terminal `fd` the controlling terminal of the calling process, which must
 * be a session leader (setsid()) without one. `steal` takes it from another session (needs
 * CAP_SYS_ADMIN).
 */
export function setControllingTerminal(fd: number, steal = false): void {
  check(
    fn('int ioctl(int, unsigned long, ...)')(fd, TIOCSCTTY, 'int', steal ? 1 : 0),
    'ioctl',
    () => `ioctl(${fd}, TIOCSCTTY)`,
  );
}
