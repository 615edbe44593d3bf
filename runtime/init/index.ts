// The container's first stage, without a process per container: an init worker thread of the
// (long-lived) caller builds the namespaces, rootfs and credentials around itself and clones the
// workload, which waits before execve until start(). See container.ts for the sequence,
// setup.ts for what the thread does, helper-worker.ts for what must wait until the process exists.
//
//   const c = await createContainer({ id: 'web', bundle, stdio: { stdout: fd } });  // created: c.pid parked
//   await c.start();                                                                  // runs the program
//   const { exitStatus } = await c.wait();
//   await c.delete();
export {
  createContainer,
  execProcess,
  Container,
  ExecProcess,
  sharedRuntime,
  RUNC_ALLOWED_DEVICES,
} from './container';
export type { CreateContainerOptions, ExecOptions, InitRuntime, ProcessStatus, Pty, ExitStatus } from './container';
export { InitWorkerPool } from './pool';
export type { PoolOptions } from './pool';
export { NamespaceHelper, sharedNamespaceHelper } from './helper';
export { Reaper } from './reaper';
export type { StdioOptions, StdioFds, StdioSource } from './stdio';
export { planInit, planProcess, DEFAULT_DEVICES } from './plan';
export type { InitPlan, ProcessPlan, PlannedMount } from './plan';
