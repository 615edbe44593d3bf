// OOM notifications for a cgroup, as an event emitter and an async iterator.
//
// v1: an eventfd registered on memory.oom_control through cgroup.event_control (what containerd
//     does), watched on the event loop with koffi's libuv poll handle. The kernel signals the
//     eventfd on every OOM in the cgroup and once more when the cgroup is removed, which ends
//     the watch.
// v2: the oom_kill counter in memory.events, re-read whenever inotify reports the file
//     modified (the kernel notifies on every change) and, as a safety net, on a slow timer.
//     Removal of the cgroup ends the watch.
import { EventEmitter } from 'events';
import * as fs from 'fs';
import * as path from 'path';
import { BerthError } from '../../services/errdefs';
import { EFD_CLOEXEC, EFD_NONBLOCK, O_CLOEXEC, O_RDONLY } from '../native/constants';
import { isErrno } from '../native/errno';
import { eventfd } from '../native/fs';
import { ffi } from '../native/libc';
import type { OomEvent, OomWatcher } from './types';
import { fileError, parseKV } from './files';

/** The emitter and iterator shared by both watchers. */
abstract class OomWatcherBase extends EventEmitter implements OomWatcher {
  closed = false;

  constructor(readonly cgroup: string) {
    super();
  }

  protected emitOom(oomKill: number): void {
    if (!this.closed) this.emit('oom', { cgroup: this.cgroup, oomKill } satisfies OomEvent);
  }

  /** Errors go to 'error' listeners; with none, the watch stops instead of crashing the process. */
  protected fail(err: Error): void {
    if (this.listenerCount('error') > 0) this.emit('error', err);
    this.close();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.release();
    this.emit('close');
  }

  protected abstract release(): void;

  [Symbol.asyncIterator](): AsyncIterator<OomEvent> {
    const queue: OomEvent[] = [];
    let failure: Error | undefined;
    let ended = this.closed;
    let wake: (() => void) | undefined;
    const onOom = (e: OomEvent) => {
      queue.push(e);
      wake?.();
    };
    const onError = (err: Error) => {
      failure = err;
      wake?.();
    };
    const onClose = () => {
      ended = true;
      wake?.();
    };
    this.on('oom', onOom);
    this.on('error', onError);
    this.on('close', onClose);
    const detach = () => {
      this.off('oom', onOom);
      this.off('error', onError);
      this.off('close', onClose);
    };
    return {
      next: async (): Promise<IteratorResult<OomEvent>> => {
        for (;;) {
          if (queue.length) return { value: queue.shift()!, done: false };
          if (failure) {
            detach();
            throw failure;
          }
          if (ended) {
            detach();
            return { value: undefined, done: true };
          }
          await new Promise<void>((resolve) => (wake = resolve));
          wake = undefined;
        }
      },
      return: async (): Promise<IteratorResult<OomEvent>> => {
        detach();
        return { value: undefined, done: true };
      },
    };
  }
}

function readOomKill(file: string, key: string): number {
  return parseKV(fs.readFileSync(file, 'utf8')).get(key) ?? 0;
}

/** v1: eventfd on memory.oom_control. */
export class V1OomWatcher extends OomWatcherBase {
  private efd = -1;
  private handle: { stop(): void; close(): void } | undefined;
  private readonly buf = Buffer.alloc(8);
  private lastKill = 0;
  private pending: Promise<void> | undefined;

  constructor(cgroup: string, private readonly memoryDir: string) {
    super(cgroup);
    const control = path.join(memoryDir, 'memory.oom_control');
    this.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    try {
      let ofd: number;
      try {
        ofd = fs.openSync(control, O_RDONLY | O_CLOEXEC);
      } catch (err) {
        throw fileError(cgroup, 'open', control, err);
      }
      const eventControl = path.join(memoryDir, 'cgroup.event_control');
      try {
        const cfd = fs.openSync(eventControl, fs.constants.O_WRONLY | O_CLOEXEC);
        try {
          fs.writeSync(cfd, `${this.efd} ${ofd}`);
        } finally {
          fs.closeSync(cfd);
        }
      } catch (err) {
        throw fileError(cgroup, 'write', eventControl, err, `${this.efd} ${ofd}`);
      } finally {
        fs.closeSync(ofd);
      }
      this.lastKill = readOomKill(control, 'oom_kill');
      this.handle = ffi().node.poll(this.efd, { readable: true }, () => this.onReadable());
    } catch (err) {
      fs.closeSync(this.efd);
      this.efd = -1;
      throw err;
    }
  }

  private onReadable(): void {
    if (this.closed) return;
    try {
      fs.readSync(this.efd, this.buf, 0, 8, null);
    } catch (err) {
      if (isErrno(err, 'EAGAIN')) return;
      this.fail(err as Error);
      return;
    }
    if (!this.pending) this.pending = this.report().finally(() => (this.pending = undefined));
  }

  /**
   * The eventfd fires when the OOM condition begins, before the kernel has counted the kill:
   * re-read oom_kill for up to ~100 ms until it moves, then report (with the count as it is).
   */
  private async report(): Promise<void> {
    const control = path.join(this.memoryDir, 'memory.oom_control');
    let oomKill = 0;
    for (let attempt = 0; attempt < 10 && !this.closed; attempt++) {
      try {
        oomKill = readOomKill(control, 'oom_kill');
      } catch (err) {
        // the kernel signals the eventfd one last time when the cgroup goes away
        if (isErrno(err, 'ENOENT') || isErrno(err, 'ENODEV')) this.close();
        else this.fail(err as Error);
        return;
      }
      if (oomKill > this.lastKill) break;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    this.lastKill = Math.max(this.lastKill, oomKill);
    this.emitOom(oomKill);
  }

  protected release(): void {
    this.handle?.close();
    this.handle = undefined;
    if (this.efd >= 0) fs.closeSync(this.efd);
    this.efd = -1;
  }
}

/** v2 (and a v1 fallback): watch a counter in a flat-keyed file. */
export class CounterOomWatcher extends OomWatcherBase {
  private last: number;
  private watcher: fs.FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;

  /**
   * @param file memory.events (v2) or memory.oom_control (v1 fallback)
   * @param key the counter: "oom_kill"
   * @param pollMs the safety-net re-read interval
   */
  constructor(cgroup: string, private readonly file: string, private readonly key: string, pollMs = 1000) {
    super(cgroup);
    try {
      this.last = readOomKill(file, key);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) {
        throw new BerthError('NotFound', `cgroup ${cgroup}: cannot watch for OOM: ${file} does not exist (memory controller not enabled?)`, {
          cause: err,
        });
      }
      throw fileError(cgroup, 'read', file, err);
    }
    try {
      this.watcher = fs.watch(file, { persistent: true }, () => this.check());
      this.watcher.on('error', () => this.check());
    } catch {
      pollMs = Math.min(pollMs, 200);
    }
    this.timer = setInterval(() => this.check(), pollMs);
    if (this.watcher) this.timer.unref();
  }

  private check(): void {
    if (this.closed) return;
    let value: number;
    try {
      value = readOomKill(this.file, this.key);
    } catch (err) {
      if (isErrno(err, 'ENOENT') || isErrno(err, 'ENODEV')) this.close();
      else this.fail(err as Error);
      return;
    }
    if (value > this.last) {
      this.last = value;
      this.emitOom(value);
    }
  }

  protected release(): void {
    this.watcher?.close();
    this.watcher = undefined;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
