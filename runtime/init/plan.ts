// From a validated OCI spec to the plan the init worker thread carries out: plain data (it crosses
// to the worker by structured clone), computed on the caller's thread so that every decision can be
// unit-tested without namespaces.
//
// The one ordering constraint this file decides: procfs shows the PID namespace of the task that
// mounts it, and a worker thread never becomes a member of the PID namespace it creates (only its
// children do). So when the container has a PID namespace, every `proc` mount (and whatever the
// spec mounts, masks or makes read-only beneath it) is "helper" phase: done once the workload
// process exists, by the namespace helper thread (helper.ts), with the new process's namespace.
import * as path from 'path';
import { BerthError } from '../../services/errdefs';
import { capMask } from '../native/caps';
import {
  CLONE_NEWCGROUP,
  CLONE_NEWIPC,
  CLONE_NEWNET,
  CLONE_NEWNS,
  CLONE_NEWPID,
  CLONE_NEWUTS,
  MS_BIND,
  MS_PRIVATE,
  MS_REC,
  MS_SHARED,
  MS_SLAVE,
  MS_UNBINDABLE,
  RLIMITS,
} from '../native/constants';
import { parseMountOptions } from '../native/mount';
import type { Box, LinuxDevice, NamespaceType, Process, RunnableSpec } from '../oci/types';

export type Phase = 'worker' | 'helper';

export interface PlannedMount {
  destination: string;
  /** filesystem type; "bind" for bind mounts */
  type: string;
  /** for binds: the absolute host path */
  source: string;
  bind: boolean;
  /** rbind */
  recursive: boolean;
  /** MS_* flags from the options (MS_BIND/MS_REC included for binds) */
  flags: number;
  /** filesystem options (mode=755,size=65536k) */
  data: string;
  /** MS_PRIVATE|MS_REC … to apply after mounting, in order */
  propagation: number[];
  /** recursive attributes (rro, rnosuid …) for mount_setattr(2) */
  recAttrSet: number;
  recAttrClr: number;
  phase: Phase;
}

export interface PlannedDevice {
  path: string;
  /** S_IFCHR, S_IFBLK or S_IFIFO */
  kind: 'c' | 'b' | 'p';
  major: number;
  minor: number;
  mode: number;
  uid: number;
  gid: number;
}

export interface PlannedPath {
  path: string;
  phase: Phase;
}

export interface CapabilityMasks {
  bounding?: bigint;
  effective: bigint;
  permitted: bigint;
  inheritable: bigint;
  ambient?: bigint;
}

export interface PlannedRlimit {
  type: string;
  resource: number;
  soft: number;
  hard: number;
}

/** What the workload process (init or exec) is, as the worker sets it up. */
export interface ProcessPlan {
  args: string[];
  env: string[];
  cwd: string;
  uid: number;
  gid: number;
  additionalGids: number[];
  umask: number;
  /** undefined: leave the thread's capabilities (all of root's) as they are, as runc does */
  caps?: CapabilityMasks;
  noNewPrivileges: boolean;
  rlimits: PlannedRlimit[];
  terminal: boolean;
  consoleSize?: Box;
  oomScoreAdj?: number;
}

export interface CgroupMountInfo {
  /** 'v1': the v1 hierarchies below; 'v2': cgroup2 */
  version: 1 | 2;
  hierarchies: Array<{ controllers: string[]; mountpoint: string }>;
  /** the container's cgroup path (bound when there is no cgroup namespace) */
  path: string;
  /** the container has a cgroup namespace: mount each hierarchy afresh (set by planInit) */
  viaNamespace: boolean;
}

export interface InitPlan {
  id: string;
  /** the rootfs directory on the host (already mounted by the caller) */
  rootfs: string;
  /** namespaces to join by path (in spec order; the mount namespace, if any, last) */
  joins: Array<{ type: NamespaceType; path: string }>;
  /** CLONE_NEW* flags to unshare */
  unshareFlags: number;
  /** the container has (creates or joins) a PID namespace: proc mounts are helper phase */
  pidNamespace: boolean;
  /** the container creates its mount namespace (false: joins one; no rootfs set-up) */
  newMountNamespace: boolean;
  newCgroupNamespace: boolean;
  /** MS_* propagation for "/" before the rootfs is bound (default MS_SLAVE|MS_REC, runc's) */
  rootPropagation: number;
  readonlyRoot: boolean;
  mounts: PlannedMount[];
  /** /dev is not bind-mounted from the host: create device nodes and links */
  setupDev: boolean;
  devices: PlannedDevice[];
  masked: PlannedPath[];
  readonlyPaths: PlannedPath[];
  hostname?: string;
  domainname?: string;
  sysctl: Array<[string, string]>;
  cgroupMount?: CgroupMountInfo;
  process: ProcessPlan;
}

const NEW_FLAGS: Partial<Record<NamespaceType, number>> = {
  pid: CLONE_NEWPID,
  network: CLONE_NEWNET,
  mount: CLONE_NEWNS,
  ipc: CLONE_NEWIPC,
  uts: CLONE_NEWUTS,
  cgroup: CLONE_NEWCGROUP,
};

const PROPAGATION: Record<string, number> = {
  private: MS_PRIVATE,
  rprivate: MS_PRIVATE | MS_REC,
  slave: MS_SLAVE,
  rslave: MS_SLAVE | MS_REC,
  shared: MS_SHARED,
  rshared: MS_SHARED | MS_REC,
  unbindable: MS_UNBINDABLE,
  runbindable: MS_UNBINDABLE | MS_REC,
};

/** runc's default devices (libcontainer/specconv AllowedDevices that get nodes). */
export const DEFAULT_DEVICES: readonly PlannedDevice[] = [
  { path: '/dev/null', kind: 'c', major: 1, minor: 3, mode: 0o666, uid: 0, gid: 0 },
  { path: '/dev/zero', kind: 'c', major: 1, minor: 5, mode: 0o666, uid: 0, gid: 0 },
  { path: '/dev/full', kind: 'c', major: 1, minor: 7, mode: 0o666, uid: 0, gid: 0 },
  { path: '/dev/tty', kind: 'c', major: 5, minor: 0, mode: 0o666, uid: 0, gid: 0 },
  { path: '/dev/random', kind: 'c', major: 1, minor: 8, mode: 0o666, uid: 0, gid: 0 },
  { path: '/dev/urandom', kind: 'c', major: 1, minor: 9, mode: 0o666, uid: 0, gid: 0 },
];

/** A path, cleaned and absolute. */
export function cleanPath(p: string): string {
  return path.posix.normalize('/' + p).replace(/\/+$/, '') || '/';
}

/** `p` is `dir` or inside it (both clean). */
export function isWithin(p: string, dir: string): boolean {
  return dir === '/' || p === dir || p.startsWith(dir + '/');
}

/** The environment list sets `key`. */
export function hasEnv(env: readonly string[], key: string): boolean {
  return env.some((e) => e.startsWith(key + '='));
}

export function planProcess(p: Process, what = 'process'): ProcessPlan {
  const rlimits: PlannedRlimit[] = (p.rlimits ?? []).map((r) => {
    const resource = RLIMITS[r.type];
    if (resource === undefined) throw new BerthError('InvalidArgument', `${what}: unknown resource limit ${r.type}`);
    return { type: r.type, resource, soft: r.soft, hard: r.hard };
  });
  let caps: CapabilityMasks | undefined;
  if (p.capabilities) {
    const c = p.capabilities;
    caps = {
      effective: capMask(c.effective).mask,
      permitted: capMask(c.permitted).mask,
      inheritable: capMask(c.inheritable).mask,
      ...(c.bounding ? { bounding: capMask(c.bounding).mask } : {}),
      ...(c.ambient ? { ambient: capMask(c.ambient).mask } : {}),
    };
  }
  return {
    args: [...(p.args ?? [])],
    env: [...(p.env ?? [])],
    cwd: p.cwd,
    uid: p.user.uid,
    gid: p.user.gid,
    additionalGids: [...(p.user.additionalGids ?? [])],
    umask: p.user.umask ?? 0o022,
    ...(caps ? { caps } : {}),
    noNewPrivileges: p.noNewPrivileges === true,
    rlimits,
    terminal: p.terminal === true,
    ...(p.consoleSize ? { consoleSize: { ...p.consoleSize } } : {}),
    ...(p.oomScoreAdj !== undefined && p.oomScoreAdj !== null ? { oomScoreAdj: p.oomScoreAdj } : {}),
  };
}

function planDevice(d: LinuxDevice): PlannedDevice {
  return {
    path: cleanPath(d.path),
    kind: d.type === 'p' ? 'p' : d.type === 'b' ? 'b' : 'c',
    major: d.major ?? 0,
    minor: d.minor ?? 0,
    mode: d.fileMode ?? 0o666,
    uid: d.uid ?? 0,
    gid: d.gid ?? 0,
  };
}

export interface PlanOptions {
  id: string;
  bundle: string;
  rootfs: string;
  /** for a `cgroup` mount: the layout and the container's cgroup path */
  cgroupMount?: Omit<CgroupMountInfo, 'viaNamespace'>;
}

/** The init plan for a validated spec. Throws InvalidArgument for what validation cannot see. */
export function planInit(spec: RunnableSpec, opts: PlanOptions): InitPlan {
  const linux = spec.linux ?? {};
  const joins: InitPlan['joins'] = [];
  let unshareFlags = 0;
  let pidNamespace = false;
  let newMountNamespace = false;
  let newCgroupNamespace = false;
  let mountJoin: { type: NamespaceType; path: string } | undefined;
  for (const ns of linux.namespaces ?? []) {
    if (ns.type === 'pid') pidNamespace = true;
    if (ns.path) {
      if (ns.type === 'mount') mountJoin = { type: ns.type, path: ns.path };
      else joins.push({ type: ns.type, path: ns.path });
      continue;
    }
    const flag = NEW_FLAGS[ns.type];
    if (flag === undefined) throw new BerthError('InvalidArgument', `namespace type ${ns.type} is not supported`);
    unshareFlags |= flag;
    if (ns.type === 'mount') newMountNamespace = true;
    if (ns.type === 'cgroup') newCgroupNamespace = true;
  }
  if (mountJoin) joins.push(mountJoin);
  if (mountJoin && (spec.mounts?.length || linux.maskedPaths?.length || linux.readonlyPaths?.length || spec.root?.readonly)) {
    throw new BerthError('InvalidArgument', 'a container that joins an existing mount namespace cannot have mounts, masked or read-only paths, or a read-only root');
  }

  const mounts: PlannedMount[] = [];
  const helperDirs: string[] = [];
  for (const m of spec.mounts ?? []) {
    const destination = cleanPath(m.destination);
    const o = parseMountOptions(m.options);
    const bind = m.type === 'bind' || (o.flags & MS_BIND) !== 0;
    let source = m.source ?? '';
    if (bind) {
      source = path.isAbsolute(source) ? path.normalize(source) : path.join(opts.bundle, source);
    }
    const type = bind ? 'bind' : (m.type as string);
    let phase: Phase = 'worker';
    if (helperDirs.some((d) => isWithin(destination, d))) phase = 'helper';
    if (type === 'proc' && pidNamespace) phase = 'helper';
    if (phase === 'helper') helperDirs.push(destination);
    mounts.push({
      destination,
      type,
      source: bind ? source : m.source || type,
      bind,
      recursive: bind && (o.flags & MS_REC) !== 0,
      flags: o.flags,
      data: o.data,
      propagation: o.propagation,
      recAttrSet: o.recAttrSet,
      recAttrClr: o.recAttrClr,
      phase,
    });
  }

  const setupDev = newMountNamespace && !mounts.some((m) => m.destination === '/dev' && m.bind);
  const devices = new Map<string, PlannedDevice>();
  if (setupDev) {
    for (const d of DEFAULT_DEVICES) devices.set(d.path, { ...d });
    for (const d of linux.devices ?? []) devices.set(cleanPath(d.path), planDevice(d));
  }
  const phaseOf = (p: string): PlannedPath => {
    const clean = cleanPath(p);
    return { path: clean, phase: helperDirs.some((d) => isWithin(clean, d)) ? 'helper' : 'worker' };
  };

  const needsCgroupInfo = mounts.some((m) => m.type === 'cgroup' || m.type === 'cgroup2');
  return {
    id: opts.id,
    rootfs: opts.rootfs,
    joins,
    unshareFlags,
    pidNamespace,
    newMountNamespace,
    newCgroupNamespace,
    rootPropagation: linux.rootfsPropagation ? PROPAGATION[linux.rootfsPropagation] : MS_SLAVE | MS_REC,
    readonlyRoot: spec.root?.readonly === true,
    mounts,
    setupDev,
    devices: [...devices.values()],
    masked: (linux.maskedPaths ?? []).map(phaseOf),
    readonlyPaths: (linux.readonlyPaths ?? []).map(phaseOf),
    ...(spec.hostname ? { hostname: spec.hostname } : {}),
    ...(spec.domainname ? { domainname: spec.domainname } : {}),
    sysctl: Object.entries(linux.sysctl ?? {}),
    ...(needsCgroupInfo && opts.cgroupMount
      ? { cgroupMount: { ...opts.cgroupMount, viaNamespace: (linux.namespaces ?? []).some((n) => n.type === 'cgroup') } }
      : {}),
    process: planProcess(spec.process),
  };
}
