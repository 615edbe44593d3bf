// Task bundles on disk, laid out as containerd lays them out (containerd-wire §9.2):
//   <state>/io.containerd.runtime.v2.task/<ns>/<id>/   config.json, rootfs/, work -> <root>/…/<ns>/<id>, log (FIFO),
//                                                      address, shim-binary-path, init.pid (written by the shim)
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { S_IFIFO } from '../native/constants';
import { mknod } from '../native/mount';

export const TASK_DIR = 'io.containerd.runtime.v2.task';

export interface BundlePaths {
  bundle: string;
  work: string;
}

export function bundlePaths(stateRoot: string, workRoot: string, ns: string, id: string): BundlePaths {
  return { bundle: path.join(stateRoot, ns, id), work: path.join(workRoot, ns, id) };
}

/** Creates the bundle with the spec and the log FIFO the shim writes to. */
export function createBundle(paths: BundlePaths, specJson: Buffer): void {
  fs.mkdirSync(path.dirname(paths.bundle), { recursive: true, mode: 0o711 });
  fs.mkdirSync(paths.bundle, { mode: 0o711 });
  try {
    fs.mkdirSync(paths.work, { recursive: true, mode: 0o711 });
    fs.symlinkSync(paths.work, path.join(paths.bundle, 'work'));
    fs.writeFileSync(path.join(paths.bundle, 'config.json'), specJson, { mode: 0o666 });
    fs.mkdirSync(path.join(paths.bundle, 'rootfs'), { mode: 0o711 });
    // The shim requires the log FIFO to exist before `start`. (mknod, not a mkfifo process: a
    // synchronous fork here would stall the daemon's event loop on every task create.)
    mknod(path.join(paths.bundle, 'log'), S_IFIFO | 0o700);
  } catch (err) {
    removeBundle(paths);
    throw err;
  }
}

export function removeBundle(paths: BundlePaths): void {
  // The rootfs is unmounted by the shim's delete; never recurse into a still-mounted rootfs.
  try {
    fs.rmdirSync(path.join(paths.bundle, 'rootfs'));
  } catch {
    // absent, or (if still mounted) left for an operator rather than emptied
  }
  for (const entry of safeReaddir(paths.bundle)) {
    if (entry === 'rootfs') continue;
    fs.rmSync(path.join(paths.bundle, entry), { recursive: true, force: true });
  }
  try {
    fs.rmdirSync(paths.bundle);
  } catch {
    // rootfs still there: leave the bundle so the problem is visible
  }
  fs.rmSync(paths.work, { recursive: true, force: true });
}

function safeReaddir(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}

/** Every bundle under the task state root: [namespace, id, path]. */
export function listBundles(stateRoot: string): Array<{ ns: string; id: string; bundle: string }> {
  const out: Array<{ ns: string; id: string; bundle: string }> = [];
  for (const ns of safeReaddir(stateRoot)) {
    for (const id of safeReaddir(path.join(stateRoot, ns))) out.push({ ns, id, bundle: path.join(stateRoot, ns, id) });
  }
  return out;
}

/** Holds the log FIFO open for reading (the shim needs a reader) and copies it to our log. */
export function openShimLog(bundle: string, onLine: (line: string) => void): () => void {
  const fd = fs.openSync(path.join(bundle, 'log'), fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
  // A FIFO is read through libuv's pipe handling (fs streams would see EAGAIN).
  const stream = new net.Socket({ fd, readable: true, writable: false });
  stream.unref();
  let rest = '';
  stream.on('data', (chunk) => {
    const text = rest + chunk.toString();
    const lines = text.split('\n');
    rest = lines.pop() ?? '';
    for (const l of lines) if (l.trim()) onLine(l);
  });
  stream.on('error', () => undefined);
  return () => stream.destroy();
}
