// Entry point of the reaper thread (see reaper.ts): blocks in epoll_wait(2) on the pidfds of the
// processes being watched and reports those that became readable (exited). The caller's thread
// adds the pidfds (EPOLLONESHOT) and reaps; an eventfd in the set wakes this thread to stop.
import { parentPort, workerData } from 'worker_threads';
import * as fs from 'fs';
import { fn, lastErrno } from '../native/libc';
import { setThreadName } from '../native/proc';

if (!parentPort) throw new Error('runtime/init/reaper-worker.js runs as a worker thread');
const port = parentPort;
const { epfd, wakefd, stop } = workerData as { epfd: number; wakefd: number; stop: SharedArrayBuffer };
const stopFlag = new Int32Array(stop);

/** struct epoll_event is packed (12 bytes) on x86_64, 16 bytes with data at 8 elsewhere. */
const EVENT_SIZE = process.arch === 'x64' ? 12 : 16;
const DATA_OFFSET = process.arch === 'x64' ? 4 : 8;
const MAX = 64;
const EINTR = 4;

setThreadName('berth-reaper');
const epollWait = fn('int epoll_wait(int, void *, int, int)');
const events = Buffer.alloc(EVENT_SIZE * MAX);
const drain = Buffer.alloc(8);
port.postMessage({ type: 'ready' });
for (;;) {
  const n = epollWait(epfd, events, MAX, -1) as number;
  if (n < 0) {
    if (lastErrno() === EINTR) continue;
    port.postMessage({ type: 'error', errno: lastErrno() });
    break;
  }
  const fds: number[] = [];
  for (let i = 0; i < n; i++) {
    const fd = Number(events.readBigUInt64LE(i * EVENT_SIZE + DATA_OFFSET));
    if (fd === wakefd) {
      try {
        fs.readSync(wakefd, drain, 0, 8, null);
      } catch {
        /* EAGAIN: already drained */
      }
    } else fds.push(fd);
  }
  if (fds.length) port.postMessage({ type: 'exited', fds });
  if (Atomics.load(stopFlag, 0)) break;
}
port.close();
