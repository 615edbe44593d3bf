// cgroup v1: one directory per mounted hierarchy (cpu, cpuacct, cpuset, memory, devices,
// freezer, blkio, pids, name=systemd, …), all at the same path, as containerd's v1 cgroups do.
import * as path from 'path';
import { BerthError } from '../../services/errdefs';
import { isErrno } from '../native/errno';
import {
  blockDevices,
  fileExists,
  hugePageSizes,
  mkdirp,
  normalizeCgroupPath,
  parseIds,
  parseKV,
  parseUint,
  readOptional,
  readText,
  removeCgroupDirs,
  waitFor,
  writeValue,
  signalAll,
  sleep,
} from './files';
import { V1Hierarchy, v1Hierarchies } from './mode';
import { CounterOomWatcher, V1OomWatcher } from './oom';
import {
  BlkIOEntry,
  BlkIOStat,
  CPUStatV1,
  Cgroup,
  FreezerState,
  HugetlbStatV1,
  LinuxResources,
  METRICS_V1_TYPE,
  MemoryEntry,
  MemoryStatV1,
  MetricsV1,
  OomWatcher,
  WaitOptions,
} from './types';

/** USER_HZ: the unit of cpuacct.stat (100 on every Linux architecture Berth runs on). */
const USER_HZ = 100;

export interface CgroupV1Options {
  /** the hierarchies to use; default: every v1 hierarchy mounted on this machine */
  hierarchies?: V1Hierarchy[];
}

export class CgroupV1 implements Cgroup {
  readonly version = 1 as const;
  readonly metricsType = METRICS_V1_TYPE;
  readonly path: string;
  private readonly hierarchies: V1Hierarchy[];

  constructor(cgroupPath: string, opts: CgroupV1Options = {}) {
    this.path = normalizeCgroupPath(cgroupPath);
    this.hierarchies = opts.hierarchies ?? v1Hierarchies();
  }

  /** The directory of this cgroup in the hierarchy holding `controller`, if it is mounted. */
  dir(controller: string): string | undefined {
    const h = this.hierarchies.find((x) => x.controllers.includes(controller));
    return h ? path.join(h.mountpoint, this.path) : undefined;
  }

  private dirs(): string[] {
    return this.hierarchies.map((h) => path.join(h.mountpoint, this.path));
  }

  /** The controller's directory, or NotImplemented when the controller is not mounted. */
  private need(controller: string, what: string): string {
    const d = this.dir(controller);
    if (!d) throw new BerthError('NotImplemented', `cgroup ${this.path}: ${what} needs the ${controller} controller, which is not mounted`);
    return d;
  }

  /** The hierarchy whose cgroup.procs lists the cgroup's processes. */
  private primary(): string {
    const d = this.dir('pids') ?? this.dir('memory') ?? this.dir('freezer') ?? this.dirs()[0];
    if (!d) throw new BerthError('FailedPrecondition', 'no cgroup v1 hierarchy is mounted');
    return d;
  }

  private missing(cause?: unknown): never {
    throw new BerthError('NotFound', `cgroup ${this.path}`, { cause });
  }

  /** ENOENT on the cgroup's own files means the cgroup is gone: NotFound; anything else as is. */
  private notFound(err: unknown): never {
    if (isErrno(err, 'ENOENT')) this.missing(err);
    throw err;
  }

  async exists(): Promise<boolean> {
    return fileExists(this.primary());
  }

  async create(resources?: LinuxResources): Promise<void> {
    const existed = await this.exists();
    for (const h of this.hierarchies) {
      if (h.controllers.includes('cpuset')) await this.ensureCpuset(h.mountpoint);
      else await mkdirp(this.path, path.join(h.mountpoint, this.path));
    }
    if (!resources) return;
    try {
      await this.update(resources);
    } catch (err) {
      if (!existed) await this.delete().catch(() => undefined);
      throw err;
    }
  }

  /** A new cpuset cgroup has empty cpus/mems (and takes no tasks): copy them down from the parent at every level. */
  private async ensureCpuset(mountpoint: string): Promise<void> {
    let current = mountpoint;
    for (const part of this.path.split('/').filter(Boolean)) {
      const parent = current;
      current = path.join(current, part);
      await mkdirp(this.path, current);
      for (const file of ['cpuset.cpus', 'cpuset.mems']) {
        const own = (await readText(this.path, path.join(current, file))).trim();
        if (own) continue;
        const inherited = (await readText(this.path, path.join(parent, file))).trim();
        if (inherited) await writeValue(this.path, path.join(current, file), inherited);
      }
    }
  }

  async add(pid: number): Promise<void> {
    try {
      await Promise.all(this.dirs().map((d) => writeValue(this.path, path.join(d, 'cgroup.procs'), pid)));
    } catch (err) {
      if (!(await this.exists())) this.missing(err);
      throw err;
    }
  }

  /** v1 membership is per thread: this moves only `tid` (in every hierarchy). */
  async addThread(tid: number): Promise<void> {
    await Promise.all(this.dirs().map((d) => writeValue(this.path, path.join(d, 'tasks'), tid)));
  }

  async procs(): Promise<number[]> {
    return parseIds(await readText(this.path, path.join(this.primary(), 'cgroup.procs')).catch((e) => this.notFound(e)));
  }

  async threads(): Promise<number[]> {
    return parseIds(await readText(this.path, path.join(this.primary(), 'tasks')).catch((e) => this.notFound(e)));
  }

  // ---- resources ----------------------------------------------------------------------------------

  async update(r: LinuxResources): Promise<void> {
    if (r.unified && Object.keys(r.unified).length > 0) {
      throw new BerthError('InvalidArgument', `cgroup ${this.path}: "unified" resources need cgroup v2`);
    }
    if (r.cpu && (r.cpu.cpus || r.cpu.mems)) {
      const d = this.need('cpuset', 'cpus/mems');
      if (r.cpu.cpus) await writeValue(this.path, path.join(d, 'cpuset.cpus'), r.cpu.cpus);
      if (r.cpu.mems) await writeValue(this.path, path.join(d, 'cpuset.mems'), r.cpu.mems);
    }
    if (r.devices && r.devices.length > 0) await this.setDevices(r);
    if (r.memory) await this.setMemory(r);
    if (r.cpu) await this.setCpu(r);
    if (r.pids) {
      const d = this.need('pids', 'a pids limit');
      await writeValue(this.path, path.join(d, 'pids.max'), r.pids.limit > 0 ? r.pids.limit : 'max');
    }
    if (r.blockIO) await this.setBlkio(r);
    for (const h of r.hugepageLimits ?? []) {
      const d = this.need('hugetlb', 'a hugepage limit');
      await writeValue(this.path, path.join(d, `hugetlb.${h.pageSize}.limit_in_bytes`), h.limit);
    }
    if (r.network?.classID !== undefined && r.network.classID !== null) {
      await writeValue(this.path, path.join(this.need('net_cls', 'a network class id'), 'net_cls.classid'), r.network.classID);
    }
    for (const p of r.network?.priorities ?? []) {
      await writeValue(this.path, path.join(this.need('net_prio', 'network priorities'), 'net_prio.ifpriomap'), `${p.name} ${p.priority}`);
    }
    for (const [device, limit] of Object.entries(r.rdma ?? {})) {
      const d = this.need('rdma', 'rdma limits');
      await writeValue(this.path, path.join(d, 'rdma.max'), `${device} hca_handle=${limit.hcaHandles ?? 'max'} hca_object=${limit.hcaObjects ?? 'max'}`);
    }
  }

  private async setDevices(r: LinuxResources): Promise<void> {
    const d = this.need('devices', 'device rules');
    for (const rule of r.devices ?? []) {
      const type = rule.type ?? 'a';
      const num = (n: number | null | undefined) => (n === undefined || n === null || n < 0 ? '*' : String(n));
      const value = type === 'a' && num(rule.major) === '*' && num(rule.minor) === '*' ? 'a' : `${type} ${num(rule.major)}:${num(rule.minor)} ${rule.access || 'rwm'}`;
      await writeValue(this.path, path.join(d, rule.allow ? 'devices.allow' : 'devices.deny'), value);
    }
  }

  /** runc's order: memory+swap before memory when the limit grows, after it when it shrinks. */
  private async setMemory(r: LinuxResources): Promise<void> {
    const m = r.memory!;
    const d = this.need('memory', 'memory limits');
    const file = (name: string) => path.join(d, name);
    let limit = m.limit ?? 0;
    let swap = m.swap ?? 0;
    if (limit === -1 && swap === 0) swap = -1;
    if (swap !== 0 && !(await fileExists(file('memory.memsw.limit_in_bytes')))) swap = 0; // no swap accounting: as Docker, ignore
    if (limit !== 0 && swap !== 0) {
      const current = parseUint(await readText(this.path, file('memory.limit_in_bytes')));
      if (swap === -1 || current < swap) {
        await writeValue(this.path, file('memory.memsw.limit_in_bytes'), swap);
        await writeValue(this.path, file('memory.limit_in_bytes'), limit);
      } else {
        await writeValue(this.path, file('memory.limit_in_bytes'), limit);
        await writeValue(this.path, file('memory.memsw.limit_in_bytes'), swap);
      }
    } else {
      if (limit !== 0) await writeValue(this.path, file('memory.limit_in_bytes'), limit);
      if (swap !== 0) await writeValue(this.path, file('memory.memsw.limit_in_bytes'), swap);
    }
    if (m.reservation !== undefined && m.reservation !== 0) await writeValue(this.path, file('memory.soft_limit_in_bytes'), m.reservation);
    if (m.kernelTCP !== undefined && m.kernelTCP !== 0) await writeValue(this.path, file('memory.kmem.tcp.limit_in_bytes'), m.kernelTCP);
    if (m.swappiness !== undefined && m.swappiness !== null) {
      if (m.swappiness >= 0 && m.swappiness <= 100) await writeValue(this.path, file('memory.swappiness'), m.swappiness);
      else if (m.swappiness < 2 ** 63) throw new BerthError('InvalidArgument', `cgroup ${this.path}: invalid memory swappiness ${m.swappiness} (0..100)`);
      // values from 2^63 up are -1 written as an unsigned number: "leave it alone"
    }
    if (m.disableOOMKiller) await writeValue(this.path, file('memory.oom_control'), 1);
    if (m.useHierarchy !== undefined) {
      const want = m.useHierarchy ? '1' : '0';
      if ((await readText(this.path, file('memory.use_hierarchy'))).trim() !== want) await writeValue(this.path, file('memory.use_hierarchy'), want);
    }
  }

  private async setCpu(r: LinuxResources): Promise<void> {
    const c = r.cpu!;
    const needed = [c.shares, c.quota, c.period, c.burst, c.realtimePeriod, c.realtimeRuntime, c.idle].some((v) => v !== undefined && v !== null);
    if (!needed) return;
    const d = this.need('cpu', 'cpu limits');
    const file = (name: string) => path.join(d, name);
    if (c.shares) await writeValue(this.path, file('cpu.shares'), c.shares);
    // The kernel checks period and quota against each other: if the period is refused, set the
    // quota first and try the period again.
    let periodPending = false;
    if (c.period) {
      try {
        await writeValue(this.path, file('cpu.cfs_period_us'), c.period);
      } catch (err) {
        if (!c.quota || !isErrno(err, 'EINVAL')) throw err;
        periodPending = true;
      }
    }
    if (c.quota) await writeValue(this.path, file('cpu.cfs_quota_us'), c.quota);
    if (periodPending) await writeValue(this.path, file('cpu.cfs_period_us'), c.period!);
    if (c.burst !== undefined && c.burst !== null) await writeValue(this.path, file('cpu.cfs_burst_us'), c.burst);
    if (c.realtimePeriod) await writeValue(this.path, file('cpu.rt_period_us'), c.realtimePeriod);
    if (c.realtimeRuntime) await writeValue(this.path, file('cpu.rt_runtime_us'), c.realtimeRuntime);
    if (c.idle !== undefined && c.idle !== null) await writeValue(this.path, file('cpu.idle'), c.idle);
  }

  private async setBlkio(r: LinuxResources): Promise<void> {
    const b = r.blockIO!;
    const d = this.need('blkio', 'block I/O limits');
    const file = (name: string) => path.join(d, name);
    // Without CFQ, weights live in BFQ's files.
    const bfq = !(await fileExists(file('blkio.weight'))) && (await fileExists(file('blkio.bfq.weight')));
    const weightFile = bfq ? 'blkio.bfq.weight' : 'blkio.weight';
    if (b.weight) await writeValue(this.path, file(weightFile), b.weight);
    if (b.leafWeight) await writeValue(this.path, file('blkio.leaf_weight'), b.leafWeight);
    for (const wd of b.weightDevice ?? []) {
      if (wd.weight) await writeValue(this.path, file(weightFile + '_device'), `${wd.major}:${wd.minor} ${wd.weight}`);
      if (wd.leafWeight) await writeValue(this.path, file('blkio.leaf_weight_device'), `${wd.major}:${wd.minor} ${wd.leafWeight}`);
    }
    const throttles: Array<[string, typeof b.throttleReadBpsDevice]> = [
      ['blkio.throttle.read_bps_device', b.throttleReadBpsDevice],
      ['blkio.throttle.write_bps_device', b.throttleWriteBpsDevice],
      ['blkio.throttle.read_iops_device', b.throttleReadIOPSDevice],
      ['blkio.throttle.write_iops_device', b.throttleWriteIOPSDevice],
    ];
    for (const [name, list] of throttles) {
      for (const t of list ?? []) await writeValue(this.path, file(name), `${t.major}:${t.minor} ${t.rate}`);
    }
  }

  // ---- freezer ------------------------------------------------------------------------------------

  async freezerState(): Promise<FreezerState> {
    const d = this.need('freezer', 'the freezer state');
    const s = (await readText(this.path, path.join(d, 'freezer.state')).catch((e) => this.notFound(e))).trim();
    return s.toLowerCase() as FreezerState;
  }

  /**
   * Writes FROZEN until the kernel reports FROZEN. As runc does, a cgroup stuck in FREEZING
   * (tasks in uninterruptible sleep) is thawed briefly every 50 attempts; if it never freezes
   * it is left thawed and the call fails.
   */
  async freeze(opts: WaitOptions = {}): Promise<void> {
    const file = path.join(this.need('freezer', 'freeze'), 'freezer.state');
    try {
      await waitFor(
        `cgroup ${this.path} to freeze`,
        async (attempt) => {
          if (attempt % 50 === 49) {
            await writeValue(this.path, file, 'THAWED');
            await sleep(10, opts.signal);
          }
          await writeValue(this.path, file, 'FROZEN');
          const state = (await readText(this.path, file)).trim();
          if (state !== 'FROZEN' && state !== 'FREEZING') {
            throw new BerthError('Internal', `cgroup ${this.path}: unexpected freezer state ${state} after writing FROZEN`);
          }
          return state === 'FROZEN';
        },
        opts,
      );
    } catch (err) {
      await writeValue(this.path, file, 'THAWED').catch(() => undefined);
      if (isErrno(err, 'ENOENT')) this.notFound(err);
      throw err;
    }
  }

  async thaw(opts: WaitOptions = {}): Promise<void> {
    const file = path.join(this.need('freezer', 'thaw'), 'freezer.state');
    await waitFor(
      `cgroup ${this.path} to thaw`,
      async () => {
        await writeValue(this.path, file, 'THAWED');
        return (await readText(this.path, file)).trim() === 'THAWED';
      },
      opts,
    ).catch((e) => this.notFound(e));
  }

  // ---- signals, OOM, delete --------------------------------------------------------------------------

  /**
   * Freezes the cgroup, signals every process, thaws. A cgroup that was frozen (paused) before
   * stays frozen, except for SIGKILL, which a v1-frozen task only acts on once thawed.
   */
  async kill(signal: NodeJS.Signals | number = 'SIGKILL'): Promise<void> {
    const canFreeze = this.dir('freezer') !== undefined;
    const wasFrozen = canFreeze && (await this.freezerState()) === 'frozen';
    if (canFreeze && !wasFrozen) await this.freeze();
    try {
      signalAll(await this.procs(), signal);
    } finally {
      if (canFreeze && (!wasFrozen || signal === 'SIGKILL' || signal === 9)) await this.thaw();
    }
  }

  watchOom(): OomWatcher {
    const d = this.need('memory', 'OOM notification');
    try {
      return new V1OomWatcher(this.path, d);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) this.notFound(err);
      // no cgroup.event_control (or no eventfd): fall back to watching the oom_kill counter
      return new CounterOomWatcher(this.path, path.join(d, 'memory.oom_control'), 'oom_kill', 250);
    }
  }

  async delete(): Promise<void> {
    await removeCgroupDirs(this.path, this.dirs());
  }

  // ---- metrics ------------------------------------------------------------------------------------------

  async stats(): Promise<MetricsV1> {
    if (!(await this.exists())) this.missing();
    const out: MetricsV1 = { hugetlb: [], network: [] };
    await Promise.all([this.statPids(out), this.statCpu(out), this.statMemory(out), this.statBlkio(out), this.statHugetlb(out)]);
    return out;
  }

  private async statPids(out: MetricsV1): Promise<void> {
    const d = this.dir('pids');
    if (!d) return;
    const [current, max] = await Promise.all([readText(this.path, path.join(d, 'pids.current')), readText(this.path, path.join(d, 'pids.max'))]);
    out.pids = { current: parseUint(current), limit: parseUint(max, 0) };
  }

  private async statCpu(out: MetricsV1): Promise<void> {
    const acct = this.dir('cpuacct');
    const cpu = this.dir('cpu');
    if (!acct && !cpu) return;
    const stat: CPUStatV1 = {
      usage: { total: 0, kernel: 0, user: 0, per_cpu: [] },
      throttling: { periods: 0, throttled_periods: 0, throttled_time: 0 },
    };
    if (acct) {
      const [usage, percpu, ticks] = await Promise.all([
        readText(this.path, path.join(acct, 'cpuacct.usage')),
        readText(this.path, path.join(acct, 'cpuacct.usage_percpu')),
        readText(this.path, path.join(acct, 'cpuacct.stat')),
      ]);
      const kv = parseKV(ticks);
      stat.usage.total = parseUint(usage);
      stat.usage.per_cpu = percpu.trim().split(/\s+/).filter(Boolean).map((v) => parseUint(v));
      stat.usage.user = ((kv.get('user') ?? 0) * 1e9) / USER_HZ;
      stat.usage.kernel = ((kv.get('system') ?? 0) * 1e9) / USER_HZ;
    }
    if (cpu) {
      const kv = parseKV(await readOptional(path.join(cpu, 'cpu.stat')));
      stat.throttling = {
        periods: kv.get('nr_periods') ?? 0,
        throttled_periods: kv.get('nr_throttled') ?? 0,
        throttled_time: kv.get('throttled_time') ?? 0,
      };
    }
    out.cpu = stat;
  }

  private async statMemory(out: MetricsV1): Promise<void> {
    const d = this.dir('memory');
    if (!d) return;
    const entry = async (module: string): Promise<MemoryEntry> => {
      const prefix = module ? `memory.${module}.` : 'memory.';
      const [usage, max, failcnt, limit] = await Promise.all(
        ['usage_in_bytes', 'max_usage_in_bytes', 'failcnt', 'limit_in_bytes'].map((n) => readOptional(path.join(d, prefix + n))),
      );
      const num = (s: string | undefined) => (s === undefined ? 0 : parseUint(s));
      return { usage: num(usage), max: num(max), failcnt: num(failcnt), limit: num(limit) };
    };
    const [statText, oomText, usage, swap, kernel, kernelTcp] = await Promise.all([
      readText(this.path, path.join(d, 'memory.stat')),
      readText(this.path, path.join(d, 'memory.oom_control')),
      entry(''),
      entry('memsw'),
      entry('kmem'),
      entry('kmem.tcp'),
    ]);
    const s = parseKV(statText);
    const g = (k: string) => s.get(k) ?? 0;
    const mem: MemoryStatV1 = {
      cache: g('cache'),
      rss: g('rss'),
      rss_huge: g('rss_huge'),
      mapped_file: g('mapped_file'),
      dirty: g('dirty'),
      writeback: g('writeback'),
      pg_pg_in: g('pgpgin'),
      pg_pg_out: g('pgpgout'),
      pg_fault: g('pgfault'),
      pg_maj_fault: g('pgmajfault'),
      inactive_anon: g('inactive_anon'),
      active_anon: g('active_anon'),
      inactive_file: g('inactive_file'),
      active_file: g('active_file'),
      unevictable: g('unevictable'),
      hierarchical_memory_limit: g('hierarchical_memory_limit'),
      hierarchical_swap_limit: g('hierarchical_memsw_limit'),
      total_cache: g('total_cache'),
      total_rss: g('total_rss'),
      total_rss_huge: g('total_rss_huge'),
      total_mapped_file: g('total_mapped_file'),
      total_dirty: g('total_dirty'),
      total_writeback: g('total_writeback'),
      total_pg_pg_in: g('total_pgpgin'),
      total_pg_pg_out: g('total_pgpgout'),
      total_pg_fault: g('total_pgfault'),
      total_pg_maj_fault: g('total_pgmajfault'),
      total_inactive_anon: g('total_inactive_anon'),
      total_active_anon: g('total_active_anon'),
      total_inactive_file: g('total_inactive_file'),
      total_active_file: g('total_active_file'),
      total_unevictable: g('total_unevictable'),
      usage,
      swap,
      kernel,
      kernel_tcp: kernelTcp,
    };
    const oom = parseKV(oomText);
    out.memory = mem;
    out.memory_oom_control = {
      oom_kill_disable: oom.get('oom_kill_disable') ?? 0,
      under_oom: oom.get('under_oom') ?? 0,
      oom_kill: oom.get('oom_kill') ?? 0,
    };
  }

  /** containerd's choice of files: the CFQ *_recursive set, or else the throttle counters. */
  private async statBlkio(out: MetricsV1): Promise<void> {
    const d = this.dir('blkio');
    if (!d) return;
    const devices = await blockDevices();
    const stat: BlkIOStat = {
      io_service_bytes_recursive: [],
      io_serviced_recursive: [],
      io_queued_recursive: [],
      io_service_time_recursive: [],
      io_wait_time_recursive: [],
      io_merged_recursive: [],
      io_time_recursive: [],
      sectors_recursive: [],
    };
    const read = async (name: string): Promise<BlkIOEntry[] | undefined> => {
      const text = await readOptional(path.join(d, 'blkio.' + name));
      return text === undefined ? undefined : parseBlkio(text, devices);
    };
    let total = 0;
    if (await fileExists(path.join(d, 'blkio.io_serviced_recursive'))) {
      const cfq: Array<[keyof BlkIOStat, string]> = [
        ['sectors_recursive', 'sectors_recursive'],
        ['io_service_bytes_recursive', 'io_service_bytes_recursive'],
        ['io_serviced_recursive', 'io_serviced_recursive'],
        ['io_queued_recursive', 'io_queued_recursive'],
        ['io_service_time_recursive', 'io_service_time_recursive'],
        ['io_wait_time_recursive', 'io_wait_time_recursive'],
        ['io_merged_recursive', 'io_merged_recursive'],
        ['io_time_recursive', 'time_recursive'],
      ];
      for (const [field, name] of cfq) {
        stat[field] = (await read(name)) ?? [];
        total += stat[field].length;
      }
    }
    if (total === 0) {
      stat.io_serviced_recursive = (await read('throttle.io_serviced_recursive')) ?? (await read('throttle.io_serviced')) ?? [];
      stat.io_service_bytes_recursive = (await read('throttle.io_service_bytes_recursive')) ?? (await read('throttle.io_service_bytes')) ?? [];
    }
    out.blkio = stat;
  }

  private async statHugetlb(out: MetricsV1): Promise<void> {
    const d = this.dir('hugetlb');
    if (!d) return;
    const stats: HugetlbStatV1[] = [];
    for (const size of await hugePageSizes()) {
      const [usage, max, failcnt] = await Promise.all(
        ['usage_in_bytes', 'max_usage_in_bytes', 'failcnt'].map((n) => readOptional(path.join(d, `hugetlb.${size}.${n}`))),
      );
      if (usage === undefined) continue;
      stats.push({ pagesize: size, usage: parseUint(usage), max: parseUint(max ?? '0'), failcnt: parseUint(failcnt ?? '0') });
    }
    out.hugetlb = stats;
  }
}

/** "8:0 Read 4096" / "8:0 4096" lines; "Total" lines are skipped. */
function parseBlkio(text: string, devices: Map<string, string>): BlkIOEntry[] {
  const out: BlkIOEntry[] = [];
  for (const line of text.split('\n')) {
    const f = line.split(/[\s:]+/).filter(Boolean);
    if (f.length < 3) continue;
    const [major, minor] = [Number(f[0]), Number(f[1])];
    if (!Number.isFinite(major) || !Number.isFinite(minor)) continue;
    const op = f.length >= 4 ? f[2] : '';
    const value = parseUint(f.length >= 4 ? f[3] : f[2]);
    out.push({ op, device: devices.get(`${major}:${minor}`) ?? '', major, minor, value });
  }
  return out;
}
