// Cgroups for the runtime: v1 (hybrid and legacy machines) and v2 (unified) behind the one
// Cgroup interface. loadCgroup() picks the implementation from the machine's layout.
//
//   const cg = await createCgroup('/berth/default/web', spec.linux.resources);
//   await cg.add(pid);
//   const metrics = await cg.stats();          // io.containerd.cgroups.v1/v2.Metrics shape
//   for await (const oom of cg.watchOom()) …   // or .on('oom', …)
//   await cg.delete();
import { cgroupMode } from './mode';
import type { Cgroup, LinuxResources } from './types';
import { CgroupV1, CgroupV1Options } from './v1';
import { CgroupV2, CgroupV2Options } from './v2';

export * from './types';
export { CgroupV1 } from './v1';
export type { CgroupV1Options } from './v1';
export { CgroupV2, sharesToWeight, blkioWeightToIoWeight, swapToV2, parseIoStat } from './v2';
export type { CgroupV2Options } from './v2';
export { cgroupMode, v1Hierarchies, parseV1Hierarchies, processCgroups } from './mode';
export type { CgroupModeInfo, V1Hierarchy } from './mode';
export { normalizeCgroupPath } from './files';

export type LoadOptions = CgroupV1Options & CgroupV2Options;

/** The cgroup at `path` on this machine (nothing is read or created yet). */
export function loadCgroup(path: string, opts: LoadOptions = {}): Cgroup {
  return cgroupMode().mode === 'unified' ? new CgroupV2(path, opts) : new CgroupV1(path, opts);
}

/** Creates the cgroup at `path` and applies `resources`; removes what it made if that fails. */
export async function createCgroup(path: string, resources?: LinuxResources, opts: LoadOptions = {}): Promise<Cgroup> {
  const cg = loadCgroup(path, opts);
  await cg.create(resources);
  return cg;
}
