// What the caller's thread, the init worker threads and the namespace helper thread say to each
// other (structured-clone data; fds are plain numbers, valid in every thread of the process).
import type { InitPlan, PlannedMount, PlannedRlimit, ProcessPlan } from './plan';
import type { NamespaceType } from '../oci/types';

/** The workload's fds 0–2 (already fit to inherit), or a pty created in the container. */
export type StdioPlan = { kind: 'fds'; fds: [number, number, number] } | { kind: 'terminal' };

/** Create a container: namespaces, rootfs, credentials, then the parked workload process. */
export interface InitJob {
  kind: 'init';
  plan: InitPlan;
  /** the directory holding exec.fifo (the workload blocks opening it until start) */
  fifoDir: string;
  stdio: StdioPlan;
}

/** Start another process in a running container's namespaces. */
export interface ExecJob {
  kind: 'exec';
  id: string;
  /** /proc/<init pid>/ns/<x> files to join, the mount namespace last */
  namespaces: Array<{ type: NamespaceType; path: string }>;
  process: ProcessPlan;
  fifoDir: string;
  stdio: StdioPlan;
}

export type WorkerJob = InitJob | ExecJob;

export interface SerializedError {
  message: string;
  /** BerthError kind when the worker classified the failure */
  kind?: string;
  /** errno name ("ENOENT") */
  code?: string;
}

/** A helper-phase mount prepared by the worker: a detached bind (open_tree fd), or made by the helper. */
export interface DeferredMount {
  mount: PlannedMount;
  /** detached bind mount made in the worker before pivot_root; the helper closes it */
  treeFd?: number;
  isDir: boolean;
}

export type WorkerMessage =
  | { type: 'ready'; tid: number }
  /** set-up done; the thread is about to clone the workload, which then blocks on the exec FIFO */
  | { type: 'parking'; master?: number; peer?: number; deferred: DeferredMount[] }
  /** posix_spawn returned: the workload has executed its program (or died before) */
  | { type: 'spawned'; pid: number }
  | { type: 'failed'; error: SerializedError; phase: string };

/** Work for the namespace helper once the workload process exists (and is parked). */
export interface FinishJob {
  seq: number;
  pid: number;
  uid: number;
  gid: number;
  rlimits: PlannedRlimit[];
  mounts: DeferredMount[];
  masked: string[];
  readonlyPaths: string[];
}

export type HelperMessage = { type: 'ready' } | { type: 'done'; seq: number } | { type: 'failed'; seq: number; error: SerializedError };

export function serializeError(err: unknown, kind?: string): SerializedError {
  const e = err as { message?: unknown; code?: unknown; kind?: unknown };
  const out: SerializedError = { message: typeof e?.message === 'string' ? e.message : String(err) };
  const k = kind ?? (typeof e?.kind === 'string' ? e.kind : undefined);
  if (k) out.kind = k;
  if (typeof e?.code === 'string') out.code = e.code;
  return out;
}
