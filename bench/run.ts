// Benchmark: running containers with the real `ctr`, containerd 1.6 (a peer started for the run)
// against berthd, side by side in the same run, from the same image pulled into both.
//
//   npm run build && node dist/bench/run.js [--runs 20] [--concurrent 20] [--concurrent-runs N] [--quick] [--json FILE]
//
// The image: busybox-static, one layer (test/helpers/images.ts buildImage()), pushed with skopeo
// to a local docker-registry (plain HTTP) and pulled into each daemon with
// `ctr images pull --plain-http`. Three combinations:
//   containerd + runc     containerd, runtime io.containerd.runc.v2 (containerd-shim-runc-v2)
//   berthd + runc         berthd, the same containerd-shim-runc-v2
//   berthd + berth-shim   berthd, runtime io.containerd.berth.v1 (node dist/runtime/shim/main.js)
// Each daemon has its own namespace (unique per run of the benchmark) and each combination its own
// container-ID prefix, so nothing is shared in runc's state directory or in cgroup paths.
//
// Measured (the order of the three rotates between runs, reversed every other run):
//   1. `ctr run --rm <ref> <id> /bin/busybox true`: wall time, N runs.
//   2. --concurrent (20) concurrent `ctr run -d <ref> <id> /bin/busybox sleep 1000`: wall time until
//      all have returned; then memory per running container = (sum of the PSS of the shim processes
//      of the namespace, from /proc/<pid>/smaps_rollup, + the daemon's VmRSS growth over the starts)
//      / the number of containers; and the same with the shims' VmRSS (shared pages counted in each).
//      Then `tasks kill -s SIGKILL`, `tasks rm`, `containers rm` of all ten, and a check that no
//      task, container or shim is left. Fewer rounds than N (--concurrent-runs, default ceil(N/7)).
//   3. `ctr tasks exec --exec-id e<i> <id> /bin/busybox true` into one running container: N runs.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { startDaemon, cleanup, sleep, waitFor, type TestDaemon } from '../test/helpers/daemon';
import { startRegistry, type TestRegistry } from '../test/helpers/registry';
import { buildImage, skopeoCopy } from '../test/helpers/images';
import { ctr, startContainerd, unmountUnder, type PeerContainerd } from '../test/helpers/containerd';
import { metric, median, timed, reportPeers, standalone, stopPeers, type BenchOptions, type BenchResult, type Metric, type Peers } from './common';

export const RUNC = 'io.containerd.runc.v2';
export const BERTH_SHIM = 'io.containerd.berth.v1';

export type ComboName = 'containerd-runc' | 'berthd-runc' | 'berthd-berth';

export interface Combo {
  name: ComboName;
  label: string;
  address: string;
  namespace: string;
  runtime: string;
  prefix: string;
  /** the daemon's pid (for VmRSS) */
  daemonPid: number;
  /** container IDs created and not yet known to be removed */
  live: Set<string>;
}

interface Stats {
  median: number;
  min: number;
  max: number;
  samples: number[];
}

const stats = (xs: number[]): Stats => ({ median: median(xs), min: Math.min(...xs), max: Math.max(...xs), samples: xs });
const ratios = (xs: number[], cs: number[]): Stats => stats(xs.map((x, i) => x / cs[i]!));

/** VmRSS of a process, in bytes. */
function vmRSS(pid: number): number {
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) * 1024;
}

/** Pss of a process from smaps_rollup, in bytes (0 if it is gone). */
export function pss(pid: number): number {
  try {
    const m = /^Pss:\s+(\d+)\s+kB/m.exec(fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/**
 * Shim processes of a namespace: cmdline contains containerd-shim-runc-v2, runtime/shim/main.js or
 * containerd-shim-berth-v1 (the berth shim sets its process title to that), and `-namespace <ns>`.
 */
export function shimPids(namespace: string): number[] {
  const out: number[] = [];
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    let cmd: string;
    try {
      cmd = fs.readFileSync(`/proc/${e}/cmdline`, 'utf8').replace(/\0/g, ' ');
    } catch {
      continue;
    }
    if (!/containerd-shim-runc-v2|runtime\/shim\/main\.js|containerd-shim-berth-v1/.test(cmd)) continue;
    if (!new RegExp(`-namespace ${namespace.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}( |$)`).test(cmd)) continue;
    out.push(Number(e));
  }
  return out;
}

export const c = (combo: Combo, args: string[], timeoutMs = 60_000) => ctr(combo.address, args, { namespace: combo.namespace, timeoutMs });

export async function tasksLs(combo: Combo): Promise<Map<string, string>> {
  const out = (await c(combo, ['tasks', 'ls'])).stdout;
  return new Map(
    out
      .split('\n')
      .slice(1)
      .filter((l) => l.trim())
      .map((l) => l.trim().split(/\s+/))
      .map(([id, , status]) => [id!, status!]),
  );
}

/** kill -s SIGKILL, wait for STOPPED, tasks rm, containers rm, for each of `ids`. */
export async function removeContainers(combo: Combo, ids: string[]): Promise<void> {
  await Promise.all(ids.map((id) => c(combo, ['tasks', 'kill', '-s', 'SIGKILL', id]).catch(() => undefined)));
  await waitFor(
    `${combo.name}: tasks to stop`,
    async () => {
      const t = await tasksLs(combo);
      return ids.every((id) => !t.has(id) || t.get(id) === 'STOPPED') ? true : undefined;
    },
    20_000,
  );
  await Promise.all(
    ids.map(async (id) => {
      const t = await tasksLs(combo);
      if (t.has(id)) await c(combo, ['tasks', 'rm', id]);
      await c(combo, ['containers', 'rm', id]);
      combo.live.delete(id);
    }),
  );
}

/** Nothing left in the combination's namespace: no task, no container, no shim. */
export async function verifyEmpty(combo: Combo): Promise<void> {
  const tasks = await tasksLs(combo);
  if (tasks.size) throw new Error(`${combo.name}: tasks left: ${[...tasks.keys()].join(' ')}`);
  const containers = (await c(combo, ['containers', 'ls', '-q'])).stdout.split('\n').filter((l) => l.trim());
  if (containers.length) throw new Error(`${combo.name}: containers left: ${containers.join(' ')}`);
  await waitFor(`${combo.name}: shims to exit`, () => (shimPids(combo.namespace).length === 0 ? true : undefined), 10_000);
}

/** Best-effort removal of everything the benchmark created in a combination (for `finally`). */
export async function forceClean(combo: Combo): Promise<void> {
  for (const id of combo.live) {
    await c(combo, ['tasks', 'kill', '-a', '-s', 'SIGKILL', id], 10_000).catch(() => undefined);
  }
  if (combo.live.size) await sleep(200);
  for (const id of combo.live) {
    await c(combo, ['tasks', 'rm', '-f', id], 10_000).catch(() => undefined);
    await c(combo, ['containers', 'rm', id], 10_000).catch(() => undefined);
  }
  combo.live.clear();
}

async function runRm(combo: Combo, ref: string, id: string): Promise<number> {
  combo.live.add(id);
  const t = await timed(() => c(combo, ['run', '--rm', '--runtime', combo.runtime, ref, id, '/bin/busybox', 'true']));
  combo.live.delete(id);
  return t;
}

interface MemoryRound {
  wallSeconds: number;
  shimPssBytes: number;
  /** sum of the shims' VmRSS (shared pages counted in every process) */
  shimRssBytes: number;
  shims: number;
  daemonRssGrowthBytes: number;
  perContainerBytes: number;
}

async function concurrentRound(combo: Combo, ref: string, tag: string, concurrent: number): Promise<MemoryRound> {
  if (shimPids(combo.namespace).length) throw new Error(`${combo.name}: shims running before the concurrent round`);
  const ids = Array.from({ length: concurrent }, (_, i) => `${combo.prefix}-b${i}-${tag}`);
  const rssBefore = vmRSS(combo.daemonPid);
  for (const id of ids) combo.live.add(id);
  const wallSeconds = await timed(() =>
    Promise.all(ids.map((id) => c(combo, ['run', '-d', '--runtime', combo.runtime, ref, id, '/bin/busybox', 'sleep', '1000']))),
  );
  await sleep(300); // let the shims settle (the berth shim's start process exits after handing over)
  const t = await tasksLs(combo);
  const notRunning = ids.filter((id) => t.get(id) !== 'RUNNING');
  if (notRunning.length) throw new Error(`${combo.name}: not running after run -d: ${notRunning.join(' ')}`);
  const rssAfter = vmRSS(combo.daemonPid);
  const pids = shimPids(combo.namespace);
  const shimPssBytes = pids.reduce((a, p) => a + pss(p), 0);
  const shimRssBytes = pids.reduce((a, p) => {
    try {
      return a + vmRSS(p);
    } catch {
      return a; // gone
    }
  }, 0);
  const daemonRssGrowthBytes = rssAfter - rssBefore;
  await removeContainers(combo, ids);
  await verifyEmpty(combo);
  return { wallSeconds, shimPssBytes, shimRssBytes, shims: pids.length, daemonRssGrowthBytes, perContainerBytes: (shimPssBytes + daemonRssGrowthBytes) / concurrent };
}

export function rotate<T>(xs: T[], i: number): T[] {
  const order = [...xs.slice(i % xs.length), ...xs.slice(0, i % xs.length)];
  if (i % 2 === 1) order.reverse();
  return order;
}

/** Kills the shims of `namespaces` still running (by pid), removes runc's state and cgroup parents of them. */
export function cleanupNamespaces(namespaces: string[]): void {
  for (const ns of namespaces) {
    for (const pid of shimPids(ns)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  }
}

/** runc's per-namespace state directories and the empty cgroup parents runc leaves (cgroupsPath /<namespace>/<id>). */
export function removeRuncLeftovers(namespaces: string[]): void {
  const cgroupParents = fs.existsSync('/sys/fs/cgroup') ? fs.readdirSync('/sys/fs/cgroup').map((h) => path.join('/sys/fs/cgroup', h)) : [];
  for (const ns of namespaces) {
    for (const root of ['/run/containerd/runc', '/run/runc', '/sys/fs/cgroup', ...cgroupParents]) {
      try {
        fs.rmdirSync(path.join(root, ns));
      } catch {
        // absent or not empty
      }
    }
  }
}


/**
 * A local registry holding the busybox bench image, a containerd peer and a berthd, started side
 * by side; all three, or an error with none of them left running.
 */
export async function startPeersWithImage(): Promise<Required<Peers> & { ref: string }> {
  const [rs, cs, bs] = await Promise.allSettled([startRegistry(), startContainerd(), startDaemon()]);
  const peers: Peers = {
    ...(rs.status === 'fulfilled' ? { registry: rs.value } : {}),
    ...(cs.status === 'fulfilled' ? { containerd: cs.value } : {}),
    ...(bs.status === 'fulfilled' ? { berthd: bs.value } : {}),
  };
  try {
    for (const s of [rs, cs, bs]) if (s.status === 'rejected') throw s.reason;
    const { registry, containerd, berthd } = peers as Required<Peers>;
    const image = await buildImage({ tag: 'bench' });
    const ref = `${registry.host}/bench/busybox:bench`;
    try {
      await skopeoCopy(image, ref);
    } finally {
      image.remove();
    }
    return { registry, containerd, berthd, ref };
  } catch (err) {
    await stopPeers(peers);
    throw err;
  }
}

export interface RunOptions extends BenchOptions {
  /** run --rm and exec iterations (default 20, quick 3) */
  runs?: number;
  /** containers started at once in the burst / memory round (default 20, quick 3) */
  concurrent?: number;
  /** burst rounds (default ceil(runs / 7), quick 1) */
  concurrentRuns?: number;
}

export async function runBench(opts: RunOptions = {}): Promise<BenchResult> {
  const log = opts.log ?? ((s: string) => process.stdout.write(s));
  const runs = Math.max(1, opts.runs ?? (opts.quick ? 3 : 20));
  const concurrentRuns = Math.max(1, opts.concurrentRuns ?? (opts.quick ? 1 : Math.ceil(runs / 7)));
  const CONCURRENT = Math.max(1, opts.concurrent ?? (opts.quick ? 3 : 20));
  const started = Date.now();

  let registry: TestRegistry | undefined;
  let containerd: PeerContainerd | undefined;
  let berthd: TestDaemon | undefined;
  const combos: Combo[] = [];
  const nsBase = `berth-bench-run-${process.pid}`;
  try {
    let ref: string;
    ({ registry, containerd, berthd, ref } = await startPeersWithImage());

    const cns = `${nsBase}-c`;
    const bns = `${nsBase}-b`;
    combos.push(
      { name: 'containerd-runc', label: 'containerd + runc', address: containerd.address, namespace: cns, runtime: RUNC, prefix: 'cr', daemonPid: containerd.pid!, live: new Set() },
      { name: 'berthd-runc', label: 'berthd + runc', address: berthd.address, namespace: bns, runtime: RUNC, prefix: 'br', daemonPid: berthd.pid, live: new Set() },
      { name: 'berthd-berth', label: 'berthd + berth-shim', address: berthd.address, namespace: bns, runtime: BERTH_SHIM, prefix: 'bb', daemonPid: berthd.pid, live: new Set() },
    );
    await Promise.all([containerd.address, berthd.address].map((a, i) => ctr(a, ['images', 'pull', '--plain-http', ref], { namespace: i ? bns : cns, timeoutMs: 120_000 })));

    // warm-up, not measured: shim binaries and node modules in the page cache, daemons' first-call costs
    for (const combo of combos) {
      await runRm(combo, ref, `${combo.prefix}-warm`);
      await verifyEmpty(combo);
    }

    // 1. run --rm
    const runTimes: Record<ComboName, number[]> = { 'containerd-runc': [], 'berthd-runc': [], 'berthd-berth': [] };
    for (let i = 0; i < runs; i++) {
      const line: string[] = [];
      for (const combo of rotate(combos, i)) {
        const t = await runRm(combo, ref, `${combo.prefix}-r${i}`);
        runTimes[combo.name].push(t);
        line.push(`${combo.name} ${(t * 1000).toFixed(0)} ms`);
      }
      log(`run --rm ${i + 1}/${runs}  ${line.join('  ')}\n`);
    }
    for (const combo of combos) await verifyEmpty(combo);

    // 2. 10 concurrent run -d, memory, kill + rm
    const mem: Record<ComboName, MemoryRound[]> = { 'containerd-runc': [], 'berthd-runc': [], 'berthd-berth': [] };
    for (let i = 0; i < concurrentRuns; i++) {
      const line: string[] = [];
      for (const combo of rotate(combos, i)) {
        const r = await concurrentRound(combo, ref, `${i}`, CONCURRENT);
        mem[combo.name].push(r);
        line.push(`${combo.name} ${(r.wallSeconds * 1000).toFixed(0)} ms ${(r.perContainerBytes / 1048576).toFixed(1)} MiB/ctr`);
      }
      log(`concurrent ${i + 1}/${concurrentRuns}  ${line.join('  ')}\n`);
    }

    // 3. exec into one running container per combination
    const execTimes: Record<ComboName, number[]> = { 'containerd-runc': [], 'berthd-runc': [], 'berthd-berth': [] };
    for (const combo of combos) {
      const id = `${combo.prefix}-x`;
      combo.live.add(id);
      await c(combo, ['run', '-d', '--runtime', combo.runtime, ref, id, '/bin/busybox', 'sleep', '1000']);
      await c(combo, ['tasks', 'exec', '--exec-id', 'warm', id, '/bin/busybox', 'true']);
    }
    for (let i = 0; i < runs; i++) {
      const line: string[] = [];
      for (const combo of rotate(combos, i)) {
        const t = await timed(() => c(combo, ['tasks', 'exec', '--exec-id', `e${i}`, `${combo.prefix}-x`, '/bin/busybox', 'true']));
        execTimes[combo.name].push(t);
        line.push(`${combo.name} ${(t * 1000).toFixed(0)} ms`);
      }
      log(`exec ${i + 1}/${runs}  ${line.join('  ')}\n`);
    }
    for (const combo of combos) await removeContainers(combo, [`${combo.prefix}-x`]);
    for (const combo of combos) await verifyEmpty(combo);

    // results
    const base = 'containerd-runc';
    const memStats = (name: ComboName) => {
      const rs = mem[name];
      return {
        wallSeconds: stats(rs.map((r) => r.wallSeconds)),
        perContainerBytes: stats(rs.map((r) => r.perContainerBytes)),
        shimPssBytesPerContainer: stats(rs.map((r) => r.shimPssBytes / CONCURRENT)),
        shimRssBytesPerContainer: stats(rs.map((r) => r.shimRssBytes / CONCURRENT)),
        daemonRssGrowthBytesPerContainer: stats(rs.map((r) => r.daemonRssGrowthBytes / CONCURRENT)),
        shimProcesses: stats(rs.map((r) => r.shims)),
      };
    };
    const result = {
      benchmark: 'run',
      runs,
      concurrentRuns,
      concurrent: CONCURRENT,
      image: 'busybox-static, 1 layer, pulled with ctr images pull --plain-http',
      combinations: Object.fromEntries(combos.map((k) => [k.name, { daemon: k.name.startsWith('containerd') ? 'containerd 1.6' : 'berthd', runtime: k.runtime }])),
      runRm: Object.fromEntries(
        combos.map((k) => [k.name, { seconds: stats(runTimes[k.name]), ratioToContainerdRunc: ratios(runTimes[k.name], runTimes[base]) }]),
      ),
      concurrentRunD: Object.fromEntries(
        combos.map((k) => [
          k.name,
          {
            ...memStats(k.name),
            ratioToContainerdRunc: {
              wall: ratios(mem[k.name].map((r) => r.wallSeconds), mem[base].map((r) => r.wallSeconds)),
              perContainer: ratios(mem[k.name].map((r) => r.perContainerBytes), mem[base].map((r) => r.perContainerBytes)),
            },
          },
        ]),
      ),
      exec: Object.fromEntries(
        combos.map((k) => [k.name, { seconds: stats(execTimes[k.name]), ratioToContainerdRunc: ratios(execTimes[k.name], execTimes[base]) }]),
      ),
      totalSeconds: 0,
    };
    result.totalSeconds = (Date.now() - started) / 1000;

    const ms = (s: Stats) => [s.median, s.min, s.max].map((x) => `${(x * 1000).toFixed(1)}`.padStart(9)).join('');
    const mib = (s: Stats) => [s.median, s.min, s.max].map((x) => `${(x / 1048576).toFixed(2)}`.padStart(9)).join('');
    const rx = (s: Stats) => `${s.median.toFixed(2)}x`.padStart(9);
    const hdr = (unit: string) => `  ${''.padEnd(22)}${'median'.padStart(9)}${'min'.padStart(9)}${'max'.padStart(9)}   (${unit})  ratio vs containerd+runc (median of per-run ratios)\n`;
    let out = `ctr run / exec, containerd 1.6 against berthd, busybox image, same run, order rotating\n`;
    out += `1. ctr run --rm <ref> <id> /bin/busybox true, ${runs} runs\n` + hdr('ms');
    for (const k of combos) out += `  ${k.label.padEnd(22)}${ms(result.runRm[k.name]!.seconds)}${rx(result.runRm[k.name]!.ratioToContainerdRunc)}\n`;
    out += `2. ${CONCURRENT} concurrent ctr run -d … sleep 1000, ${concurrentRuns} rounds: wall time until all returned\n` + hdr('ms');
    for (const k of combos) out += `  ${k.label.padEnd(22)}${ms(result.concurrentRunD[k.name]!.wallSeconds)}${rx(result.concurrentRunD[k.name]!.ratioToContainerdRunc.wall)}\n`;
    out += `   memory per running container: (shim PSS + daemon VmRSS growth) / ${CONCURRENT}\n` + hdr('MiB');
    for (const k of combos) out += `  ${k.label.padEnd(22)}${mib(result.concurrentRunD[k.name]!.perContainerBytes)}${rx(result.concurrentRunD[k.name]!.ratioToContainerdRunc.perContainer)}\n`;
    out += `   of which (medians, MiB/container): shim PSS | daemon RSS growth | shim processes per round | shim RSS\n`;
    for (const k of combos) {
      const m = result.concurrentRunD[k.name]!;
      out += `  ${k.label.padEnd(22)}${(m.shimPssBytesPerContainer.median / 1048576).toFixed(2).padStart(9)}${(m.daemonRssGrowthBytesPerContainer.median / 1048576).toFixed(2).padStart(9)}${String(m.shimProcesses.median).padStart(9)}${(m.shimRssBytesPerContainer.median / 1048576).toFixed(2).padStart(9)}\n`;
    }
    out += `3. ctr tasks exec --exec-id e<i> <id> /bin/busybox true, ${runs} runs\n` + hdr('ms');
    for (const k of combos) out += `  ${k.label.padEnd(22)}${ms(result.exec[k.name]!.seconds)}${rx(result.exec[k.name]!.ratioToContainerdRunc)}\n`;
    out += `total ${result.totalSeconds.toFixed(0)} s\n`;
    log(out);
    const metrics: Metric[] = [];
    const cr = 'containerd-runc';
    const berthCombos: Array<[ComboName, string]> = [
      ['berthd-runc', 'berthd + runc shim'],
      ['berthd-berth', 'berthd + berth-shim'],
    ];
    for (const [k, note] of berthCombos) metrics.push(metric(`run --rm … true [${k}]`, 'ms', 'lower', runTimes[k], runTimes[cr], `${note}; ${runs} runs`, 1000));
    for (const [k, note] of berthCombos) {
      metrics.push(metric(`${CONCURRENT} concurrent run -d (wall) [${k}]`, 'ms', 'lower', mem[k].map((r) => r.wallSeconds), mem[cr].map((r) => r.wallSeconds), `${note}; ${concurrentRuns} rounds`, 1000));
    }
    const rssPer = (r: MemoryRound) => (r.shimRssBytes + r.daemonRssGrowthBytes) / CONCURRENT;
    for (const [k, note] of berthCombos) {
      metrics.push(
        metric(`memory per container, ${CONCURRENT} running: shim RSS + daemon growth [${k}]`, 'MiB', 'lower', mem[k].map(rssPer), mem[cr].map(rssPer), `${note}; RSS counts shared pages in every shim`, 1 / 1048576),
        metric(`memory per container, ${CONCURRENT} running: shim PSS + daemon growth [${k}]`, 'MiB', 'lower', mem[k].map((r) => r.perContainerBytes), mem[cr].map((r) => r.perContainerBytes), `${note}; PSS shares shared pages out`, 1 / 1048576),
      );
    }
    for (const [k, note] of berthCombos) metrics.push(metric(`tasks exec … true [${k}]`, 'ms', 'lower', execTimes[k], execTimes[cr], `${note}; ${runs} runs`, 1000));
    return { detail: result, metrics };
  } catch (err) {
    reportPeers({ berthd, containerd });
    throw err;
  } finally {
    for (const combo of combos) await forceClean(combo).catch(() => undefined);
    cleanupNamespaces([`${nsBase}-c`, `${nsBase}-b`]);
    await stopPeers({ registry, containerd, berthd });
    removeRuncLeftovers([`${nsBase}-c`, `${nsBase}-b`]);
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      runs: { type: 'string' },
      concurrent: { type: 'string' },
      'concurrent-runs': { type: 'string' },
      quick: { type: 'boolean', default: false },
      json: { type: 'string' },
    },
  });
  const num = (v: string | undefined) => (v === undefined ? undefined : Number(v));
  const r = await runBench({ quick: values.quick, runs: num(values.runs), concurrent: num(values.concurrent), concurrentRuns: num(values['concurrent-runs']) });
  if (values.json) fs.writeFileSync(values.json, `${JSON.stringify({ ...(r.detail as object), metrics: r.metrics }, null, 2)}\n`);
}

standalone(module, main);
