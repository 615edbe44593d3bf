// containerd's `ctr` against berthd running containers through containerd's runc shim
// (runtime io.containerd.runc.v2): run, tasks ls/ps/exec/pause/resume/metrics/kill/rm,
// containers ls/info/rm, and restart survival (SIGKILL of berthd, SIGKILL of a shim).
import { execFile, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { promisify } from 'node:util';
import { fromAny } from '../../proto/codec';
import { assertNothingLeft, BERTH, cleanup, sleep, startDaemon, waitFor, type TestDaemon } from '../helpers/daemon';
import { busyboxRootfs, removeRootfs } from '../helpers/rootfs';

const run = promisify(execFile);
const CTR = process.env.CTR ?? '/usr/bin/ctr';
// A namespace of its own: cgroups /<ns>/<id> that are this file's alone.
const NS = 'ctr-tasks-runc';
const RUNC_AVAILABLE = fs.existsSync('/usr/bin/runc') && fs.existsSync('/usr/bin/containerd-shim-runc-v2');

(RUNC_AVAILABLE ? describe : describe.skip)('ctr against berthd with the runc shim', () => {
  let daemon: TestDaemon;
  let rootfs: string;
  const ids: string[] = [];
  const ctr = async (...args: string[]) => (await run(CTR, ['--address', daemon.address, '-n', NS, ...args], { timeout: 30_000 })).stdout;
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
    await ctr('run', '-d', '--rootfs', rootfs, id, ...cmd);
  };

  beforeAll(async () => {
    rootfs = busyboxRootfs();
    daemon = await startDaemon();
  });
  afterAll(async () => {
    // Tasks left running by a failed test: kill and delete them through the daemon, by id.
    for (const id of ids) {
      await ctr('tasks', 'kill', '-s', 'SIGKILL', id).catch(() => undefined);
      await sleep(100);
      await ctr('tasks', 'rm', '-f', id).catch(() => undefined);
      await ctr('containers', 'rm', id).catch(() => undefined);
    }
    try {
      await assertNothingLeft(daemon, { namespaces: [NS], ids: [...ids, 'r1', 'r2', 't1', 'nort'] });
    } finally {
      await cleanup(daemon);
      removeRootfs(rootfs);
    }
  });

  test('run --rm: output arrives and everything is removed', async () => {
    const out = await ctr('run', '--rm', '--rootfs', rootfs, 'r1', '/bin/sh', '-c', 'echo hello-from-runc; echo $$');
    expect(out).toBe('hello-from-runc\n1\n');
    expect(await tasks()).toEqual({});
    expect((await ctr('containers', 'ls', '-q')).trim()).toBe('');
  });

  test('run exit status reaches ctr', async () => {
    const r = await run(CTR, ['--address', daemon.address, '-n', NS, 'run', '--rm', '--rootfs', rootfs, 'r2', '/bin/sh', '-c', 'exit 3']).then(
      () => 0,
      (e) => e.code,
    );
    expect(r).toBe(3);
  });

  (fs.existsSync('/usr/bin/script') ? test : test.skip)('run -t and tasks exec -t: the processes have terminals', async () => {
    const tty = async (cmd: string) => (await run('/usr/bin/script', ['-qc', `${CTR} --address ${daemon.address} -n ${NS} ${cmd}`, '/dev/null'], { timeout: 30_000 })).stdout;
    const out = await tty(`run --rm -t --rootfs ${rootfs} t1 /bin/sh -c 'tty; echo hello-tty'`);
    expect(out).toMatch(/\/dev\/pts\/0\r+\n/);
    expect(out).toContain('hello-tty');
    ids.push('t2');
    await ctr('run', '-d', '--rootfs', rootfs, 't2', '/bin/sleep', '1000');
    const ex = await tty(`tasks exec -t --exec-id et t2 /bin/sh -c 'tty; echo exec-tty'`);
    expect(ex).toMatch(/\/dev\/pts\/\d+\r+\n/);
    expect(ex).toContain('exec-tty');
    await ctr('tasks', 'kill', '-s', 'SIGKILL', 't2');
    for (let i = 0; i < 100 && !/t2\s+\d+\s+STOPPED/.test(await ctr('tasks', 'ls')); i++) await sleep(50);
    await ctr('tasks', 'rm', 't2');
    await ctr('containers', 'rm', 't2');
  });

  test('run -d, tasks ls, ps, exec, pause, resume, metrics, kill, rm; containers ls, info, rm', async () => {
    await runDetached('d1', '/bin/sleep', '1000');
    let t = await tasks();
    expect(t.d1.status).toBe('RUNNING');
    expect((await ctr('tasks', 'ps', 'd1')).split('\n')[1].trim().split(/\s+/)[0]).toBe(String(t.d1.pid));
    expect(await ctr('tasks', 'exec', '--exec-id', 'e1', 'd1', '/bin/echo', 'exec-out')).toBe('exec-out\n');

    await ctr('tasks', 'pause', 'd1');
    expect((await tasks()).d1.status).toBe('PAUSED');
    await ctr('tasks', 'resume', 'd1');
    expect((await tasks()).d1.status).toBe('RUNNING');
    expect(await ctr('tasks', 'metrics', 'd1')).toMatch(/memory\.usage_in_bytes\s+\d+/);

    expect((await ctr('containers', 'ls')).split('\n')[1]).toMatch(/^d1\s+-\s+io\.containerd\.runc\.v2/);
    const info = JSON.parse(await ctr('containers', 'info', 'd1'));
    expect(info.Runtime.Name).toBe('io.containerd.runc.v2');
    expect(info.Spec.process.args).toEqual(['/bin/sleep', '1000']);

    await ctr('tasks', 'kill', '-s', 'SIGKILL', 'd1'); // sleep as PID 1 ignores SIGTERM
    await waitFor('the task to stop', async () => (await tasks()).d1?.status === 'STOPPED');
    const again = await run(CTR, ['--address', daemon.address, '-n', NS, 'tasks', 'kill', 'd1']).then(
      () => '',
      (e) => String(e.stderr),
    );
    expect(again).toContain('process already finished: not found');
    await ctr('tasks', 'rm', 'd1');
    expect(await tasks()).toEqual({});
    await ctr('containers', 'rm', 'd1');
    expect((await ctr('containers', 'ls', '-q')).trim()).toBe('');
  });

  test('bad input: a task that exists, a missing container, an unknown runtime', async () => {
    await runDetached('dup', '/bin/sleep', '1000');
    const dup = await run(CTR, ['--address', daemon.address, '-n', NS, 'tasks', 'start', 'dup']).then(
      () => '',
      (e) => String(e.stderr),
    );
    expect(dup).toContain('task dup: already exists');
    const missing = await run(CTR, ['--address', daemon.address, '-n', NS, 'tasks', 'start', 'nonexist']).then(
      () => '',
      (e) => String(e.stderr),
    );
    expect(missing).toContain(`container "nonexist" in namespace "${NS}": not found`);
    const unknown = await run(CTR, ['--address', daemon.address, '-n', NS, 'run', '--rm', '--runtime', 'io.containerd.nosuch.v1', '--rootfs', rootfs, 'nort', '/bin/true']).then(
      () => '',
      (e) => String(e.stderr),
    );
    expect(unknown).toContain('binary not installed "containerd-shim-nosuch-v1"');
    await ctr('containers', 'rm', 'nort').catch(() => undefined);
    // nothing leaked: no task and no bundle for it
    expect((await tasks()).nort).toBeUndefined();
    expect(fs.existsSync(`${daemon.state}/io.containerd.runtime.v2.task/${NS}/nort`)).toBe(false);
  });

  test('tasks survive SIGKILL of berthd; an exit while it was down is seen after', async () => {
    await runDetached('s1', '/bin/sleep', '1000');
    await runDetached('s2', '/bin/sleep', '1000');
    const before = await tasks();
    await daemon.kill();
    process.kill(before.s2.pid, 'SIGKILL'); // s2 exits while berthd is down
    await sleep(200);
    await daemon.start();
    const after = await tasks();
    expect(after.s1).toEqual({ pid: before.s1.pid, status: 'RUNNING' });
    expect(after.s2.status).toBe('STOPPED');
    const client = daemon.client(NS);
    try {
      const { process: p } = await client.unary('tasks', 'Get', { container_id: 's2' });
      expect(p).toMatchObject({ id: 's2', status: 'STOPPED', exit_status: 137 });
    } finally {
      client.close();
    }
    expect(await ctr('tasks', 'exec', '--exec-id', 'x', 's1', '/bin/echo', 'still-here')).toBe('still-here\n');
  });

  test('a shim killed with SIGKILL: its task is gone, its resources cleaned, the exit published', async () => {
    await runDetached('k1', '/bin/sleep', '1000');
    const watcher = daemon.client(NS);
    const events: any[] = [];
    const reading = (async () => {
      for await (const e of watcher.stream('events', 'Subscribe', { filters: ['topic~=|^/tasks/|,event.container_id==k1'] })) {
        events.push(e);
        if (e.topic === '/tasks/delete') break;
      }
    })();
    await sleep(100);
    // The shim is the process whose command line names this task's id.
    const shimPid = spawnSync('pgrep', ['-f', `containerd-shim-runc-v2 -namespace ${NS} -id k1`]).stdout.toString().trim().split('\n')[0];
    expect(shimPid).toMatch(/^\d+$/);
    process.kill(Number(shimPid), 'SIGKILL');
    await reading;
    watcher.close();
    expect(events.map((e) => e.topic)).toEqual(['/tasks/exit', '/tasks/delete']);
    expect(fromAny(events[0].event)).toMatchObject({ container_id: 'k1', id: 'k1' });
    expect((await tasks()).k1).toBeUndefined();
    expect(fs.existsSync(`${daemon.state}/io.containerd.runtime.v2.task/${NS}/k1`)).toBe(false);
  });

  test('the berth CLI manages what ctr started: containers ls/info/rm, tasks ls/ps/pause/resume/metrics/kill/rm', async () => {
    const berth = async (...args: string[]) => (await run(process.execPath, [BERTH, '--address', daemon.address, '--namespace', NS, ...args], { timeout: 30_000 })).stdout;
    await runDetached('b1', '/bin/sleep', '1000');
    expect((await berth('containers', 'ls')).split('\n').find((l) => l.startsWith('b1'))).toMatch(/^b1\s+-\s+io\.containerd\.runc\.v2\s+-$/);
    expect(JSON.parse(await berth('containers', 'info', 'b1')).spec.process.args).toEqual(['/bin/sleep', '1000']);
    const pid = (await tasks()).b1.pid;
    expect((await berth('tasks', 'ls')).split('\n').find((l) => l.startsWith('b1'))).toMatch(new RegExp(`^b1\\s+${pid}\\s+RUNNING$`));
    expect((await berth('tasks', 'ps', 'b1')).split('\n')[1]).toMatch(new RegExp(`^${pid}\\s+-$`));
    await berth('tasks', 'pause', 'b1');
    expect((await tasks()).b1.status).toBe('PAUSED');
    await berth('tasks', 'resume', 'b1');
    expect(await berth('tasks', 'metrics', 'b1')).toMatch(/io\.containerd\.cgroups\.v1\.Metrics[\s\S]*memory\.usage\s+\d+/);
    const refused = await run(process.execPath, [BERTH, '--address', daemon.address, '--namespace', NS, 'containers', 'rm', 'b1']).then(
      () => '',
      (e) => String(e.stderr),
    );
    expect(refused).toContain('cannot delete a non stopped container: running');
    await berth('tasks', 'kill', '-s', 'KILL', 'b1');
    await waitFor('b1 to stop', async () => (await tasks()).b1?.status === 'STOPPED');
    expect(await berth('tasks', 'rm', 'b1')).toBe('b1\n');
    expect(await berth('containers', 'rm', 'b1')).toBe('b1\n');
    expect((await tasks()).b1).toBeUndefined();
  });
});
