// The OCI runtime spec (config.json) as Berth reads it: the subset of
// https://github.com/opencontainers/runtime-spec config.md / config-linux.md that Berth honours,
// typed, plus the fields it recognises only to refuse them (see validate.ts).
//
// Field names are those of config.json, so a parsed file is used as is. `linux.resources` is
// the cgroup module's LinuxResources (the same OCI shape).
import type { LinuxResources } from '../cgroups/types';

export type { LinuxResources } from '../cgroups/types';

/** The spec version Berth writes in specs it generates (what containerd 1.6 writes). */
export const OCI_VERSION = '1.0.2-dev';

export interface Spec {
  ociVersion: string;
  process?: Process;
  root?: Root;
  hostname?: string;
  domainname?: string;
  mounts?: Mount[];
  hooks?: Hooks;
  annotations?: Record<string, string>;
  linux?: Linux;
}

export interface Root {
  /** the rootfs, absolute or relative to the bundle */
  path: string;
  readonly?: boolean;
}

export interface User {
  uid: number;
  gid: number;
  umask?: number;
  additionalGids?: number[];
  /** Windows only; ignored */
  username?: string;
}

export interface Box {
  height: number;
  width: number;
}

/** OCI `process.capabilities`: capability names ("CAP_CHOWN") per set. */
export interface LinuxCapabilities {
  bounding?: string[];
  effective?: string[];
  permitted?: string[];
  inheritable?: string[];
  ambient?: string[];
}

export interface POSIXRlimit {
  /** "RLIMIT_NOFILE" */
  type: string;
  hard: number;
  soft: number;
}

export interface Process {
  terminal?: boolean;
  consoleSize?: Box;
  user: User;
  args?: string[];
  env?: string[];
  cwd: string;
  capabilities?: LinuxCapabilities;
  rlimits?: POSIXRlimit[];
  noNewPrivileges?: boolean;
  oomScoreAdj?: number;
  // recognised, not supported (validate.ts refuses non-empty values)
  apparmorProfile?: string;
  selinuxLabel?: string;
  commandLine?: string;
  ioPriority?: unknown;
  scheduler?: unknown;
  execCPUAffinity?: unknown;
}

export interface Mount {
  destination: string;
  type?: string;
  source?: string;
  options?: string[];
  // recognised, not supported (id-mapped mounts)
  uidMappings?: unknown[];
  gidMappings?: unknown[];
}

export interface Hook {
  path: string;
  args?: string[];
  env?: string[];
  timeout?: number;
}

export interface Hooks {
  prestart?: Hook[];
  createRuntime?: Hook[];
  createContainer?: Hook[];
  startContainer?: Hook[];
  poststart?: Hook[];
  poststop?: Hook[];
}

export type NamespaceType = 'pid' | 'network' | 'mount' | 'ipc' | 'uts' | 'user' | 'cgroup' | 'time';

export const NAMESPACE_TYPES: readonly NamespaceType[] = ['pid', 'network', 'mount', 'ipc', 'uts', 'user', 'cgroup', 'time'];

export interface LinuxNamespace {
  type: NamespaceType;
  /** join this namespace (a file such as /proc/<pid>/ns/net) instead of creating one */
  path?: string;
}

export interface LinuxDevice {
  path: string;
  /** c, b, u (unbuffered char) or p (FIFO) */
  type: 'c' | 'b' | 'u' | 'p';
  major?: number;
  minor?: number;
  fileMode?: number;
  uid?: number;
  gid?: number;
}

export type RootfsPropagation = 'private' | 'rprivate' | 'slave' | 'rslave' | 'shared' | 'rshared' | 'unbindable' | 'runbindable';

export interface Linux {
  namespaces?: LinuxNamespace[];
  devices?: LinuxDevice[];
  cgroupsPath?: string;
  resources?: LinuxResources;
  rootfsPropagation?: RootfsPropagation;
  sysctl?: Record<string, string>;
  maskedPaths?: string[];
  readonlyPaths?: string[];
  // recognised, not supported (validate.ts refuses non-empty values)
  uidMappings?: unknown[];
  gidMappings?: unknown[];
  timeOffsets?: unknown;
  seccomp?: unknown;
  mountLabel?: string;
  intelRdt?: unknown;
  personality?: unknown;
}

/** A spec whose `process` is present (what creating a container needs). */
export type RunnableSpec = Spec & { process: Process };
