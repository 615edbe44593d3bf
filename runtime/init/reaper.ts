// Exit statuses of the processes the init stage starts. They are children of this process (cloned
// by its worker threads) and unknown to libuv, so they are reaped here.
//
// Each watched process gets a pidfd (pidfd_open(2)), added with EPOLLONESHOT to an epoll set; one
// epoll_wait(2) at a time waits on it in libuv's thread pool (a koffi asynchronous call), and when
// a pidfd becomes readable the process has exited and this thread reaps it with waitid(P_PID, pid,
// WNOHANG). Nothing depends on SIGCHLD reaching JavaScript (a test runner's sandboxed `process`
// never sees it). A pool thread, not a worker thread: a worker is a V8 isolate of its own, some
// 9 MB in every shim. The wait is pending only while something is watched (it keeps the process
// alive, the way a ChildProcess does); an eventfd in the set wakes it to stop.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { EFD_CLOEXEC, EFD_NONBLOCK, O_CLOEXEC } from '../native/constants';
import { isErrno } from '../native/errno';
import { eventfd } from '../native/fs';
import { check, fn } from '../native/libc';
import type { KoffiFunction } from 'koffi';
import { pidfdOpen } from '../native/proc';
import { closeQuietly } from './fsroot';
import { CLD_EXITED, reapChild } from './sys';

export interface ExitStatus {
  /** the exit code; 128 + signal number for a process killed by a signal (runc's convention) */
  exitStatus: number;
  exitedAt: Date;
  /** the signal that killed it */
  signal?: NodeJS.Signals;
}

const SIGNAL_NAMES = new Map<number, NodeJS.Signals>(Object.entries(os.constants.signals).map(([name, n]) => [n, name as NodeJS.Signals]));

const EPOLL_CTL_ADD = 1;
const EPOLL_CTL_DEL = 2;
const EPOLL_CTL_MOD = 3;
const EPOLLIN = 0x1;
const EPOLLONESHOT = 1 << 30;
const EVENT_SIZE = process.arch === 'x64' ? 12 : 16;
const DATA_OFFSET = process.arch === 'x64' ? 4 : 8;
const MAX_EVENTS = 64;

function epollCtl(epfd: number, op: number, fd: number, events: number): void {
  const ev = Buffer.alloc(EVENT_SIZE);
  ev.writeUInt32LE(events >>> 0, 0);
  ev.writeBigUInt64LE(BigInt(fd), DATA_OFFSET);
  check(fn('int epoll_ctl(int, int, int, void *)')(epfd, op, fd, ev), 'epoll_ctl', () => `epoll_ctl(${epfd}, ${op}, ${fd})`);
}

interface Watch {
  pid: number;
  pidfd: number;
  promise: Promise<ExitStatus>;
  resolve: (s: ExitStatus) => void;
}

export class Reaper {
  private readonly byPid = new Map<number, Watch>();
  private readonly byFd = new Map<number, Watch>();
  private epfd?: number;
  private wakefd?: number;
  private readonly events = Buffer.alloc(EVENT_SIZE * MAX_EVENTS);
  /** Resolves when the epoll_wait in the pool returns; undefined when none is pending. */
  private waiting?: Promise<void>;
  private closing = false;

  private ensureSet(): void {
    if (this.epfd !== undefined) return;
    this.epfd = check(fn('int epoll_create1(int)')(O_CLOEXEC), 'epoll_create1');
    this.wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    epollCtl(this.epfd, EPOLL_CTL_ADD, this.wakefd, EPOLLIN);
  }

  /** One epoll_wait in the pool while anything is watched; its answer re-arms it. */
  private wait(): void {
    if (this.waiting || this.closing || this.byPid.size === 0) return;
    const epollWait = fn('int epoll_wait(int, void *, int, int)') as KoffiFunction & { async: (...args: unknown[]) => void };
    this.waiting = new Promise<void>((resolve) =>
      epollWait.async(this.epfd, this.events, MAX_EVENTS, -1, (err: unknown, n: number) => {
        this.waiting = undefined;
        resolve();
        const fds: number[] = [];
        // n < 0: interrupted (EINTR); the next wait goes on
        for (let i = 0; !err && i < n; i++) {
          const fd = Number(this.events.readBigUInt64LE(i * EVENT_SIZE + DATA_OFFSET));
          if (fd === this.wakefd) {
            try {
              fs.readSync(fd, Buffer.alloc(8), 0, 8, null);
            } catch {
              /* EAGAIN: already drained */
            }
          } else fds.push(fd);
        }
        if (fds.length) this.onExited(fds);
        if (err || n < 0) setTimeout(() => this.wait(), 10).unref();
        else this.wait();
      }),
    );
  }

  /** The exit status of child `pid`, once it has exited (it is reaped then). */
  watch(pid: number): Promise<ExitStatus> {
    const existing = this.byPid.get(pid);
    if (existing) return existing.promise;
    this.ensureSet();
    let resolve!: (s: ExitStatus) => void;
    const promise = new Promise<ExitStatus>((r) => (resolve = r));
    let pidfd: number;
    try {
      pidfd = pidfdOpen(pid);
    } catch (err) {
      if (!isErrno(err, 'ESRCH')) throw err;
      return Promise.resolve(this.reap(pid) ?? { exitStatus: 255, exitedAt: new Date() });
    }
    const w: Watch = { pid, pidfd, promise, resolve };
    this.byPid.set(pid, w);
    this.byFd.set(pidfd, w);
    epollCtl(this.epfd!, EPOLL_CTL_ADD, pidfd, EPOLLIN | EPOLLONESHOT);
    this.wait();
    return promise;
  }

  /** waitid(P_PID, WNOHANG): the status if `pid` has exited (ECHILD, reaped elsewhere: 255). */
  private reap(pid: number): ExitStatus | undefined {
    try {
      const r = reapChild(pid);
      if (!r) return undefined;
      const exitedAt = new Date();
      if (r.code === CLD_EXITED) return { exitStatus: r.status, exitedAt };
      const signal = SIGNAL_NAMES.get(r.status);
      return { exitStatus: 128 + r.status, exitedAt, ...(signal ? { signal } : {}) };
    } catch (err) {
      // glibc's posix_spawn reaps a child whose exec failed: the status is unknown
      if (isErrno(err, 'ECHILD')) return { exitStatus: 255, exitedAt: new Date() };
      throw err;
    }
  }

  private onExited(fds: number[]): void {
    for (const fd of fds) {
      const w = this.byFd.get(fd);
      if (!w) continue;
      const status = this.reap(w.pid);
      if (!status) {
        epollCtl(this.epfd!, EPOLL_CTL_MOD, fd, EPOLLIN | EPOLLONESHOT); // not yet: re-arm
        continue;
      }
      epollCtl(this.epfd!, EPOLL_CTL_DEL, fd, 0);
      closeQuietly(fd);
      this.byFd.delete(fd);
      this.byPid.delete(w.pid);
      w.resolve(status);
    }
  }

  /** Stops waiting (watches still pending never resolve); the next watch starts again. */
  async close(): Promise<void> {
    if (this.epfd === undefined) return;
    this.closing = true;
    if (this.waiting) {
      const one = Buffer.alloc(8);
      one.writeBigUInt64LE(1n);
      fs.writeSync(this.wakefd!, one);
      await this.waiting;
    }
    for (const watch of this.byFd.values()) closeQuietly(watch.pidfd);
    this.byFd.clear();
    this.byPid.clear();
    closeQuietly(this.epfd);
    closeQuietly(this.wakefd);
    this.epfd = this.wakefd = undefined;
    this.closing = false;
  }
}
