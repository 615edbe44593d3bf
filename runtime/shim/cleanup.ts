// The `delete` sub-command: what a shim leaves when it dies (containerd-wire §7.3). Kills the
// container's processes (through its cgroup, else its init pid), unmounts <bundle>/rootfs,
// removes the cgroup, and prints a containerd.task.v2.DeleteResponse. Light on modules: it runs
// after every shim exit, on the path of Tasks/Delete.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ShimFlags } from './main';
import { pidInFile, running } from './pidfile';

function isMounted(target: string): boolean {
  try {
    const info = fs.readFileSync('/proc/self/mountinfo', 'utf8');
    const esc = target.replace(/[ \t\n\\]/g, (c) => '\\' + c.charCodeAt(0).toString(8).padStart(3, '0'));
    return info.split('\n').some((l) => l.split(' ')[4] === esc);
  } catch {
    return false;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The directory (socket, pid) of a shim that died; a grouped shim still alive keeps it. */
function removeDeadShimDir(bundle: string): void {
  let sock: string;
  try {
    sock = fs.readFileSync(path.join(bundle, 'address'), 'utf8').trim().replace(/^unix:\/\//, '');
  } catch {
    return;
  }
  if (path.basename(sock) !== 'sock') return; // not a shim directory of ours
  const dir = path.dirname(sock);
  if (running(pidInFile(path.join(dir, 'pid')))) return;
  fs.rmSync(dir, { recursive: true, force: true });
}

export async function cleanupCommand(f: ShimFlags): Promise<void> {
  const bundle = f.bundle || process.cwd();
  const pid = pidInFile(path.join(bundle, 'init.pid')); // 0: the shim never created the container
  let cgroupsPath: string | undefined;
  try {
    cgroupsPath = JSON.parse(fs.readFileSync(path.join(bundle, 'config.json'), 'utf8')).linux?.cgroupsPath;
  } catch {
    /* no spec */
  }
  // Left running only if the shim died without deleting it: the deleting shim removes init.pid.
  if (running(pid)) {
    if (cgroupsPath) {
      try {
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        const { loadCgroup } = require('../cgroups') as typeof import('../cgroups');
        const cg = loadCgroup(cgroupsPath);
        if (await cg.exists()) await cg.kill('SIGKILL');
      } catch (err) {
        process.stderr.write(`kill cgroup ${cgroupsPath}: ${(err as Error).message}\n`);
      }
    }
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
    for (let i = 0; i < 100 && running(pid); i++) await sleep(20);
  }
  if (cgroupsPath && pid > 0) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { loadCgroup } = require('../cgroups') as typeof import('../cgroups');
      const cg = loadCgroup(cgroupsPath);
      for (let i = 0; i < 50; i++) {
        if (!(await cg.exists())) break;
        try {
          await cg.delete();
          break;
        } catch {
          await sleep(20);
        }
      }
    } catch (err) {
      process.stderr.write(`remove cgroup ${cgroupsPath}: ${(err as Error).message}\n`);
    }
  }
  const rootfs = path.join(bundle, 'rootfs');
  if (isMounted(rootfs)) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { unmountAll } = require('../../snapshotter/mount') as typeof import('../../snapshotter/mount');
      await unmountAll(rootfs);
    } catch (err) {
      process.stderr.write(`unmount ${rootfs}: ${(err as Error).message}\n`);
    }
  }
  fs.rmSync(path.join(bundle, 'init.pid'), { force: true });
  removeDeadShimDir(bundle);
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { encode, nowTimestamp } = require('../../proto/codec') as typeof import('../../proto/codec');
  process.stdout.write(encode('containerd.task.v2.DeleteResponse', { pid, exit_status: 137, exited_at: nowTimestamp() }), () => process.exit(0));
}
