// How berth-shim processes are started and shared, seen from the real ctr against berthd:
// a spare shim, started ahead of need, takes the next task (and a new spare replaces it), and
// containers that carry the same group annotation share one shim, which leaves with the last.
import { execFile } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { pidInFile, running } from '../../runtime/shim/pidfile';
import { assertNothingLeft, cleanup, sleep, startDaemon, waitFor, type TestDaemon } from '../helpers/daemon';
import { busyboxRootfs, removeRootfs } from '../helpers/rootfs';

const run = promisify(execFile);
const CTR = process.env.CTR ?? '/usr/bin/ctr';
const RUNTIME = 'io.containerd.berth.v1';
const SOCKET_DIR = '/run/berth/s';
const hash = (s: string) => crypto.createHash('sha256').update(s).digest('hex');

const pidIn = (dir: string) => pidInFile(path.join(dir, 'pid'));
const alive = running;
const until = <T>(what: string, probe: () => T | Promise<T>, timeoutMs = 15_000) => waitFor(what, probe, timeoutMs);

(fs.existsSync(CTR) && process.getuid?.() === 0 ? describe : describe.skip)('berth-shim: spare shim and grouping', () => {
  let daemon: TestDaemon;
  let rootfs: string;
  const ids: string[] = [];
  const ctr = async (...args: string[]) => (await run(CTR, ['--address', daemon.address, ...args], { timeout: 30_000 })).stdout;
  const shimDir = (group: string) => path.join(SOCKET_DIR, hash(`${daemon.address}/default/${group}`));
  const spareDir = () => path.join(SOCKET_DIR, `spare-${hash(daemon.address)}`);
  const taskPid = async (id: string) => Number((await ctr('tasks', 'ls')).split('\n').find((l) => l.startsWith(`${id} `))?.trim().split(/\s+/)[1]);
  const runDetached = async (id: string, ...args: string[]) => {
    ids.push(id);
    await ctr('run', '-d', '--runtime', RUNTIME, ...args, '--rootfs', rootfs, id, '/bin/sleep', '1000');
  };
  /** Warm (or working) init worker threads of a shim. */
  const initThreads = (pid: number) =>
    fs.readdirSync(`/proc/${pid}/task`).filter((t) => {
      try {
        return fs.readFileSync(`/proc/${pid}/task/${t}/comm`, 'utf8').trim() === 'berth-init';
      } catch {
        return false; // ended between the listing and the read
      }
    }).length;
  const remove = async (id: string) => {
    await ctr('tasks', 'kill', '-s', 'SIGKILL', id).catch(() => undefined);
    await until(`${id} to stop`, async () => !(await ctr('tasks', 'ls')).includes(`${id} `) || (await ctr('tasks', 'ls')).match(new RegExp(`^${id}\\s+\\d+\\s+STOPPED`, 'm')));
    await ctr('tasks', 'rm', '-f', id).catch(() => undefined);
    await ctr('containers', 'rm', id).catch(() => undefined);
  };

  beforeAll(async () => {
    rootfs = busyboxRootfs();
    // a claimed spare whose task still runs after 5 s starts a replacement (1 s by default): long
    // enough for the recycling test's short tasks on a slow machine
    daemon = await startDaemon({ env: { BERTH_SHIM_SPARE_REPLACE_MS: '5000' } });
  });
  afterAll(async () => {
    for (const id of ids) await remove(id).catch(() => undefined);
    const spare = pidIn(spareDir());
    try {
      // task directories, shims (the spare too: berthd stops it on SIGTERM), mounts, the tasks'
      // cgroups and the namespace's cgroup parents
      await assertNothingLeft(daemon, { ids: [...ids, 'q1', 'q2', 'q3', 'k1'] });
    } finally {
      await cleanup(daemon);
      removeRootfs(rootfs);
    }
    // the spare leaves by itself once its daemon's socket is gone
    if (spare) await until('the spare shim to leave', () => !alive(spare), 10_000).catch(() => process.kill(spare, 'SIGKILL'));
    expect(fs.existsSync(spareDir())).toBe(false);
    for (const id of [...ids, 'g']) expect(fs.existsSync(shimDir(id))).toBe(false);
  });

  test('a spare shim takes the next task, serves it fully, and a new spare replaces it', async () => {
    await runDetached('s1');
    // the first start had no spare: it starts one for the next task
    const spare = await until('a spare shim', () => {
      const pid = pidIn(spareDir());
      return pid && fs.existsSync(path.join(spareDir(), 'sock')) && alive(pid) ? pid : 0;
    });
    await runDetached('s2');
    expect(pidIn(shimDir('s2'))).toBe(spare);
    expect(fs.readFileSync(`/proc/${spare}/cmdline`, 'utf8')).toContain('-id s2');
    // the claimed spare knows its namespace and id: exec, events and exit statuses work
    const events = execFile(CTR, ['--address', daemon.address, 'events'], { timeout: 30_000 });
    let seen = '';
    events.stdout!.on('data', (d) => (seen += d));
    await sleep(300);
    expect((await ctr('tasks', 'exec', '--exec-id', 'e1', 's2', '/bin/sh', '-c', 'echo in-$((40+2))')).trim()).toBe('in-42');
    const pid = await taskPid('s2');
    await ctr('tasks', 'kill', '-s', 'SIGKILL', 's2');
    await until('/tasks/exit of s2', () => seen.includes('/tasks/exit') && seen.includes('"container_id":"s2"'));
    expect(seen).toMatch(/default\s+\/tasks\/exit/);
    expect(pid).toBeGreaterThan(0);
    events.kill();
    // s2 runs on: the claimed spare starts another spare for the next task
    const next = await until('a new spare shim', () => {
      const p = pidIn(spareDir());
      return p && p !== spare && alive(p) ? p : 0;
    });
    await remove('s2');
    // with a spare in place, s2's shim exits rather than becoming one
    await until('the claimed spare to exit', () => !alive(spare));
    expect(pidIn(spareDir())).toBe(next);
  });

  test('the shim of a task that ended soon serves as the spare again', async () => {
    const spare = await until('a spare shim', () => {
      const pid = pidIn(spareDir());
      return pid && fs.existsSync(path.join(spareDir(), 'sock')) && alive(pid) ? pid : 0;
    });
    for (const id of ['q1', 'q2', 'q3']) {
      expect((await ctr('run', '--rm', '--runtime', RUNTIME, '--rootfs', rootfs, id, '/bin/echo', `out-${id}`)).trim()).toBe(`out-${id}`);
      // the same process, claimed for the task, is back in the spare's place
      await until(`${id}'s shim back as the spare`, () => pidIn(spareDir()) === spare && fs.existsSync(path.join(spareDir(), 'sock')));
      expect(fs.readFileSync(`/proc/${spare}/cmdline`, 'utf8')).not.toContain(`-id ${id}`);
      // with a warm init thread for the next claim, as a new spare has
      await until(`${id}'s recycled spare to hold a warm init thread`, () => initThreads(spare) === 1);
    }
    expect(fs.existsSync(shimDir('q1'))).toBe(false);
  });

  // The new spare is started by k1's start, from k1's bundle, which is gone by the time the spare
  // has loaded: it must not depend on its working directory.
  test('a spare that was killed is neither claimed nor in the way: the next start is cold and a new spare replaces it', async () => {
    const dead = await until('a spare shim', () => {
      const pid = pidIn(spareDir());
      return pid && fs.existsSync(path.join(spareDir(), 'sock')) && alive(pid) ? pid : 0;
    });
    process.kill(dead, 'SIGKILL'); // its directory, socket and pid file stay behind
    await until('the spare to die', () => !alive(dead));
    expect((await ctr('run', '--rm', '--runtime', RUNTIME, '--rootfs', rootfs, 'k1', '/bin/echo', 'cold')).trim()).toBe('cold');
    await until('a new spare shim', () => {
      const p = pidIn(spareDir());
      return p && p !== dead && alive(p) && fs.existsSync(path.join(spareDir(), 'sock'));
    });
  });

  test('warm init threads: a shim of one container keeps none after its create; an exec, or a second task of a group, starts one', async () => {
    await runDetached('w1');
    const lone = pidIn(shimDir('w1'));
    expect(lone).toBeGreaterThan(0);
    // the thread that made the container ends, and none replaces it (a refill would wait 30 s unused)
    await until('no init thread in the lone shim', () => initThreads(lone) === 0);
    expect((await ctr('tasks', 'exec', '--exec-id', 'e1', 'w1', '/bin/true')).trim()).toBe('');
    await until('a warm init thread after the exec', () => initThreads(lone) === 1);

    await runDetached('h1', '--annotation', 'io.containerd.runc.v2.group=h');
    const group = pidIn(shimDir('h'));
    await until('no init thread after the group\'s first create', () => initThreads(group) === 0);
    await runDetached('h2', '--annotation', 'io.containerd.runc.v2.group=h');
    expect(pidIn(shimDir('h'))).toBe(group);
    await until('a warm init thread once the group holds two tasks', () => initThreads(group) === 1);
    for (const id of ['w1', 'h1', 'h2']) await remove(id);
  });

  test('containers of one group share a shim, which stays until the last one is deleted', async () => {
    // Five detached tasks whose stdio nobody reads: the shim must not park a threadpool thread
    // per FIFO (libuv has four), or the fourth create would hang.
    const members = ['g1', 'g2', 'g3', 'g4', 'g5'];
    for (const id of members) await runDetached(id, '--annotation', 'io.containerd.runc.v2.group=g');
    const shim = pidIn(shimDir('g'));
    expect(shim).toBeGreaterThan(0);
    for (const id of members) {
      expect(fs.readFileSync(path.join(daemon.dir, `state/io.containerd.runtime.v2.task/default/${id}/address`), 'utf8')).toBe(`unix://${shimDir('g')}/sock`);
    }
    expect(new Set(await Promise.all(members.map(taskPid))).size).toBe(members.length);
    for (const id of members.slice(0, -1)) await remove(id);
    expect(alive(shim)).toBe(true);
    expect((await ctr('tasks', 'ls')).split('\n').find((l) => l.startsWith('g5 '))).toMatch(/RUNNING/);
    expect((await ctr('tasks', 'exec', '--exec-id', 'e2', 'g5', '/bin/echo', 'still')).trim()).toBe('still');
    await remove('g5');
    // done with its tasks, it exits, or serves as the daemon's spare again
    await until('the group shim to go (or be the spare)', () => !alive(shim) || pidIn(spareDir()) === shim);
    await until('its directory to go', () => !fs.existsSync(shimDir('g')));
  });
});
