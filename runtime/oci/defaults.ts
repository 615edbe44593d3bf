// Spec generation for `berth run` and friends: containerd 1.6's oci.GenerateSpec for Linux
// (populateDefaultUnixSpec) and a handful of its SpecOpts, as functions that edit a spec in place.
//
//   const spec = generateSpec('default', 'web',
//     withProcessArgs('sh', '-c', 'echo hi'), withHostname('web'), withDefaultUnixDevices);
//
// The default is what ctr sends in Containers.Create (see the wire traces, section 6a): 7 mounts
// (/proc, /dev, /dev/pts, /dev/shm, /dev/mqueue, /sys ro, /run), 14 capabilities in bounding/
// permitted/effective, no_new_privileges, RLIMIT_NOFILE 1024, masked and read-only /proc paths,
// a deny-all device cgroup rule, cgroupsPath /<namespace>/<id>, and the pid/ipc/uts/mount/network
// namespaces. containerd 1.6 no longer adds a /sys/fs/cgroup mount by default (Docker does);
// withCgroupMount() adds Docker's read-only one.
import * as path from 'path';
import type { LinuxDeviceCgroup, LinuxResources } from '../cgroups/types';
import { LinuxCapabilities, Mount, NamespaceType, OCI_VERSION, POSIXRlimit, RunnableSpec, Spec } from './types';

export type SpecOpt = (spec: RunnableSpec) => void;

export const DEFAULT_PATH_ENV = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** containerd's defaultUnixCaps(), in its order. */
export const DEFAULT_CAPABILITIES: readonly string[] = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FSETID',
  'CAP_FOWNER',
  'CAP_MKNOD',
  'CAP_NET_RAW',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETFCAP',
  'CAP_SETPCAP',
  'CAP_NET_BIND_SERVICE',
  'CAP_SYS_CHROOT',
  'CAP_KILL',
  'CAP_AUDIT_WRITE',
];

export const DEFAULT_NAMESPACES: readonly NamespaceType[] = ['pid', 'ipc', 'uts', 'mount', 'network'];

export const DEFAULT_MASKED_PATHS: readonly string[] = [
  '/proc/acpi',
  '/proc/asound',
  '/proc/kcore',
  '/proc/keys',
  '/proc/latency_stats',
  '/proc/timer_list',
  '/proc/timer_stats',
  '/proc/sched_debug',
  '/sys/firmware',
  '/proc/scsi',
];

export const DEFAULT_READONLY_PATHS: readonly string[] = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

/** containerd's defaultMounts() (oci/mounts.go), 1.6. */
export function defaultMounts(): Mount[] {
  return [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
    {
      destination: '/dev/pts',
      type: 'devpts',
      source: 'devpts',
      options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'],
    },
    { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
    { destination: '/run', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
  ];
}

/** containerd's populateDefaultUnixSpec: the spec every Linux container starts from. */
export function defaultSpec(namespace: string, id: string): RunnableSpec {
  return {
    ociVersion: OCI_VERSION,
    root: { path: 'rootfs' },
    process: {
      user: { uid: 0, gid: 0 },
      cwd: '/',
      noNewPrivileges: true,
      capabilities: {
        bounding: [...DEFAULT_CAPABILITIES],
        permitted: [...DEFAULT_CAPABILITIES],
        effective: [...DEFAULT_CAPABILITIES],
      },
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: 1024, soft: 1024 }],
    },
    mounts: defaultMounts(),
    linux: {
      maskedPaths: [...DEFAULT_MASKED_PATHS],
      readonlyPaths: [...DEFAULT_READONLY_PATHS],
      cgroupsPath: path.posix.join('/', namespace, id),
      resources: { devices: [{ allow: false, access: 'rwm' }] },
      namespaces: DEFAULT_NAMESPACES.map((type) => ({ type })),
    },
  };
}

/** The default spec with `opts` applied in order (containerd's oci.GenerateSpec). */
export function generateSpec(namespace: string, id: string, ...opts: SpecOpt[]): RunnableSpec {
  const spec = defaultSpec(namespace, id);
  for (const opt of opts) opt(spec);
  return spec;
}

/** Applies options to an existing spec (a copy is not made). */
export function applyOpts<S extends Spec>(spec: S, ...opts: SpecOpt[]): S {
  for (const opt of opts) opt(spec as unknown as RunnableSpec);
  return spec;
}

const linux = (s: RunnableSpec) => (s.linux ??= {});
const resources = (s: RunnableSpec): LinuxResources => (linux(s).resources ??= {});

// ---- process ------------------------------------------------------------------------------------

export const withProcessArgs = (...args: string[]): SpecOpt => (s) => {
  s.process.args = args;
};

/** Sets the environment, keeping a default PATH when the list has none (as ctr does). */
export const withEnv = (env: readonly string[]): SpecOpt => (s) => {
  const merged = new Map<string, string>();
  for (const e of [DEFAULT_PATH_ENV, ...(s.process.env ?? []), ...env]) {
    const eq = e.indexOf('=');
    merged.set(eq < 0 ? e : e.slice(0, eq), e);
  }
  s.process.env = [...merged.values()];
};

export const withProcessCwd = (cwd: string): SpecOpt => (s) => {
  s.process.cwd = cwd;
};

export const withUser = (uid: number, gid: number, additionalGids?: number[]): SpecOpt => (s) => {
  s.process.user = { ...s.process.user, uid, gid, ...(additionalGids ? { additionalGids } : {}) };
};

export const withTTY: SpecOpt = (s) => {
  s.process.terminal = true;
};

export const withConsoleSize = (width: number, height: number): SpecOpt => (s) => {
  s.process.consoleSize = { width, height };
};

export const withNoNewPrivileges = (on = true): SpecOpt => (s) => {
  s.process.noNewPrivileges = on;
};

export const withCapabilities = (caps: readonly string[]): SpecOpt => (s) => {
  const list = [...caps];
  s.process.capabilities = { bounding: [...list], effective: [...list], permitted: [...list] };
};

export const withAddedCapabilities = (caps: readonly string[]): SpecOpt => (s) => {
  const c: LinuxCapabilities = (s.process.capabilities ??= {});
  for (const set of ['bounding', 'effective', 'permitted'] as const) {
    const cur = (c[set] ??= []);
    for (const cap of caps) if (!cur.includes(cap)) cur.push(cap);
  }
};

export const withDroppedCapabilities = (caps: readonly string[]): SpecOpt => (s) => {
  const c = s.process.capabilities;
  if (!c) return;
  for (const set of ['bounding', 'effective', 'permitted', 'inheritable', 'ambient'] as const) {
    if (c[set]) c[set] = c[set]!.filter((cap) => !caps.includes(cap));
  }
};

/** Replaces (or adds) one resource limit. */
export const withRlimit = (type: string, soft: number, hard: number): SpecOpt => (s) => {
  const list: POSIXRlimit[] = (s.process.rlimits ?? []).filter((r) => r.type !== type);
  list.push({ type, soft, hard });
  s.process.rlimits = list;
};

export const withOOMScoreAdj = (score: number): SpecOpt => (s) => {
  s.process.oomScoreAdj = score;
};

// ---- root, hostname, mounts ----------------------------------------------------------------------

export const withRootfs = (rootfs: string): SpecOpt => (s) => {
  s.root = { ...(s.root ?? {}), path: rootfs };
};

export const withReadonlyRootfs: SpecOpt = (s) => {
  s.root = { path: s.root?.path ?? 'rootfs', readonly: true };
};

export const withHostname = (name: string): SpecOpt => (s) => {
  s.hostname = name;
};

/** Adds mounts, replacing any existing mount at the same destination (containerd's WithMounts). */
export const withMounts = (mounts: readonly Mount[]): SpecOpt => (s) => {
  const dests = new Set(mounts.map((m) => path.posix.normalize(m.destination)));
  s.mounts = [...(s.mounts ?? []).filter((m) => !dests.has(path.posix.normalize(m.destination))), ...mounts];
};

/** Docker's read-only /sys/fs/cgroup mount (containerd 1.6 no longer adds one by default). */
export const withCgroupMount: SpecOpt = (s) => {
  withMounts([{ destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['ro', 'nosuid', 'noexec', 'nodev'] }])(s);
};

// ---- linux ------------------------------------------------------------------------------------------

/** Creates (no path) or joins (path) a namespace of `type`. */
export const withNamespace = (type: NamespaceType, nsPath?: string): SpecOpt => (s) => {
  const l = linux(s);
  l.namespaces = [...(l.namespaces ?? []).filter((n) => n.type !== type), nsPath ? { type, path: nsPath } : { type }];
};

/** Shares the host's namespace of `type` (containerd's WithHostNamespace). */
export const withHostNamespace = (type: NamespaceType): SpecOpt => (s) => {
  const l = linux(s);
  l.namespaces = (l.namespaces ?? []).filter((n) => n.type !== type);
};

export const withCgroupsPath = (cgroupsPath: string): SpecOpt => (s) => {
  linux(s).cgroupsPath = cgroupsPath;
};

export const withMemoryLimit = (bytes: number): SpecOpt => (s) => {
  const r = resources(s);
  r.memory = { ...(r.memory ?? {}), limit: bytes };
};

export const withCPUShares = (shares: number): SpecOpt => (s) => {
  const r = resources(s);
  r.cpu = { ...(r.cpu ?? {}), shares };
};

export const withPidsLimit = (limit: number): SpecOpt => (s) => {
  resources(s).pids = { limit };
};

export const withAnnotations = (annotations: Record<string, string>): SpecOpt => (s) => {
  s.annotations = { ...(s.annotations ?? {}), ...annotations };
};

export const withMaskedPaths = (paths: readonly string[]): SpecOpt => (s) => {
  linux(s).maskedPaths = [...paths];
};

export const withReadonlyPaths = (paths: readonly string[]): SpecOpt => (s) => {
  linux(s).readonlyPaths = [...paths];
};

/** The device-cgroup rules ctr adds with `oci.WithDefaultUnixDevices` (null, random, full, tty, zero, urandom, console, pts, ptmx). */
export const DEFAULT_UNIX_DEVICE_RULES: readonly LinuxDeviceCgroup[] = [
  { allow: true, type: 'c', major: 1, minor: 3, access: 'rwm' },
  { allow: true, type: 'c', major: 1, minor: 8, access: 'rwm' },
  { allow: true, type: 'c', major: 1, minor: 7, access: 'rwm' },
  { allow: true, type: 'c', major: 5, minor: 0, access: 'rwm' },
  { allow: true, type: 'c', major: 1, minor: 5, access: 'rwm' },
  { allow: true, type: 'c', major: 1, minor: 9, access: 'rwm' },
  { allow: true, type: 'c', major: 5, minor: 1, access: 'rwm' },
  { allow: true, type: 'c', major: 136, access: 'rwm' },
  { allow: true, type: 'c', major: 5, minor: 2, access: 'rwm' },
];

export const withDefaultUnixDevices: SpecOpt = (s) => {
  const r = resources(s);
  r.devices = [...(r.devices ?? []), ...DEFAULT_UNIX_DEVICE_RULES.map((d) => ({ ...d }))];
};
