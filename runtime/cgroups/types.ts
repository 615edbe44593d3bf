// The shapes the cgroup code speaks: OCI `linux.resources` in (field names as in config.json),
// containerd's cgroup metrics out (field names as in io.containerd.cgroups.v1/v2 metrics.proto,
// so they encode with protobufjs unchanged), and the one Cgroup interface both versions implement.
//
// 64-bit counters are JavaScript numbers, as everywhere in Berth. The kernel's "unlimited" values
// survive that: v1's 9223372036854771712 is exact as a double; v2's "max" is reported as
// UINT64_MAX (containerd's math.MaxUint64), which a double holds as 2^64.

// ---- OCI runtime spec: linux.resources ---------------------------------------------------------

export interface LinuxDeviceCgroup {
  allow: boolean;
  /** 'a' (all), 'c' or 'b' */
  type?: string;
  major?: number | null;
  minor?: number | null;
  /** some of 'r', 'w', 'm' */
  access?: string;
}

export interface LinuxMemory {
  /** bytes; -1 = unlimited */
  limit?: number;
  /** soft limit (v1 soft_limit_in_bytes, v2 memory.low) */
  reservation?: number;
  /** memory+swap limit (v1 memsw); -1 = unlimited */
  swap?: number;
  /** deprecated by the kernel and ignored, as runc does */
  kernel?: number;
  kernelTCP?: number;
  swappiness?: number;
  disableOOMKiller?: boolean;
  useHierarchy?: boolean;
  checkBeforeUpdate?: boolean;
}

export interface LinuxCPU {
  shares?: number;
  quota?: number;
  burst?: number;
  period?: number;
  realtimeRuntime?: number;
  realtimePeriod?: number;
  cpus?: string;
  mems?: string;
  idle?: number;
}

export interface LinuxPids {
  /** <= 0: unlimited */
  limit: number;
}

export interface LinuxWeightDevice {
  major: number;
  minor: number;
  weight?: number;
  leafWeight?: number;
}

export interface LinuxThrottleDevice {
  major: number;
  minor: number;
  rate: number;
}

export interface LinuxBlockIO {
  weight?: number;
  leafWeight?: number;
  weightDevice?: LinuxWeightDevice[];
  throttleReadBpsDevice?: LinuxThrottleDevice[];
  throttleWriteBpsDevice?: LinuxThrottleDevice[];
  throttleReadIOPSDevice?: LinuxThrottleDevice[];
  throttleWriteIOPSDevice?: LinuxThrottleDevice[];
}

export interface LinuxHugepageLimit {
  /** "2MB", "1GB" */
  pageSize: string;
  limit: number;
}

export interface LinuxInterfacePriority {
  name: string;
  priority: number;
}

export interface LinuxNetwork {
  classID?: number;
  priorities?: LinuxInterfacePriority[];
}

export interface LinuxRdma {
  hcaHandles?: number;
  hcaObjects?: number;
}

export interface LinuxResources {
  devices?: LinuxDeviceCgroup[];
  memory?: LinuxMemory;
  cpu?: LinuxCPU;
  pids?: LinuxPids;
  blockIO?: LinuxBlockIO;
  hugepageLimits?: LinuxHugepageLimit[];
  network?: LinuxNetwork;
  rdma?: Record<string, LinuxRdma>;
  /** raw cgroup v2 files ("memory.high": "1G"); v2 only */
  unified?: Record<string, string>;
}

// ---- io.containerd.cgroups.v1.Metrics ----------------------------------------------------------

export interface HugetlbStatV1 {
  usage: number;
  max: number;
  failcnt: number;
  pagesize: string;
}

export interface PidsStat {
  current: number;
  limit: number;
}

export interface CPUUsage {
  total: number;
  kernel: number;
  user: number;
  per_cpu: number[];
}

export interface Throttle {
  periods: number;
  throttled_periods: number;
  throttled_time: number;
}

export interface CPUStatV1 {
  usage: CPUUsage;
  throttling: Throttle;
}

export interface MemoryEntry {
  limit: number;
  usage: number;
  max: number;
  failcnt: number;
}

export interface MemoryStatV1 {
  cache: number;
  rss: number;
  rss_huge: number;
  mapped_file: number;
  dirty: number;
  writeback: number;
  pg_pg_in: number;
  pg_pg_out: number;
  pg_fault: number;
  pg_maj_fault: number;
  inactive_anon: number;
  active_anon: number;
  inactive_file: number;
  active_file: number;
  unevictable: number;
  hierarchical_memory_limit: number;
  hierarchical_swap_limit: number;
  total_cache: number;
  total_rss: number;
  total_rss_huge: number;
  total_mapped_file: number;
  total_dirty: number;
  total_writeback: number;
  total_pg_pg_in: number;
  total_pg_pg_out: number;
  total_pg_fault: number;
  total_pg_maj_fault: number;
  total_inactive_anon: number;
  total_active_anon: number;
  total_inactive_file: number;
  total_active_file: number;
  total_unevictable: number;
  usage: MemoryEntry;
  swap: MemoryEntry;
  kernel: MemoryEntry;
  kernel_tcp: MemoryEntry;
}

export interface MemoryOomControl {
  oom_kill_disable: number;
  under_oom: number;
  oom_kill: number;
}

export interface BlkIOEntry {
  op: string;
  device: string;
  major: number;
  minor: number;
  value: number;
}

export interface BlkIOStat {
  io_service_bytes_recursive: BlkIOEntry[];
  io_serviced_recursive: BlkIOEntry[];
  io_queued_recursive: BlkIOEntry[];
  io_service_time_recursive: BlkIOEntry[];
  io_wait_time_recursive: BlkIOEntry[];
  io_merged_recursive: BlkIOEntry[];
  io_time_recursive: BlkIOEntry[];
  sectors_recursive: BlkIOEntry[];
}

export interface RdmaEntry {
  device: string;
  hca_handles: number;
  hca_objects: number;
}

export interface RdmaStat {
  current: RdmaEntry[];
  limit: RdmaEntry[];
}

export interface NetworkStat {
  name: string;
  rx_bytes: number;
  rx_packets: number;
  rx_errors: number;
  rx_dropped: number;
  tx_bytes: number;
  tx_packets: number;
  tx_errors: number;
  tx_dropped: number;
}

/** io.containerd.cgroups.v1.Metrics; a section is absent when its controller is not mounted. */
export interface MetricsV1 {
  hugetlb: HugetlbStatV1[];
  pids?: PidsStat;
  cpu?: CPUStatV1;
  memory?: MemoryStatV1;
  blkio?: BlkIOStat;
  rdma?: RdmaStat;
  /** not a cgroup statistic; always empty here, as in containerd */
  network: NetworkStat[];
  memory_oom_control?: MemoryOomControl;
}

// ---- io.containerd.cgroups.v2.Metrics ----------------------------------------------------------

export interface CPUStatV2 {
  usage_usec: number;
  user_usec: number;
  system_usec: number;
  nr_periods: number;
  nr_throttled: number;
  throttled_usec: number;
}

export interface MemoryStatV2 {
  anon: number;
  file: number;
  kernel_stack: number;
  slab: number;
  sock: number;
  shmem: number;
  file_mapped: number;
  file_dirty: number;
  file_writeback: number;
  anon_thp: number;
  inactive_anon: number;
  active_anon: number;
  inactive_file: number;
  active_file: number;
  unevictable: number;
  slab_reclaimable: number;
  slab_unreclaimable: number;
  pgfault: number;
  pgmajfault: number;
  workingset_refault: number;
  workingset_activate: number;
  workingset_nodereclaim: number;
  pgrefill: number;
  pgscan: number;
  pgsteal: number;
  pgactivate: number;
  pgdeactivate: number;
  pglazyfree: number;
  pglazyfreed: number;
  thp_fault_alloc: number;
  thp_collapse_alloc: number;
  usage: number;
  usage_limit: number;
  swap_usage: number;
  swap_limit: number;
}

export interface MemoryEvents {
  low: number;
  high: number;
  max: number;
  oom: number;
  oom_kill: number;
}

export interface IOEntry {
  major: number;
  minor: number;
  rbytes: number;
  wbytes: number;
  rios: number;
  wios: number;
}

export interface HugeTlbStatV2 {
  current: number;
  max: number;
  pagesize: string;
}

/** io.containerd.cgroups.v2.Metrics */
export interface MetricsV2 {
  pids: PidsStat;
  cpu: CPUStatV2;
  memory: MemoryStatV2;
  rdma: RdmaStat;
  io: { usage: IOEntry[] };
  hugetlb: HugeTlbStatV2[];
  memory_events?: MemoryEvents;
}

export const METRICS_V1_TYPE = 'io.containerd.cgroups.v1.Metrics';
export const METRICS_V2_TYPE = 'io.containerd.cgroups.v2.Metrics';

/** containerd reports cgroup v2 "max" as math.MaxUint64. */
export const UINT64_MAX = 2 ** 64 - 1;

// ---- the interface ----------------------------------------------------------------------------------

/** How this machine mounts cgroups. */
export type CgroupMode = 'legacy' | 'hybrid' | 'unified';

export type FreezerState = 'thawed' | 'freezing' | 'frozen';

export interface WaitOptions {
  signal?: AbortSignal;
  /** give up after this long (default 10 s) */
  timeoutMs?: number;
}

/** One OOM kill (or, on v1 with the OOM killer disabled, one OOM condition) in a cgroup. */
export interface OomEvent {
  /** the cgroup's path ("/berth/ns/id") */
  cgroup: string;
  /** the cgroup's cumulative oom_kill counter after the event */
  oomKill: number;
}

/** OOM notifications: an event emitter ('oom', 'error', 'close') and an async iterator. */
export interface OomWatcher extends AsyncIterable<OomEvent> {
  on(event: 'oom', listener: (e: OomEvent) => void): this;
  on(event: 'error', listener: (err: Error) => void): this;
  on(event: 'close', listener: () => void): this;
  once(event: 'oom', listener: (e: OomEvent) => void): this;
  once(event: 'error', listener: (err: Error) => void): this;
  once(event: 'close', listener: () => void): this;
  off(event: string, listener: (...args: any[]) => void): this;
  /** stops watching; the iterator ends */
  close(): void;
  readonly closed: boolean;
}

/**
 * A cgroup at one path, in every v1 hierarchy or in the v2 tree. Paths are absolute within the
 * cgroup hierarchy ("/berth/default/<id>"), like OCI `linux.cgroupsPath`.
 */
export interface Cgroup {
  readonly path: string;
  readonly version: 1 | 2;
  /** the protobuf type name stats() follows */
  readonly metricsType: typeof METRICS_V1_TYPE | typeof METRICS_V2_TYPE;

  /** mkdir (and, for v1 cpuset / v2 subtree_control, prepare the parents), then apply resources */
  create(resources?: LinuxResources): Promise<void>;
  exists(): Promise<boolean>;
  /** move a process (all its threads) into the cgroup */
  add(pid: number): Promise<void>;
  /** move one thread (v1: every hierarchy's `tasks`; v2: needs a threaded cgroup) */
  addThread(tid: number): Promise<void>;
  /** process ids in the cgroup (not its children) */
  procs(): Promise<number[]>;
  /** thread ids in the cgroup */
  threads(): Promise<number[]>;
  update(resources: LinuxResources): Promise<void>;
  /** freeze and wait until the kernel reports the cgroup frozen */
  freeze(opts?: WaitOptions): Promise<void>;
  thaw(opts?: WaitOptions): Promise<void>;
  freezerState(): Promise<FreezerState>;
  stats(): Promise<MetricsV1 | MetricsV2>;
  watchOom(): OomWatcher;
  /** signal every process in the cgroup (frozen while signalling, so none escapes by forking) */
  kill(signal?: NodeJS.Signals | number): Promise<void>;
  /** remove the directories (children first); fails while processes remain */
  delete(): Promise<void>;
}
