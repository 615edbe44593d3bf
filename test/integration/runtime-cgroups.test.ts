// runtime/cgroups on this machine's real cgroups, as root: the v1 hierarchies (what runc and
// containerd use on a hybrid layout) and, where cgroup2 is mounted beside them, the v2 code on
// the unified tree. Every cgroup is /berth-test-<pid>-<n>; afterEach kills what is left in it
// and removes it from every hierarchy.
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  Cgroup,
  CgroupV1,
  CgroupV2,
  MetricsV1,
  OomEvent,
  cgroupMode,
  createCgroup,
  loadCgroup,
  processCgroups,
  v1Hierarchies,
} from '../../runtime/cgroups';
import { isKind } from '../../services/errdefs';

/** The error a promise rejects with (fails the test if it resolves). */
async function rejection(p: Promise<unknown>): Promise<any> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

const mode = cgroupMode();
const v1 = mode.mode !== 'unified';
const describeV1 = v1 ? describe : describe.skip;
const describeV2 = mode.unifiedMount ? describe : describe.skip;

let seq = 0;
const made: Cgroup[] = [];
const procs: ChildProcess[] = [];

function name(): string {
  return `/berth-test-${process.pid}-${++seq}`;
}

async function make(resources?: Parameters<Cgroup['create']>[0]): Promise<Cgroup> {
  const cg = loadCgroup(name());
  made.push(cg);
  await cg.create(resources);
  return cg;
}

/** A process that does nothing until killed; `exited` resolves with its signal. */
function sleeper(): ChildProcess & { exited: Promise<NodeJS.Signals | null> } {
  const p = spawn('sleep', ['300'], { stdio: 'ignore' }) as ChildProcess & { exited: Promise<NodeJS.Signals | null> };
  p.exited = new Promise((resolve) => p.once('exit', (_c, s) => resolve(s)));
  procs.push(p);
  return p;
}

/** /proc/<pid>/stat state letter (R, S, D, …). */
function procState(pid: number): string {
  return fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1][0];
}

afterEach(async () => {
  for (const p of procs.splice(0)) {
    if (p.exitCode === null && p.signalCode === null) {
      const gone = new Promise((r) => p.once('exit', r));
      try {
        process.kill(p.pid!, 'SIGKILL');
      } catch {
        /* already gone */
      }
      await gone;
    }
  }
  for (const cg of made.splice(0).reverse()) {
    if (!(await cg.exists())) continue;
    await cg.thaw().catch(() => undefined);
    await cg.kill('SIGKILL').catch(() => undefined);
    await cg.delete();
  }
});

afterAll(() => {
  const left = v1Hierarchies().flatMap((h) => fs.readdirSync(h.mountpoint).filter((d) => d.startsWith(`berth-test-${process.pid}-`)));
  if (mode.unifiedMount) left.push(...fs.readdirSync(mode.unifiedMount).filter((d) => d.startsWith(`berth-test-${process.pid}-`)));
  expect(left).toEqual([]);
});

test('the layout is detected from the mounts', () => {
  const type = fs.statfsSync('/sys/fs/cgroup').type;
  if (type === 0x63677270) expect(mode.mode).toBe('unified');
  else expect(mode.mode).toBe(fs.existsSync('/sys/fs/cgroup/unified/cgroup.controllers') ? 'hybrid' : 'legacy');
  expect(loadCgroup('/x').version).toBe(v1 ? 1 : 2);
});

describeV1('cgroup v1', () => {
  const read = (cg: Cgroup, controller: string, file: string) =>
    fs.readFileSync(path.join((cg as CgroupV1).dir(controller)!, file), 'utf8').trim();

  test('create applies OCI resources; the values read back from the files', async () => {
    const cpus = fs.readFileSync('/sys/fs/cgroup/cpuset/cpuset.effective_cpus', 'utf8').trim();
    const firstCpu = cpus.split(/[,-]/)[0];
    const cg = await make({
      memory: { limit: 64 << 20, swap: 128 << 20, reservation: 32 << 20, swappiness: 10 },
      cpu: { shares: 512, quota: 50000, period: 100000, cpus: firstCpu, mems: '0' },
      pids: { limit: 32 },
      blockIO: { weight: 300 },
      devices: [
        { allow: false, access: 'rwm' },
        { allow: true, type: 'c', major: 1, minor: 3, access: 'rwm' },
        { allow: true, type: 'c', major: 136, minor: -1, access: 'rw' },
      ],
    });
    expect(await cg.exists()).toBe(true);
    for (const h of v1Hierarchies()) expect(fs.existsSync(path.join(h.mountpoint, cg.path))).toBe(true);
    expect(read(cg, 'memory', 'memory.limit_in_bytes')).toBe(String(64 << 20));
    if ((cg as CgroupV1).dir('memory') && fs.existsSync(path.join((cg as CgroupV1).dir('memory')!, 'memory.memsw.limit_in_bytes'))) {
      expect(read(cg, 'memory', 'memory.memsw.limit_in_bytes')).toBe(String(128 << 20));
    }
    expect(read(cg, 'memory', 'memory.soft_limit_in_bytes')).toBe(String(32 << 20));
    expect(read(cg, 'memory', 'memory.swappiness')).toBe('10');
    expect(read(cg, 'cpu', 'cpu.shares')).toBe('512');
    expect(read(cg, 'cpu', 'cpu.cfs_quota_us')).toBe('50000');
    expect(read(cg, 'cpu', 'cpu.cfs_period_us')).toBe('100000');
    expect(read(cg, 'cpuset', 'cpuset.cpus')).toBe(firstCpu);
    expect(read(cg, 'cpuset', 'cpuset.mems')).toBe('0');
    expect(read(cg, 'pids', 'pids.max')).toBe('32');
    const blkioDir = (cg as CgroupV1).dir('blkio')!;
    const weightFile = fs.existsSync(path.join(blkioDir, 'blkio.weight')) ? 'blkio.weight' : 'blkio.bfq.weight';
    expect(read(cg, 'blkio', weightFile)).toMatch(/(^|\s)300$/);
    expect(read(cg, 'devices', 'devices.list').split('\n').sort()).toEqual(['c 1:3 rwm', 'c 136:* rw'].sort());

    // grow: memsw must be raised before the limit; shrink: after it
    await cg.update({ memory: { limit: 256 << 20, swap: 512 << 20 } });
    expect(read(cg, 'memory', 'memory.limit_in_bytes')).toBe(String(256 << 20));
    await cg.update({ memory: { limit: 16 << 20, swap: 16 << 20 } });
    expect(read(cg, 'memory', 'memory.limit_in_bytes')).toBe(String(16 << 20));
    await cg.update({ memory: { limit: -1 }, pids: { limit: 0 }, cpu: { quota: -1 } });
    expect(Number(read(cg, 'memory', 'memory.limit_in_bytes'))).toBeGreaterThan(2 ** 60);
    expect(read(cg, 'pids', 'pids.max')).toBe('max');
    expect(read(cg, 'cpu', 'cpu.cfs_quota_us')).toBe('-1');
  });

  test('a bad value fails with the cgroup, file, value and errno; a failed create leaves nothing behind', async () => {
    const cg = await make();
    const err = await rejection(cg.update({ cpu: { cpus: '4096' } }));
    // EINVAL or ERANGE, depending on the kernel
    expect(err.message).toMatch(
      new RegExp(`^cgroup ${cg.path}: write "4096" to ${(cg as CgroupV1).dir('cpuset')}/cpuset.cpus: (EINVAL|ERANGE) \\(.+\\)$`),
    );
    expect(err.code).toMatch(/^(EINVAL|ERANGE)$/);
    const bad = loadCgroup(name());
    await expect(bad.create({ pids: { limit: 10 }, cpu: { shares: 100, cpus: '4096' } })).rejects.toThrow(/cpuset.cpus: E/);
    expect(await bad.exists()).toBe(false);
    await expect(cg.update({ unified: { 'memory.high': '1' } })).rejects.toThrow('"unified" resources need cgroup v2');
    const hugetlbMounted = v1Hierarchies().some((h) => h.controllers.includes('hugetlb'));
    if (!hugetlbMounted) {
      await expect(cg.update({ hugepageLimits: [{ pageSize: '2MB', limit: 0 }] })).rejects.toThrow(
        'needs the hugetlb controller, which is not mounted: not implemented',
      );
    }
    const missing = loadCgroup(name());
    await expect(missing.procs()).rejects.toThrow(`cgroup ${missing.path}: not found`);
    expect(isKind(await rejection(missing.stats()), 'NotFound')).toBe(true);
    expect(isKind(await rejection(missing.add(process.pid)), 'NotFound')).toBe(true);
    await expect(missing.delete()).resolves.toBeUndefined();
  });

  test('add a process: listed in procs and threads, and /proc/<pid>/cgroup agrees for every hierarchy', async () => {
    const cg = await make();
    const p = sleeper();
    await cg.add(p.pid!);
    expect(await cg.procs()).toEqual([p.pid]);
    expect(await cg.threads()).toEqual([p.pid]);
    const membership = await processCgroups(p.pid!);
    for (const h of v1Hierarchies()) expect(membership.get(h.controllers[0])).toBe(cg.path);
  });

  test('addThread moves a single thread (v1 membership is per thread)', async () => {
    const cg = await make();
    // a Node child has several threads; move only one of them
    const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
    procs.push(child);
    await new Promise((r) => setTimeout(r, 200));
    const tids = fs.readdirSync(`/proc/${child.pid}/task`).map(Number).filter((t) => t !== child.pid);
    expect(tids.length).toBeGreaterThan(0);
    await cg.addThread(tids[0]);
    expect(await cg.threads()).toEqual([tids[0]]);
    expect(await cg.procs()).toEqual([child.pid]); // cgroup.procs lists the thread group
    const main = await processCgroups(child.pid!);
    expect(main.get('memory')).not.toBe(cg.path);
  });

  test('freeze and thaw: FROZEN in freezer.state, the task stops; thawed it sleeps again', async () => {
    const cg = await make();
    const p = sleeper();
    await cg.add(p.pid!);
    await cg.freeze();
    expect(await cg.freezerState()).toBe('frozen');
    expect(read(cg, 'freezer', 'freezer.state')).toBe('FROZEN');
    expect(procState(p.pid!)).toBe('D');
    // a frozen process does not act on SIGTERM until thawed
    process.kill(p.pid!, 'SIGTERM');
    await new Promise((r) => setTimeout(r, 100));
    expect(p.exitCode === null && p.signalCode === null).toBe(true);
    await cg.thaw();
    expect(read(cg, 'freezer', 'freezer.state')).toBe('THAWED');
    expect(await p.exited).toBe('SIGTERM');

    const q = sleeper();
    await cg.add(q.pid!);
    await cg.freeze();
    await cg.thaw();
    expect(await cg.freezerState()).toBe('thawed');
    expect(procState(q.pid!)).toBe('S');
  });

  test('kill on a paused cgroup leaves it paused (except SIGKILL)', async () => {
    const cg = await make();
    const p = sleeper();
    await cg.add(p.pid!);
    await cg.freeze();
    await cg.kill('SIGTERM');
    expect(await cg.freezerState()).toBe('frozen');
    await new Promise((r) => setTimeout(r, 100));
    expect(p.signalCode).toBeNull();
    await cg.thaw();
    expect(await p.exited).toBe('SIGTERM');
    const q = sleeper();
    await cg.add(q.pid!);
    await cg.freeze();
    await cg.kill();
    expect(await q.exited).toBe('SIGKILL');
    expect(await cg.freezerState()).toBe('thawed');
  });

  test('stats: containerd v1 metrics with plausible numbers', async () => {
    const cg = await make({ memory: { limit: 256 << 20 }, pids: { limit: 50 }, cpu: { quota: 20000, period: 100000 } });
    // a busy process that allocates ~20 MiB and spins for a while
    const p = spawn(process.execPath, ['-e', 'process.stdin.once("data", () => { globalThis.keep = Buffer.alloc(20 << 20, 1); const end = Date.now() + 400; while (Date.now() < end); console.log("done"); setInterval(() => {}, 1000); })'], {
      stdio: ['pipe', 'pipe', 'ignore'],
    });
    procs.push(p);
    await cg.add(p.pid!);
    p.stdin!.write('go');
    await new Promise((r) => p.stdout!.once('data', r));
    const m = (await cg.stats()) as MetricsV1;
    expect(cg.metricsType).toBe('io.containerd.cgroups.v1.Metrics');
    // pids counts tasks: every thread of the Node process
    expect(m.pids!.limit).toBe(50);
    expect(m.pids!.current).toBe(fs.readdirSync(`/proc/${p.pid}/task`).length);
    expect(m.cpu!.usage.total).toBeGreaterThan(50e6); // > 50 ms of CPU, in ns
    expect(m.cpu!.usage.per_cpu).toHaveLength(fs.readFileSync('/sys/fs/cgroup/cpuacct/cpuacct.usage_percpu', 'utf8').trim().split(/\s+/).length);
    expect(m.cpu!.usage.per_cpu.reduce((a, b) => a + b, 0)).toBe(m.cpu!.usage.total);
    expect(m.cpu!.usage.user + m.cpu!.usage.kernel).toBeGreaterThan(0);
    expect(m.cpu!.throttling.periods).toBeGreaterThan(0);
    expect(m.cpu!.throttling.throttled_periods).toBeGreaterThan(0);
    expect(m.memory!.usage.usage).toBeGreaterThan(20 << 20);
    expect(m.memory!.usage.max).toBeGreaterThanOrEqual(m.memory!.usage.usage);
    expect(m.memory!.usage.limit).toBe(256 << 20);
    expect(m.memory!.hierarchical_memory_limit).toBe(256 << 20);
    expect(m.memory!.rss + m.memory!.cache).toBeGreaterThan(0);
    expect(m.memory!.total_rss).toBeGreaterThan(15 << 20);
    expect(m.memory!.pg_fault).toBeGreaterThan(1000);
    expect(m.memory_oom_control).toEqual({ oom_kill_disable: 0, under_oom: 0, oom_kill: 0 });
    expect(m.blkio).toBeDefined();
    expect(Array.isArray(m.blkio!.io_service_bytes_recursive)).toBe(true);
    expect(m.network).toEqual([]);
    // snake_case proto field names only, so protobufjs can encode the object unchanged
    const keys = JSON.stringify(m).match(/"([A-Za-z_]+)":/g)!;
    for (const k of keys) expect(k).toMatch(/^"[a-z_]+":$/);
  });

  test('the pids limit is enforced', async () => {
    const cg = await make({ pids: { limit: 3 } });
    const sh = spawn('/bin/sh', ['-c', 'read go; for i in 1 2 3 4 5 6; do sleep 30 & done; wait'], { stdio: ['pipe', 'ignore', 'pipe'] });
    procs.push(sh);
    const shExited = new Promise((r) => sh.once('exit', r));
    let stderr = '';
    sh.stderr!.on('data', (d) => (stderr += d));
    await cg.add(sh.pid!);
    sh.stdin!.write('go\n');
    await new Promise((r) => setTimeout(r, 500));
    // six background sleeps were asked for; the shell could not fork them all
    expect((await cg.procs()).length).toBeLessThanOrEqual(3);
    expect(Number(read(cg, 'pids', 'pids.current'))).toBeLessThanOrEqual(3);
    expect(read(cg, 'pids', 'pids.events')).toMatch(/^max [1-9]/);
    expect(stderr).toMatch(/fork|Resource temporarily unavailable/i);
    const st = (await cg.stats()) as MetricsV1;
    expect(st.pids!.limit).toBe(3);
    expect(st.pids!.current).toBeLessThanOrEqual(3);
    await cg.kill('SIGKILL');
    await shExited;
    // the orphaned sleeps die too; delete waits briefly for them to leave
    await cg.delete();
    expect(await cg.exists()).toBe(false);
  });

  test('delete refuses while processes remain, then succeeds once they are gone', async () => {
    const cg = await make();
    const p = sleeper();
    await cg.add(p.pid!);
    const err = await cg.delete().catch((e) => e);
    expect(isKind(err, 'FailedPrecondition')).toBe(true);
    expect(err.message).toMatch(new RegExp(`^cgroup ${cg.path}: rmdir /sys/fs/cgroup/\\S+${cg.path}: EBUSY \\(Device or resource busy\\)`));
    await cg.kill();
    expect(await p.exited).toBe('SIGKILL');
    await cg.delete();
    expect(await cg.exists()).toBe(false);
    for (const h of v1Hierarchies()) expect(fs.existsSync(path.join(h.mountpoint, cg.path))).toBe(false);
  });

  test('OOM: a process over a 32 MiB limit is killed and the watcher reports it; deletion ends the watch', async () => {
    const cg = await make({ memory: { limit: 32 << 20, swap: 32 << 20 } });
    const watcher = cg.watchOom();
    const events: OomEvent[] = [];
    const iterated = (async () => {
      for await (const e of watcher) events.push(e);
    })();
    const first = new Promise<OomEvent>((resolve) => watcher.once('oom', resolve));
    const hog = spawn(
      process.execPath,
      ['-e', 'process.stdin.once("data", () => { const keep = []; for (;;) keep.push(Buffer.alloc(1 << 20, 7)); })'],
      { stdio: ['pipe', 'ignore', 'ignore'] },
    );
    procs.push(hog);
    const exited = new Promise<NodeJS.Signals | null>((resolve) => hog.once('exit', (_c, s) => resolve(s)));
    await cg.add(hog.pid!);
    hog.stdin!.write('go');
    expect(await exited).toBe('SIGKILL');
    const e = await first;
    expect(e.cgroup).toBe(cg.path);
    expect(e.oomKill).toBeGreaterThanOrEqual(1);
    const m = (await cg.stats()) as MetricsV1;
    expect(m.memory_oom_control!.oom_kill).toBeGreaterThanOrEqual(1);
    expect(m.memory!.usage.max).toBeGreaterThanOrEqual(30 << 20);
    await cg.delete();
    await iterated; // the kernel signals the eventfd when the cgroup goes; the iterator ends
    expect(watcher.closed).toBe(true);
    expect(events.length).toBeGreaterThanOrEqual(1);
  });

  test('createCgroup and a nested path: cpuset parents get cpus/mems', async () => {
    const parent = name();
    const cg = await createCgroup(`${parent}/child`, { cpu: { shares: 256 } });
    made.push(loadCgroup(parent), cg);
    const p = sleeper();
    await cg.add(p.pid!); // would fail with ENOSPC if cpuset.cpus/mems were empty
    expect(await cg.procs()).toEqual([p.pid]);
    const cpusetParent = path.join('/sys/fs/cgroup/cpuset', parent);
    expect(fs.readFileSync(path.join(cpusetParent, 'cpuset.cpus'), 'utf8').trim()).not.toBe('');
  });
});

describeV2('cgroup v2 (the unified tree)', () => {
  const v2 = () => {
    const cg = new CgroupV2(name(), { mountpoint: mode.unifiedMount });
    made.push(cg);
    return cg;
  };

  test('create, add, procs, freeze/thaw via cgroup.freeze, stats, kill via cgroup.kill, delete', async () => {
    const cg = v2();
    await cg.create();
    const p = sleeper();
    await cg.add(p.pid!);
    expect(await cg.procs()).toEqual([p.pid]);
    expect((await processCgroups(p.pid!)).get('')).toBe(cg.path);
    expect(await cg.freezerState()).toBe('thawed');
    await cg.freeze();
    expect(await cg.freezerState()).toBe('frozen');
    expect(fs.readFileSync(path.join(cg.dir, 'cgroup.events'), 'utf8')).toMatch(/^frozen 1$/m);
    await cg.thaw();
    expect(await cg.freezerState()).toBe('thawed');
    const m = await cg.stats();
    expect(cg.metricsType).toBe('io.containerd.cgroups.v2.Metrics');
    expect(m.cpu.usage_usec).toBeGreaterThanOrEqual(0);
    expect(Object.keys(m)).toEqual(expect.arrayContaining(['pids', 'cpu', 'memory', 'rdma', 'io', 'hugetlb']));
    expect(isKind(await rejection(cg.delete()), 'FailedPrecondition')).toBe(true);
    await cg.kill();
    expect(await p.exited).toBe('SIGKILL');
    await cg.delete();
    expect(fs.existsSync(cg.dir)).toBe(false);
  });

  test('kill with another signal freezes, signals every process, thaws', async () => {
    const cg = v2();
    await cg.create();
    const a = sleeper();
    const b = sleeper();
    await cg.add(a.pid!);
    await cg.add(b.pid!);
    await cg.kill('SIGTERM');
    expect(await a.exited).toBe('SIGTERM');
    expect(await b.exited).toBe('SIGTERM');
  });
});
