// cgroup v2: one directory in the unified tree. OCI (v1-shaped) resources are converted the way
// runc converts them: cpu shares → cpu.weight, memory+swap → memory.swap.max, blkio weight →
// io.bfq.weight or io.weight, throttles → io.max. Device rules need an eBPF program on v2 and
// are not applied here.
import { promises as fsp } from 'fs';
import * as path from 'path';
import { BerthError } from '../../services/errdefs';
import { isErrno } from '../native/errno';
import {
  fileExists,
  mkdirp,
  normalizeCgroupPath,
  parseIds,
  parseKV,
  parseUint,
  readOptional,
  readText,
  removeCgroupDirs,
  signalAll,
  waitFor,
  writeValue,
} from './files';
import { DEFAULT_ROOT, cgroupMode } from './mode';
import { CounterOomWatcher } from './oom';
import {
  Cgroup,
  FreezerState,
  HugeTlbStatV2,
  IOEntry,
  LinuxResources,
  METRICS_V2_TYPE,
  MetricsV2,
  OomWatcher,
  RdmaEntry,
  UINT64_MAX,
  WaitOptions,
} from './types';

/** Controllers a container cgroup may use; enabled in every ancestor's subtree_control when available. */
const WANTED_CONTROLLERS = ['cpuset', 'cpu', 'io', 'memory', 'hugetlb', 'pids', 'rdma', 'misc'];

export interface CgroupV2Options {
  /** where the unified hierarchy is mounted; default /sys/fs/cgroup (or …/unified on a hybrid machine) */
  mountpoint?: string;
}

/** OCI cpu shares (2..262144) → cgroup v2 cpu.weight (1..10000), runc's formula. */
export function sharesToWeight(shares: number): number {
  if (shares === 0) return 0;
  return 1 + Math.floor(((shares - 2) * 9999) / 262142);
}

/** OCI blkio weight (10..1000) → io.weight (1..10000), runc's formula. */
export function blkioWeightToIoWeight(weight: number): number {
  if (weight === 0) return 0;
  return 1 + Math.floor(((weight - 10) * 9999) / 990);
}

/**
 * OCI memory.swap is memory+swap; v2's memory.swap.max is swap alone. Returns the value for
 * memory.swap.max: undefined for "leave alone", -1 for "max". runc's rules.
 */
export function swapToV2(swap: number, limit: number): number | undefined {
  if (limit === -1 && swap === 0) return -1;
  if (swap === -1) return -1;
  if (swap === 0) return undefined;
  if (limit === 0) throw new BerthError('InvalidArgument', 'unable to set a swap limit without a memory limit');
  if (limit < 0) throw new BerthError('InvalidArgument', `invalid memory limit ${limit}`);
  if (swap < limit) throw new BerthError('InvalidArgument', `memory+swap limit (${swap}) must be >= the memory limit (${limit})`);
  return swap - limit;
}

/** 0: leave alone (undefined); -1: "max"; else the number. */
function limitValue(v: number | undefined | null): string | undefined {
  if (v === undefined || v === null || v === 0) return undefined;
  return v < 0 ? 'max' : String(v);
}

export class CgroupV2 implements Cgroup {
  readonly version = 2 as const;
  readonly metricsType = METRICS_V2_TYPE;
  readonly path: string;
  readonly mountpoint: string;
  /** the cgroup's directory */
  readonly dir: string;

  constructor(cgroupPath: string, opts: CgroupV2Options = {}) {
    this.path = normalizeCgroupPath(cgroupPath);
    this.mountpoint = opts.mountpoint ?? cgroupMode().unifiedMount ?? DEFAULT_ROOT;
    this.dir = path.join(this.mountpoint, this.path);
  }

  private file(name: string): string {
    return path.join(this.dir, name);
  }

  private missing(cause?: unknown): never {
    throw new BerthError('NotFound', `cgroup ${this.path}`, { cause });
  }

  private notFound(err: unknown): never {
    if (isErrno(err, 'ENOENT')) this.missing(err);
    throw err;
  }

  async exists(): Promise<boolean> {
    return fileExists(this.dir);
  }

  async create(resources?: LinuxResources): Promise<void> {
    const existed = await this.exists();
    await mkdirp(this.path, this.dir);
    try {
      await this.enableControllers();
      if (resources) await this.update(resources);
    } catch (err) {
      if (!existed) await this.delete().catch(() => undefined);
      throw err;
    }
  }

  /**
   * Enables the wanted controllers in the subtree_control of every ancestor, top down, as far as
   * each ancestor offers them. A refusal (EBUSY: an ancestor with processes of its own) is not
   * fatal here; a resource that then cannot be set fails in update() with a clear error.
   */
  private async enableControllers(): Promise<void> {
    let dir = this.mountpoint;
    for (const part of this.path.split('/').filter(Boolean)) {
      const available = new Set((await readOptional(path.join(dir, 'cgroup.controllers')))?.trim().split(/\s+/) ?? []);
      const enabled = new Set((await readOptional(path.join(dir, 'cgroup.subtree_control')))?.trim().split(/\s+/) ?? []);
      for (const c of WANTED_CONTROLLERS) {
        if (!available.has(c) || enabled.has(c)) continue;
        await writeValue(this.path, path.join(dir, 'cgroup.subtree_control'), '+' + c).catch(() => undefined);
      }
      dir = path.join(dir, part);
    }
  }

  async add(pid: number): Promise<void> {
    await writeValue(this.path, this.file('cgroup.procs'), pid).catch((e) => this.notFound(e));
  }

  /** Only possible in a threaded cgroup (cgroup.type "threaded"); the kernel refuses otherwise. */
  async addThread(tid: number): Promise<void> {
    await writeValue(this.path, this.file('cgroup.threads'), tid).catch((e) => this.notFound(e));
  }

  async procs(): Promise<number[]> {
    return parseIds(await readText(this.path, this.file('cgroup.procs')).catch((e) => this.notFound(e)));
  }

  async threads(): Promise<number[]> {
    return parseIds(await readText(this.path, this.file('cgroup.threads')).catch((e) => this.notFound(e)));
  }

  // ---- resources ----------------------------------------------------------------------------------

  /** Writes one resource file; a missing file means the controller is not enabled here. */
  private async set(name: string, value: string | number, what: string): Promise<void> {
    try {
      await writeValue(this.path, this.file(name), value);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) {
        if (!(await this.exists())) this.missing(err);
        throw new BerthError('NotImplemented', `cgroup ${this.path}: ${what} needs ${name}, which does not exist (controller not enabled?)`, {
          cause: err,
        });
      }
      throw err;
    }
  }

  async update(r: LinuxResources): Promise<void> {
    if (r.cpu) {
      const c = r.cpu;
      if (c.realtimePeriod || c.realtimeRuntime) throw new BerthError('NotImplemented', `cgroup ${this.path}: realtime cpu limits are not supported on cgroup v2`);
      if (c.cpus) await this.set('cpuset.cpus', c.cpus, 'cpus');
      if (c.mems) await this.set('cpuset.mems', c.mems, 'mems');
      if (c.shares) await this.set('cpu.weight', sharesToWeight(c.shares), 'cpu shares');
      if (c.quota || c.period) {
        let max = c.quota && c.quota > 0 ? String(c.quota) : 'max';
        if (c.period) max += ' ' + c.period;
        await this.set('cpu.max', max, 'a cpu quota');
      }
      if (c.burst !== undefined && c.burst !== null) await this.set('cpu.max.burst', c.burst, 'a cpu burst');
      if (c.idle !== undefined && c.idle !== null) await this.set('cpu.idle', c.idle, 'cpu idle');
    }
    if (r.memory) {
      const m = r.memory;
      const swap = swapToV2(m.swap ?? 0, m.limit ?? 0);
      if (swap !== undefined) {
        const v = swap === -1 ? 'max' : String(swap);
        try {
          await writeValue(this.path, this.file('memory.swap.max'), v);
        } catch (err) {
          // no swap accounting: "max" and "0" are what we have anyway
          if (!(isErrno(err, 'ENOENT') && (v === 'max' || v === '0'))) throw err;
        }
      }
      const max = limitValue(m.limit);
      if (max !== undefined) await this.set('memory.max', max, 'a memory limit');
      const low = limitValue(m.reservation);
      if (low !== undefined) await this.set('memory.low', low, 'a memory reservation');
    }
    if (r.pids) await this.set('pids.max', r.pids.limit > 0 ? r.pids.limit : 'max', 'a pids limit');
    if (r.blockIO) {
      const b = r.blockIO;
      const bfq = await fileExists(this.file('io.bfq.weight'));
      if (b.weight) {
        if (bfq) await this.set('io.bfq.weight', b.weight, 'a block I/O weight');
        else await this.set('io.weight', blkioWeightToIoWeight(b.weight), 'a block I/O weight');
      }
      for (const wd of b.weightDevice ?? []) {
        if (!wd.weight) continue;
        if (bfq) await this.set('io.bfq.weight', `${wd.major}:${wd.minor} ${wd.weight}`, 'a device weight');
        else await this.set('io.weight', `${wd.major}:${wd.minor} ${blkioWeightToIoWeight(wd.weight)}`, 'a device weight');
      }
      const throttles: Array<[string, typeof b.throttleReadBpsDevice]> = [
        ['rbps', b.throttleReadBpsDevice],
        ['wbps', b.throttleWriteBpsDevice],
        ['riops', b.throttleReadIOPSDevice],
        ['wiops', b.throttleWriteIOPSDevice],
      ];
      for (const [key, list] of throttles) {
        for (const t of list ?? []) await this.set('io.max', `${t.major}:${t.minor} ${key}=${t.rate}`, 'an I/O throttle');
      }
    }
    for (const h of r.hugepageLimits ?? []) await this.set(`hugetlb.${h.pageSize}.max`, h.limit, 'a hugepage limit');
    for (const [device, limit] of Object.entries(r.rdma ?? {})) {
      await this.set('rdma.max', `${device} hca_handle=${limit.hcaHandles ?? 'max'} hca_object=${limit.hcaObjects ?? 'max'}`, 'rdma limits');
    }
    for (const [key, value] of Object.entries(r.unified ?? {})) {
      if (key.includes('/') || key.startsWith('.')) throw new BerthError('InvalidArgument', `cgroup ${this.path}: invalid unified key ${JSON.stringify(key)}`);
      await this.set(key, value, `unified ${key}`);
    }
  }

  // ---- freezer ------------------------------------------------------------------------------------

  async freezerState(): Promise<FreezerState> {
    const [want, events] = await Promise.all([
      readOptional(this.file('cgroup.freeze')),
      readText(this.path, this.file('cgroup.events')).catch((e) => this.notFound(e)),
    ]);
    const frozen = parseKV(events).get('frozen') === 1;
    if (want?.trim() === '1') return frozen ? 'frozen' : 'freezing';
    return 'thawed';
  }

  private async setFrozen(on: boolean, opts: WaitOptions): Promise<void> {
    await writeValue(this.path, this.file('cgroup.freeze'), on ? '1' : '0').catch((e) => this.notFound(e));
    await waitFor(
      `cgroup ${this.path} to ${on ? 'freeze' : 'thaw'}`,
      async () => (parseKV(await readText(this.path, this.file('cgroup.events'))).get('frozen') === 1) === on,
      opts,
    );
  }

  async freeze(opts: WaitOptions = {}): Promise<void> {
    try {
      await this.setFrozen(true, opts);
    } catch (err) {
      await writeValue(this.path, this.file('cgroup.freeze'), '0').catch(() => undefined);
      throw err;
    }
  }

  async thaw(opts: WaitOptions = {}): Promise<void> {
    await this.setFrozen(false, opts);
  }

  // ---- signals, OOM, delete --------------------------------------------------------------------------

  /**
   * SIGKILL through cgroup.kill (Linux 5.14+) when available; otherwise freeze, signal every
   * process, thaw. A cgroup that was frozen before stays frozen (v2 delivers SIGKILL to frozen
   * tasks anyway).
   */
  async kill(signal: NodeJS.Signals | number = 'SIGKILL'): Promise<void> {
    if ((signal === 'SIGKILL' || signal === 9) && (await fileExists(this.file('cgroup.kill')))) {
      await writeValue(this.path, this.file('cgroup.kill'), '1').catch((e) => this.notFound(e));
      return;
    }
    const wasFrozen = (await this.freezerState()) === 'frozen';
    if (!wasFrozen) await this.freeze();
    try {
      signalAll(await this.procs(), signal);
    } finally {
      if (!wasFrozen) await this.thaw();
    }
  }

  watchOom(): OomWatcher {
    return new CounterOomWatcher(this.path, this.file('memory.events'), 'oom_kill');
  }

  async delete(): Promise<void> {
    await removeCgroupDirs(this.path, [this.dir]);
  }

  // ---- metrics ------------------------------------------------------------------------------------------

  async stats(): Promise<MetricsV2> {
    if (!(await this.exists())) this.missing();
    const opt = (name: string) => readOptional(this.file(name));
    const [cpuStat, memStat, pidsCurrent, pidsMax, memCurrent, memMax, swapCurrent, swapMax, memEvents, ioStat, rdmaCurrent, rdmaMax, hugetlb] =
      await Promise.all([
        opt('cpu.stat'),
        opt('memory.stat'),
        opt('pids.current'),
        opt('pids.max'),
        opt('memory.current'),
        opt('memory.max'),
        opt('memory.swap.current'),
        opt('memory.swap.max'),
        opt('memory.events'),
        opt('io.stat'),
        opt('rdma.current'),
        opt('rdma.max'),
        this.hugetlbStats(),
      ]);
    const cpu = parseKV(cpuStat);
    const mem = parseKV(memStat);
    const c = (k: string) => cpu.get(k) ?? 0;
    const m = (k: string) => mem.get(k) ?? 0;
    const num = (s: string | undefined) => (s === undefined ? 0 : parseUint(s, UINT64_MAX));
    const out: MetricsV2 = {
      pids: { current: num(pidsCurrent), limit: num(pidsMax) },
      cpu: {
        usage_usec: c('usage_usec'),
        user_usec: c('user_usec'),
        system_usec: c('system_usec'),
        nr_periods: c('nr_periods'),
        nr_throttled: c('nr_throttled'),
        throttled_usec: c('throttled_usec'),
      },
      memory: {
        anon: m('anon'),
        file: m('file'),
        kernel_stack: m('kernel_stack'),
        slab: m('slab'),
        sock: m('sock'),
        shmem: m('shmem'),
        file_mapped: m('file_mapped'),
        file_dirty: m('file_dirty'),
        file_writeback: m('file_writeback'),
        anon_thp: m('anon_thp'),
        inactive_anon: m('inactive_anon'),
        active_anon: m('active_anon'),
        inactive_file: m('inactive_file'),
        active_file: m('active_file'),
        unevictable: m('unevictable'),
        slab_reclaimable: m('slab_reclaimable'),
        slab_unreclaimable: m('slab_unreclaimable'),
        pgfault: m('pgfault'),
        pgmajfault: m('pgmajfault'),
        // Linux 5.9 split these into _anon and _file
        workingset_refault: mem.get('workingset_refault') ?? m('workingset_refault_anon') + m('workingset_refault_file'),
        workingset_activate: mem.get('workingset_activate') ?? m('workingset_activate_anon') + m('workingset_activate_file'),
        workingset_nodereclaim: m('workingset_nodereclaim'),
        pgrefill: m('pgrefill'),
        pgscan: m('pgscan'),
        pgsteal: m('pgsteal'),
        pgactivate: m('pgactivate'),
        pgdeactivate: m('pgdeactivate'),
        pglazyfree: m('pglazyfree'),
        pglazyfreed: m('pglazyfreed'),
        thp_fault_alloc: m('thp_fault_alloc'),
        thp_collapse_alloc: m('thp_collapse_alloc'),
        usage: num(memCurrent),
        usage_limit: num(memMax),
        swap_usage: num(swapCurrent),
        swap_limit: num(swapMax),
      },
      rdma: { current: parseRdma(rdmaCurrent), limit: parseRdma(rdmaMax) },
      io: { usage: parseIoStat(ioStat) },
      hugetlb,
    };
    if (memEvents !== undefined) {
      const e = parseKV(memEvents);
      out.memory_events = {
        low: e.get('low') ?? 0,
        high: e.get('high') ?? 0,
        max: e.get('max') ?? 0,
        oom: e.get('oom') ?? 0,
        oom_kill: e.get('oom_kill') ?? 0,
      };
    }
    return out;
  }

  private async hugetlbStats(): Promise<HugeTlbStatV2[]> {
    let names: string[];
    try {
      names = await fsp.readdir(this.dir);
    } catch {
      return [];
    }
    const bySize = new Map<string, HugeTlbStatV2>();
    for (const name of names) {
      const m = /^hugetlb\.([^.]+)\.(current|max)$/.exec(name);
      if (!m) continue;
      const text = await readOptional(this.file(name));
      if (text === undefined) continue;
      const entry = bySize.get(m[1]) ?? { pagesize: m[1], current: 0, max: 0 };
      entry[m[2] as 'current' | 'max'] = parseUint(text, UINT64_MAX);
      bySize.set(m[1], entry);
    }
    return [...bySize.values()];
  }
}

/** io.stat: "8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0" */
export function parseIoStat(text: string | undefined): IOEntry[] {
  const out: IOEntry[] = [];
  for (const line of (text ?? '').split('\n')) {
    const [dev, ...pairs] = line.trim().split(/\s+/);
    const mm = /^(\d+):(\d+)$/.exec(dev ?? '');
    if (!mm) continue;
    const e: IOEntry = { major: Number(mm[1]), minor: Number(mm[2]), rbytes: 0, wbytes: 0, rios: 0, wios: 0 };
    for (const p of pairs) {
      const [k, v] = p.split('=');
      if (k === 'rbytes' || k === 'wbytes' || k === 'rios' || k === 'wios') e[k] = parseUint(v ?? '0');
    }
    out.push(e);
  }
  return out;
}

/** rdma.current / rdma.max: "mlx4_0 hca_handle=2 hca_object=2000" ("max" → 2^32-1, as containerd). */
function parseRdma(text: string | undefined): RdmaEntry[] {
  const out: RdmaEntry[] = [];
  for (const line of (text ?? '').split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length !== 3) continue;
    const e: RdmaEntry = { device: f[0], hca_handles: 0, hca_objects: 0 };
    for (const p of f.slice(1)) {
      const [k, v] = p.split('=');
      const n = v === 'max' ? 0xffffffff : parseUint(v ?? '0');
      if (k === 'hca_handle') e.hca_handles = n;
      else if (k === 'hca_object') e.hca_objects = n;
    }
    out.push(e);
  }
  return out;
}
