// A spare shim: started ahead of need, with its modules loaded and an init worker warm, so that
// the next `start` can hand it a task instead of paying a Node start (~150 ms here) on the
// critical path. It lives in /run/berth/s/spare-<sha256(daemon address)>/ ({sock, pid}); the
// `start` of bin/containerd-shim-berth-v1 claims it by renaming that directory to the task's
// shim directory and writing a `claim` file (namespace, id, TTRPC address, bundle) before
// printing the address, so the claim is there when the first connection arrives.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import type { ShimFlags } from './main';
import { pidInFile, running } from './pidfile';

export const SPARE_IDLE_MS = 10 * 60_000;
const WATCH_MS = 1000;
/** A claimed spare whose task still runs after this starts the next spare (off any start's path). */
const REPLACE_AFTER_MS = Number(process.env.BERTH_SHIM_SPARE_REPLACE_MS) || 1000;
const RENAME_NOREPLACE = 1;

/** Where the spare for a daemon (its gRPC address, as passed in -address) lives. */
export function spareDir(socketDir: string, daemonAddress: string): string {
  return path.join(socketDir, `spare-${createHash('sha256').update(daemonAddress).digest('hex')}`);
}

/** Takes the spare's directory, unless a live spare already holds it. */
function takeDir(dir: string): boolean {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      fs.mkdirSync(dir, { mode: 0o700 });
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      if (!fs.existsSync(path.join(dir, 'pid'))) {
        // a spare still starting has no pid file yet: leave it be, unless it died starting long ago
        const age = Date.now() - (fs.statSync(dir, { throwIfNoEntry: false })?.mtimeMs ?? Date.now());
        if (age < 60_000) return false;
      } else if (running(pidInFile(path.join(dir, 'pid')))) return false;
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
  return false;
}

/** Starts a spare for a daemon unless one is there (or starting). */
export function startSpare(socketDir: string, daemonAddress: string): void {
  if (process.env.BERTH_SHIM_SPARE === '0') return;
  const dir = spareDir(socketDir, daemonAddress);
  // a live spare, or one still starting (no pid yet): nothing to do; a dead one is replaced
  const pidFile = path.join(dir, 'pid');
  if (fs.existsSync(dir) && (!fs.existsSync(pidFile) || running(pidInFile(pidFile)))) return;
  spawn(process.execPath, [path.join(__dirname, 'main.js'), '-spare', dir, '-address', daemonAddress], { cwd: '/', detached: true, stdio: 'ignore' }).unref();
}

/** Stops the spare of a daemon (its daemon is shutting down). */
export function stopSpare(socketDir: string, daemonAddress: string): void {
  const dir = spareDir(socketDir, daemonAddress);
  const pid = pidInFile(path.join(dir, 'pid'));
  try {
    if (pid > 0) process.kill(pid, 'SIGTERM');
  } catch {
    // gone
  }
  fs.rmSync(dir, { recursive: true, force: true });
}

export async function runSpare(f: ShimFlags, dir: string): Promise<void> {
  process.chdir('/'); // not the bundle of the task whose start launched us: it goes away
  if (!takeDir(dir)) process.exit(0);
  const dirFd = fs.openSync(dir, 'r');
  // After the claim the directory has another name; the open descriptor still finds it.
  const currentDir = () => fs.readlinkSync(`/proc/self/fd/${dirFd}`);
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { fn } = require('../native/libc') as typeof import('../native/libc');
  const leave = () => {
    // Renaming our directory away first is what makes leaving safe: once it succeeds no `start`
    // can claim us; if it fails, a `start` has just claimed us and we stay for its task.
    const gone = `${dir}.leaving-${process.pid}`;
    try {
      const here = currentDir();
      if (here.endsWith(' (deleted)')) fn('void _exit(int)')(0); // removed under us: nobody can claim us
      if (here !== dir) return; // claimed
      fs.renameSync(dir, gone);
    } catch {
      return;
    }
    fs.rmSync(gone, { recursive: true, force: true });
    fn('void _exit(int)')(0); // process.exit would wait for the warm worker
  };
  let watch: NodeJS.Timeout | undefined;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { runShim } = require('./service') as typeof import('./service');
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { sharedRuntime } = require('../init') as typeof import('../init');
    // the init worker and the namespace helper the first create needs, both started ahead
    await Promise.all([sharedRuntime().pool.prewarm(), sharedRuntime().helper.prewarm()]);
    const sock = path.join(dir, 'sock');
    const listener = net.createServer({ allowHalfOpen: false });
    await new Promise<void>((resolve, reject) => {
      listener.once('error', reject);
      listener.listen(sock, () => resolve());
    });
    fs.chmodSync(sock, 0o600);
    let claimed = false;
    let since = Date.now();
    let replace: NodeJS.Timeout | undefined;
    const daemonSocket = f.address.replace(/^unix:\/\//, '');
    const watchDaemon = () =>
      setInterval(() => {
        // The daemon went away (its socket is gone), or nobody needed us for a long time.
        if (!fs.existsSync(daemonSocket) || Date.now() - since > SPARE_IDLE_MS) leave();
      }, WATCH_MS);
    const recycle = (): boolean => {
      if (process.env.BERTH_SHIM_SPARE === '0') return false;
      const here = currentDir();
      fs.rmSync(path.join(here, 'claim'), { force: true });
      // NOREPLACE: a spare already there, or one starting (its empty directory), keeps its place
      if (fn('int renameat2(int, const char *, int, const char *, unsigned int)')(-100, here, -100, dir, RENAME_NOREPLACE) !== 0) return false;
      clearTimeout(replace);
      claimed = false;
      since = Date.now();
      watch = watchDaemon();
      leaveBundle(fn);
      process.title = 'containerd-shim-berth-v1 -namespace  -id ';
      // ready for the next claim as a new spare is (the task's create kept no warm thread)
      void Promise.all([sharedRuntime().pool.prewarm(), sharedRuntime().helper.prewarm()]).catch(() => undefined);
      return true;
    };
    const shim = await runShim(f, `unix://${sock}`, { listener, dir: currentDir, recycle });
    listener.prependListener('connection', (conn: net.Socket) => {
      if (claimed) return;
      const here = currentDir();
      let claim: string[];
      try {
        claim = fs.readFileSync(path.join(here, 'claim'), 'utf8').split('\n');
      } catch {
        conn.destroy(); // nobody claimed us: not a connection for a task
        return;
      }
      claimed = true;
      clearInterval(watch);
      const [namespace = '', id = '', ttrpcAddress = '', bundle = ''] = claim;
      if (bundle) adoptBundle(bundle, fn);
      shim.identify({ namespace, id, ttrpcAddress: ttrpcAddress || undefined });
      // A short task gives us back as the spare when it ends (recycle); a long one leaves the
      // daemon without a spare, so one starts once this task's start is well over.
      replace = setTimeout(() => shim.taskCount() > 0 && startSpare(path.dirname(dir), f.address), REPLACE_AFTER_MS);
      replace.unref();
    });
    // Ready only now: `start` claims a spare whose socket exists and whose pid is alive.
    fs.writeFileSync(path.join(dir, 'pid'), String(process.pid));
    watch = watchDaemon();
  } catch (err) {
    process.stderr.write(`berth spare shim: ${(err as Error).message}\n`);
    leave();
    fn('void _exit(int)')(1);
  }
}

/** Back to being a spare: no bundle, no log. */
function leaveBundle(fn: typeof import('../native/libc').fn): void {
  try {
    process.chdir('/');
    const devNull = fs.openSync('/dev/null', 'w');
    fn('int dup2(int, int)')(devNull, 2);
    fs.closeSync(devNull);
  } catch {
    // keep what we have
  }
}

/** Work in the claiming task's bundle, and log to its `log` FIFO as a shim started there would. */
function adoptBundle(bundle: string, fn: typeof import('../native/libc').fn): void {
  try {
    process.chdir(bundle);
    const logFd = fs.openSync(path.join(bundle, 'log'), fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
    fn('int dup2(int, int)')(logFd, 2);
    fs.closeSync(logFd);
  } catch {
    // no log reader: keep quiet
  }
}
