// Entry point of an init worker thread (see setup.ts). Started ahead of time ("warm"): it loads
// everything it will need, unshares CLONE_FS, names itself, reports its thread id and waits for
// one job. It runs that job, reports, and ends: a thread whose root, namespaces and credentials
// were changed is never reused.
import { parentPort } from 'worker_threads';
import { lastCap } from '../native/caps';
import { CLONE_FS } from '../native/constants';
import { unshare } from '../native/ns';
import { gettid, setThreadName } from '../native/proc';
import { serializeError, WorkerJob, WorkerMessage } from './messages';
import { ParkingInfo, runExec, runInit, SetupError } from './setup';

if (!parentPort) throw new Error('runtime/init/worker.js runs as a worker thread');
const port = parentPort;
const post = (m: WorkerMessage) => port.postMessage(m);

// Load koffi and libc, and read what later steps would read lazily (after pivot_root those host
// files are out of reach).
lastCap();
unshare(CLONE_FS);
setThreadName('berth-init');
post({ type: 'ready', tid: gettid() });

port.once('message', (job: WorkerJob) => {
  try {
    const hooks = { parking: (info: ParkingInfo) => post({ type: 'parking', ...info }) };
    const pid = job.kind === 'init' ? runInit(job, hooks) : runExec(job, hooks);
    post({ type: 'spawned', pid });
  } catch (err) {
    const phase = err instanceof SetupError ? err.phase : 'init';
    const kind = err instanceof SetupError ? err.kind : undefined;
    post({ type: 'failed', phase, error: serializeError(err, kind) });
  } finally {
    port.close();
  }
});
