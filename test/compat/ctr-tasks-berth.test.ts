// containerd's `ctr` against berthd running containers through Berth's own shim
// (runtime io.containerd.berth.v1, bin/containerd-shim-berth-v1): run --rm, exit codes,
// run -d, tasks ls/ps/exec/pause/resume/metrics/kill/rm, containers rm, and what a dead shim leaves.
import { execFile, spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import { promisify } from 'node:util';
import { assertNothingLeft, cleanup, sleep, startDaemon, waitFor, type TestDaemon } from '../helpers/daemon';
import { busyboxRootfs, removeRootfs } from '../helpers/rootfs';

const run = promisify(execFile);
const CTR = process.env.CTR ?? '/usr/bin/ctr';
const RUNTIME = 'io.containerd.berth.v1';
const SOCKET_DIR = '/run/berth/s';
// A namespace of its own: cgroups /<ns>/<id> and shim directories that are this file's alone.
const NS = 'ctr-tasks-berth';

(fs.existsSync(CTR) && process.getuid?.() === 0 ? describe : describe.skip)('ctr against berthd with the berth shim', () => {
  let daemon: TestDaemon;
  let rootfs: string;
  const ids: string[] = [];
  let socketsBefore: Set<string>;
  const ctr = async (...args: string[]) => (await run(CTR, ['--address', daemon.address, '-n', NS, ...args], { timeout: 30_000 })).stdout;
  const ctrFails = (...args: string[]) =>
    run(CTR, ['--address', daemon.address, '-n', NS, ...args], { timeout: 30_000 }).then(
      () => ({ code: 0, stderr: '' }),
      (e) => ({ code: e.code as number, stderr: String(e.stderr) }),
    );
  const tasks = async () =>
    Object.fromEntries(
      (await ctr('tasks', 'ls'))
        .split('\n')
        .slice(1)
        .filter(Boolean)
        .map((l) => l.trim().split(/\s+/))
        .map(([id, pid, status]) => [id, { pid: Number(pid), status }]),
    );
  const runDetached = async (id: string, ...cmd: string[]) => {
    ids.push(id);
    await ctr('run', '-d', '--runtime', RUNTIME, '--rootfs', rootfs, id, ...cmd);
  };
  const shimPids = (id: string) =>
    spawnSync('pgrep', ['-f', `containerd-shim-berth-v1 -namespace ${NS} -id ${id}$`]).stdout.toString().trim().split('\n').filter(Boolean).map(Number);

  beforeAll(async () => {
    socketsBefore = new Set(fs.existsSync(SOCKET_DIR) ? fs.readdirSync(SOCKET_DIR) : []);
    rootfs = busyboxRootfs();
    daemon = await startDaemon();
  });
  afterAll(async () => {
    for (const id of ids) {
      await ctr('tasks', 'kill', '-a', '-s', 'SIGKILL', id).catch(() => undefined);
      await sleep(100);
      await ctr('tasks', 'rm', '-f', id).catch(() => undefined);
      await ctr('containers', 'rm', id).catch(() => undefined);
      for (const pid of shimPids(id)) process.kill(pid, 'SIGKILL');
    }
    try {
      await assertNothingLeft(daemon, { namespaces: [NS], ids: [...ids, 'r1', 'r2', 'r3', 't1'] });
    } finally {
      await cleanup(daemon);
      removeRootfs(rootfs);
    }
    // no mounts left under the daemon's state, no new shim sockets
    const mounts = fs.readFileSync('/proc/self/mountinfo', 'utf8');
    expect(mounts).not.toContain(daemon.dir);
    // Ours: the shim directories of this daemon's tasks and its spare shim (other tests may run shims too).
    const hash = (s: string) => crypto.createHash('sha256').update(s).digest('hex');
    const ours = new Set([...ids, 'r1', 'r2', 'r3', 'r4'].map((id) => hash(`${daemon.address}/${NS}/${id}`)).concat(`spare-${hash(daemon.address)}`));
    const leftover = () => (fs.existsSync(SOCKET_DIR) ? fs.readdirSync(SOCKET_DIR) : []).filter((s) => !socketsBefore.has(s) && ours.has(s));
    // a spare shim leaves by itself within a second of its daemon's socket going away
    for (let i = 0; i < 50 && leftover().length > 0; i++) await sleep(100);
    const left = leftover();
    for (const s of left) fs.rmSync(`${SOCKET_DIR}/${s}`, { recursive: true, force: true });
    expect(left).toEqual([]);
  });

  test('run --rm: output arrives, pid 1, and everything is removed', async () => {
    const out = await ctr('run', '--rm', '--runtime', RUNTIME, '--rootfs', rootfs, 'r1', '/bin/sh', '-c', 'echo hi; echo $$');
    expect(out).toBe('hi\n1\n');
    expect(await tasks()).toEqual({});
    expect((await ctr('containers', 'ls', '-q')).trim()).toBe('');
    expect(shimPids('r1')).toEqual([]);
    expect(fs.existsSync(`${daemon.state}/io.containerd.runtime.v2.task/${NS}/r1`)).toBe(false);
  });

  test('run: the exit status reaches ctr', async () => {
    const r = await ctrFails('run', '--rm', '--runtime', RUNTIME, '--rootfs', rootfs, 'r2', '/bin/sh', '-c', 'exit 3');
    expect(r.code).toBe(3);
  });

  test('run: stdin reaches the process', async () => {
    const child = execFile(CTR, ['--address', daemon.address, '-n', NS, 'run', '--rm', '--runtime', RUNTIME, '--rootfs', rootfs, 'r3', '/bin/cat'], { timeout: 30_000 });
    let out = '';
    child.stdout!.on('data', (d) => (out += d));
    child.stdin!.end('from-stdin\n');
    const code = await new Promise((resolve) => child.once('exit', resolve));
    expect(code).toBe(0);
    expect(out).toBe('from-stdin\n');
  });

  (fs.existsSync('/usr/bin/script') ? test : test.skip)('run -t: the process has a terminal, its output arrives', async () => {
    const { stdout } = await run('/usr/bin/script', ['-qc', `${CTR} --address ${daemon.address} -n ${NS} run --rm -t --runtime ${RUNTIME} --rootfs ${rootfs} t1 /bin/sh -c 'tty; echo hello-tty'`, '/dev/null'], { timeout: 30_000 });
    expect(stdout).toMatch(/\/dev\/pts\/0\r+\n/);
    expect(stdout).toContain('hello-tty');
    expect(await tasks()).toEqual({});
  });

  test('run -d, tasks ls, ps, exec, pause, resume, metrics, kill, rm; containers rm', async () => {
    await runDetached('d1', '/bin/sleep', '1000');
    const t = await tasks();
    expect(t.d1.status).toBe('RUNNING');
    expect(shimPids('d1')).toHaveLength(1);
    expect((await ctr('tasks', 'ps', 'd1')).split('\n')[1].trim().split(/\s+/)[0]).toBe(String(t.d1.pid));
    expect(await ctr('tasks', 'exec', '--exec-id', 'e1', 'd1', '/bin/echo', 'exec-out')).toBe('exec-out\n');
    const ex = await ctrFails('tasks', 'exec', '--exec-id', 'e2', 'd1', '/bin/sh', '-c', 'exit 7');
    expect(ex.code).toBe(7);
    if (fs.existsSync('/usr/bin/script')) {
      // exec -t: the exec process has a terminal of its own
      const { stdout } = await run('/usr/bin/script', ['-qc', `${CTR} --address ${daemon.address} -n ${NS} tasks exec -t --exec-id et d1 /bin/sh -c 'tty; echo exec-tty'`, '/dev/null'], { timeout: 30_000 });
      expect(stdout).toMatch(/\/dev\/pts\/\d+\r+\n/);
      expect(stdout).toContain('exec-tty');
    }

    await ctr('tasks', 'pause', 'd1');
    expect((await tasks()).d1.status).toBe('PAUSED');
    await ctr('tasks', 'resume', 'd1');
    expect((await tasks()).d1.status).toBe('RUNNING');
    expect(await ctr('tasks', 'metrics', 'd1')).toMatch(/memory/);

    await ctr('tasks', 'kill', '-s', 'SIGKILL', 'd1');
    await waitFor('the task to stop', async () => (await tasks()).d1?.status === 'STOPPED');
    const again = await ctrFails('tasks', 'kill', 'd1');
    expect(again.stderr).toContain('process already finished: not found');
    await ctr('tasks', 'rm', 'd1');
    expect(await tasks()).toEqual({});
    await ctr('containers', 'rm', 'd1');
    expect((await ctr('containers', 'ls', '-q')).trim()).toBe('');
    await waitFor('the shim to exit', () => (shimPids('d1').length === 0 ? true : undefined));
  });

  test('a shim killed with SIGKILL: the delete sub-command kills its container and cleans up', async () => {
    await runDetached('k1', '/bin/sleep', '1000');
    const pid = (await tasks()).k1.pid;
    const [shim] = shimPids('k1');
    expect(shim).toBeGreaterThan(0);
    process.kill(shim!, 'SIGKILL');
    await waitFor('the task to go', async () => ((await tasks()).k1 === undefined ? true : undefined));
    await waitFor('the container process to die', () => (fs.existsSync(`/proc/${pid}`) ? undefined : true));
    expect(fs.existsSync(`${daemon.state}/io.containerd.runtime.v2.task/${NS}/k1`)).toBe(false);
    await ctr('containers', 'rm', 'k1');
  });
});
