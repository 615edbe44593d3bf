// Entry point of the namespace helper thread (see helper.ts): one long-lived worker per process
// that finishes containers once their workload process exists and is parked on the exec FIFO.
//
// For each job it sets the resource limits of the parked process (prlimit(2) needs the caller's
// real ids to match the target's, so the thread borrows them while keeping euid 0), then enters
// the container's mount namespace with setns(2) and moves into place what only the process's
// existence makes possible: procfs for the container's PID namespace (fsconfig "pidns"), the
// mounts, masks and read-only paths beneath it. It then returns to the host's mount namespace.
// Nothing else about the thread changes, so it is reused.
import * as fs from 'fs';
import { parentPort } from 'worker_threads';
import { lastCap } from '../native/caps';
import { CLONE_FS, CLONE_NEWNS, O_CLOEXEC, O_DIRECTORY, O_PATH, O_RDONLY } from '../native/constants';
import { unshare, setns } from '../native/ns';
import { setresgid, setresuid, setrlimit, setThreadName } from '../native/proc';
import { closeQuietly } from './fsroot';
import { FinishJob, HelperMessage, serializeError } from './messages';
import { attachDetached, detachedFilesystem, maskPath, readonlyPath } from './mounts';

if (!parentPort) throw new Error('runtime/init/helper-worker.js runs as a worker thread');
const port = parentPort;
const post = (m: HelperMessage) => port.postMessage(m);

lastCap();
unshare(CLONE_FS);
setThreadName('berth-nshelper');
const hostMnt = fs.openSync('/proc/thread-self/ns/mnt', O_RDONLY | O_CLOEXEC);

/** Runs `fn` with this thread's real uid/gid set to the target's (euid stays 0: no capability is lost). */
function withRealIds<T>(uid: number, gid: number, fn: () => T): T {
  if (uid === 0 && gid === 0) return fn();
  setresgid(gid, -1, -1);
  setresuid(uid, -1, -1);
  try {
    return fn();
  } finally {
    setresuid(0, -1, -1);
    setresgid(0, -1, -1);
  }
}

function finish(job: FinishJob): void {
  if (job.rlimits.length) {
    withRealIds(job.uid, job.gid, () => {
      for (const r of job.rlimits) setrlimit(r.resource, { soft: r.soft, hard: r.hard }, job.pid);
    });
  }
  if (!job.mounts.length && !job.masked.length && !job.readonlyPaths.length) return;
  const opened: number[] = [];
  const detached: number[] = [];
  try {
    const pidns = fs.openSync(`/proc/${job.pid}/ns/pid`, O_RDONLY | O_CLOEXEC);
    opened.push(pidns);
    const mntns = fs.openSync(`/proc/${job.pid}/ns/mnt`, O_RDONLY | O_CLOEXEC);
    opened.push(mntns);
    // created in the host's namespace: fsopen/fsmount make anonymous mounts that may be moved anywhere
    for (const d of job.mounts) detached.push(d.treeFd ?? detachedFilesystem(d.mount, pidns));
    setns(mntns, CLONE_NEWNS);
    try {
      const root = fs.openSync('/', O_PATH | O_DIRECTORY | O_CLOEXEC);
      opened.push(root);
      job.mounts.forEach((d, i) => attachDetached(root, detached[i], d.mount, d.isDir));
      for (const p of job.readonlyPaths) readonlyPath(root, p);
      for (const p of job.masked) maskPath(root, p);
    } finally {
      setns(hostMnt, CLONE_NEWNS);
    }
  } finally {
    for (const fd of detached) closeQuietly(fd);
    // tree fds made by the worker belong to this job even when they were never used
    for (const d of job.mounts) if (d.treeFd !== undefined && !detached.includes(d.treeFd)) closeQuietly(d.treeFd);
    for (const fd of opened) closeQuietly(fd);
  }
}

port.on('message', (job: FinishJob) => {
  try {
    finish(job);
    post({ type: 'done', seq: job.seq });
  } catch (err) {
    post({ type: 'failed', seq: job.seq, error: serializeError(err) });
  }
});
post({ type: 'ready' });
