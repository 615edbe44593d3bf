// runtime/cgroups without a kernel: parsing, OCI → v2 conversions, and the v2 code paths run
// against a directory of plain files laid out like a cgroup2 tree (this machine mounts v1, so
// these are the only checks of memory/io/pids handling on v2 that can run here).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  CgroupV2,
  OomEvent,
  UINT64_MAX,
  blkioWeightToIoWeight,
  normalizeCgroupPath,
  parseIoStat,
  parseV1Hierarchies,
  sharesToWeight,
  swapToV2,
} from '../../runtime/cgroups';
import { CounterOomWatcher } from '../../runtime/cgroups/oom';
import { parseKV } from '../../runtime/cgroups/files';

const MOUNTINFO = `
25 30 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
32 25 0:28 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
33 32 0:29 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
34 32 0:30 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,xattr,name=systemd
37 32 0:33 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,cpu,cpuacct
38 32 0:34 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,memory
39 32 0:35 / /sys/fs/cgroup/my\\040dir rw,relatime shared:16 - cgroup cgroup rw,pids
40 32 0:34 / /mnt/memory-again rw,relatime shared:15 - cgroup cgroup rw,memory
`;

describe('cgroup helpers', () => {
  test('v1 hierarchies from mountinfo', () => {
    expect(parseV1Hierarchies(MOUNTINFO)).toEqual([
      { controllers: ['name=systemd'], mountpoint: '/sys/fs/cgroup/systemd' },
      { controllers: ['cpu', 'cpuacct'], mountpoint: '/sys/fs/cgroup/cpu,cpuacct' },
      { controllers: ['memory'], mountpoint: '/sys/fs/cgroup/memory' },
      { controllers: ['pids'], mountpoint: '/sys/fs/cgroup/my dir' },
    ]);
  });

  test('cgroup paths are absolute, clean and not the root', () => {
    expect(normalizeCgroupPath('berth/default/x')).toBe('/berth/default/x');
    expect(normalizeCgroupPath('//berth//x/')).toBe('/berth/x');
    expect(() => normalizeCgroupPath('/')).toThrow('the root cgroup cannot be managed: invalid argument');
    expect(() => normalizeCgroupPath('/a/../b')).toThrow('"." and ".." are not allowed');
    expect(() => normalizeCgroupPath('system.slice:berth:x')).toThrow('systemd cgroup paths are not supported: not implemented');
  });

  test('OCI values converted for v2 as runc converts them', () => {
    expect(sharesToWeight(1024)).toBe(39);
    expect(sharesToWeight(2)).toBe(1);
    expect(sharesToWeight(262144)).toBe(10000);
    expect(blkioWeightToIoWeight(10)).toBe(1);
    expect(blkioWeightToIoWeight(1000)).toBe(10000);
    expect(blkioWeightToIoWeight(500)).toBe(4950);
    expect(swapToV2(0, 0)).toBeUndefined();
    expect(swapToV2(0, -1)).toBe(-1);
    expect(swapToV2(-1, 100)).toBe(-1);
    expect(swapToV2(300, 100)).toBe(200);
    expect(swapToV2(100, 100)).toBe(0);
    expect(() => swapToV2(50, 100)).toThrow('must be >= the memory limit');
    expect(() => swapToV2(50, 0)).toThrow('without a memory limit');
  });

  test('flat-keyed and io.stat parsing', () => {
    expect([...parseKV('a 1\nb 2\n\nneg -5\nmax max\n')]).toEqual([
      ['a', 1],
      ['b', 2],
      ['neg', 0],
      ['max', 0],
    ]);
    expect(parseIoStat('254:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n8:16 rbytes=1\n')).toEqual([
      { major: 254, minor: 0, rbytes: 4096, wbytes: 8192, rios: 1, wios: 2 },
      { major: 8, minor: 16, rbytes: 1, wbytes: 0, rios: 0, wios: 0 },
    ]);
  });
});

/** A fake cgroup2 mount: the files a leaf cgroup has, as plain files. */
function fakeV2(root: string, cg: string, files: Record<string, string>): string {
  fs.writeFileSync(path.join(root, 'cgroup.controllers'), 'cpuset cpu io memory pids\n');
  fs.writeFileSync(path.join(root, 'cgroup.subtree_control'), '');
  const dir = path.join(root, cg);
  fs.mkdirSync(dir, { recursive: true });
  for (const [name, content] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), content);
  return dir;
}

describe('cgroup v2 on a fake tree', () => {
  let root: string;
  beforeEach(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-cg2-'));
  });
  afterEach(() => {
    fs.rmSync(root, { recursive: true, force: true });
  });

  test('update writes the v2 files with converted values', async () => {
    const names = ['memory.max', 'memory.swap.max', 'memory.low', 'cpu.weight', 'cpu.max', 'cpuset.cpus', 'pids.max', 'io.weight', 'io.max', 'memory.high'];
    const dir = fakeV2(root, 'berth/c1', Object.fromEntries(names.map((n) => [n, ''])));
    const cg = new CgroupV2('/berth/c1', { mountpoint: root });
    await cg.update({
      memory: { limit: 64 << 20, swap: 96 << 20, reservation: 32 << 20 },
      cpu: { shares: 1024, quota: 50000, period: 100000, cpus: '0-1' },
      pids: { limit: 42 },
      blockIO: { weight: 500, throttleReadBpsDevice: [{ major: 8, minor: 0, rate: 1048576 }] },
      unified: { 'memory.high': '50000000' },
    });
    const read = (n: string) => fs.readFileSync(path.join(dir, n), 'utf8');
    expect(read('memory.max')).toBe(String(64 << 20));
    expect(read('memory.swap.max')).toBe(String(32 << 20));
    expect(read('memory.low')).toBe(String(32 << 20));
    expect(read('cpu.weight')).toBe('39');
    expect(read('cpu.max')).toBe('50000 100000');
    expect(read('cpuset.cpus')).toBe('0-1');
    expect(read('pids.max')).toBe('42');
    expect(read('io.weight')).toBe('4950');
    expect(read('io.max')).toBe('8:0 rbps=1048576');
    expect(read('memory.high')).toBe('50000000');
    // a file that is not there: the controller is not enabled
    await expect(cg.update({ hugepageLimits: [{ pageSize: '2MB', limit: 1 }] })).rejects.toThrow(
      'needs hugetlb.2MB.max, which does not exist (controller not enabled?): not implemented',
    );
    await expect(cg.update({ cpu: { realtimeRuntime: 100 } })).rejects.toThrow('realtime cpu limits are not supported on cgroup v2');
    await expect(cg.update({ unified: { '../x': '1' } })).rejects.toThrow('invalid unified key');
  });

  test('stats in the io.containerd.cgroups.v2.Metrics shape', async () => {
    fakeV2(root, 'c2', {
      'cpu.stat': 'usage_usec 1000\nuser_usec 600\nsystem_usec 400\nnr_periods 10\nnr_throttled 2\nthrottled_usec 30\n',
      'memory.stat': 'anon 4096\nfile 8192\nworkingset_refault_anon 3\nworkingset_refault_file 4\npgfault 77\n',
      'memory.current': '12288\n',
      'memory.max': 'max\n',
      'memory.swap.current': '0\n',
      'memory.swap.max': '0\n',
      'memory.events': 'low 0\nhigh 1\nmax 2\noom 3\noom_kill 1\n',
      'pids.current': '3\n',
      'pids.max': '100\n',
      'io.stat': '254:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n',
      'hugetlb.2MB.current': '0\n',
      'hugetlb.2MB.max': 'max\n',
      'cgroup.procs': '1\n2\n',
    });
    const cg = new CgroupV2('/c2', { mountpoint: root });
    const m = await cg.stats();
    expect(cg.metricsType).toBe('io.containerd.cgroups.v2.Metrics');
    expect(m.pids).toEqual({ current: 3, limit: 100 });
    expect(m.cpu).toEqual({ usage_usec: 1000, user_usec: 600, system_usec: 400, nr_periods: 10, nr_throttled: 2, throttled_usec: 30 });
    expect(m.memory).toMatchObject({ anon: 4096, file: 8192, pgfault: 77, workingset_refault: 7, usage: 12288, usage_limit: UINT64_MAX, swap_limit: 0 });
    expect(m.memory_events).toEqual({ low: 0, high: 1, max: 2, oom: 3, oom_kill: 1 });
    expect(m.io.usage).toEqual([{ major: 254, minor: 0, rbytes: 10, wbytes: 20, rios: 1, wios: 2 }]);
    expect(m.hugetlb).toEqual([{ pagesize: '2MB', current: 0, max: UINT64_MAX }]);
    expect(m.rdma).toEqual({ current: [], limit: [] });
    expect(await cg.procs()).toEqual([1, 2]);
    await expect(new CgroupV2('/missing', { mountpoint: root }).stats()).rejects.toThrow('cgroup /missing: not found');
    await expect(new CgroupV2('/missing', { mountpoint: root }).procs()).rejects.toThrow('cgroup /missing: not found');
  });

  test('OOM watch on memory.events: one event per oom_kill increase, ends when the cgroup goes', async () => {
    const dir = fakeV2(root, 'c3', { 'memory.events': 'low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n' });
    const watcher = new CounterOomWatcher('/c3', path.join(dir, 'memory.events'), 'oom_kill', 50);
    const seen: OomEvent[] = [];
    const done = (async () => {
      for await (const e of watcher) seen.push(e);
    })();
    const bump = async (n: number) => {
      fs.writeFileSync(path.join(dir, 'memory.events'), `low 0\nhigh 0\nmax ${n}\noom ${n}\noom_kill ${n}\n`);
      await new Promise((r) => setTimeout(r, 150));
    };
    await bump(1);
    await bump(1); // unchanged counter: no event
    await bump(3);
    fs.rmSync(dir, { recursive: true });
    await done;
    expect(watcher.closed).toBe(true);
    expect(seen).toEqual([
      { cgroup: '/c3', oomKill: 1 },
      { cgroup: '/c3', oomKill: 3 },
    ]);
    expect(() => new CounterOomWatcher('/gone', path.join(dir, 'memory.events'), 'oom_kill')).toThrow(
      'memory controller not enabled?',
    );
  });
});
