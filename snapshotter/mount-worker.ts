// Runs one mount(2) from a chosen working directory, for overlay mounts whose lowerdir list
// only fits in a page when written relative to a common parent (see mount.ts). The working
// directory is per thread only after unshare(CLONE_FS), so this runs in its own worker thread
// and never moves the daemon's cwd; the thread ends right after, taking its fs state with it.
// containerd does the same with a cloned child (mount/fmountat_linux.go).
import { parentPort, workerData } from 'node:worker_threads';
import { CLONE_FS } from '../runtime/native/constants';
import { chdir } from '../runtime/native/fs';
import { mount } from '../runtime/native/mount';
import { unshare } from '../runtime/native/ns';

export interface MountAtRequest {
  dir: string;
  source: string;
  target: string;
  fstype: string;
  flags: number;
  data: string;
}

export type MountAtReply = { ok: true } | { ok: false; message: string; code?: string; errno?: number };

if (parentPort) {
  const req = workerData as MountAtRequest;
  let reply: MountAtReply;
  try {
    unshare(CLONE_FS);
    chdir(req.dir);
    mount(req.source, req.target, req.fstype, req.flags, req.data);
    reply = { ok: true };
  } catch (err) {
    const e = err as { message: string; code?: string; errno?: number };
    reply = { ok: false, message: e.message, code: e.code, errno: e.errno };
  }
  parentPort.postMessage(reply);
}
