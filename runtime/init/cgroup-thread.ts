// Moving one thread between v1 cgroups. An init worker thread joins the container's cgroup so that
// the workload it clones starts there (and its cgroup namespace is rooted there); once the workload
// exists the thread goes back where it was, so that it counts against none of the container's
// limits while it waits for start.
import { promises as fsp } from 'fs';
import * as path from 'path';
import { v1Hierarchies } from '../cgroups/mode';

/** The `tasks` file of each v1 hierarchy's cgroup thread `tid` is in now. */
export async function threadCgroupTasks(tid: number): Promise<string[]> {
  const text = await fsp.readFile(`/proc/self/task/${tid}/cgroup`, 'utf8');
  const hierarchies = v1Hierarchies();
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^\d+:([^:]+):(.*)$/.exec(line);
    if (!m) continue;
    const controllers = m[1].split(',').sort().join(',');
    const h = hierarchies.find((x) => x.controllers.slice().sort().join(',') === controllers);
    if (h) out.push(path.join(h.mountpoint, m[2], 'tasks'));
  }
  return out;
}

/** Writes `tid` into each of `tasksFiles` (errors are collected; the first is thrown at the end). */
export async function moveThread(tid: number, tasksFiles: readonly string[]): Promise<void> {
  const results = await Promise.allSettled(tasksFiles.map((f) => fsp.writeFile(f, String(tid), { flag: 'w' })));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}
