// Benchmark: berth-shim (io.containerd.berth.v1) against containerd's runc shim
// (io.containerd.runc.v2), both driven by the same real containerd 1.6 peer and the same `ctr`.
//
//   npm run build && node dist/bench/shim.js [--runs 20] [--containers 20] [--quick] [--json FILE]
//
// Measured, in one run, the two runtimes alternating (the order flips every run):
//   1. `ctr run --rm <ref> <id> /bin/busybox true`: wall time, N runs.
//   2. memory per container with M running (`ctr run -d … sleep`): the PSS of the runtime's shim
//      processes (/proc/<pid>/smaps_rollup) / M. berth-shim twice: one shim per container, and all
//      M in one group (annotation io.containerd.runc.v2.group, as a pod shares one shim). berth's
//      figures include its spare shim (the one the next start would take). Measured 1.5 s after
//      the last start, and again (one shim per container, and runc) once the shims have been idle
//      past runtime/init's idle release (BERTH_INIT_IDLE_MS, 30 s): the steady state of
//      long-running containers, after a berth shim let its warm init thread and helper go.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { sleep, waitFor } from '../test/helpers/daemon';
import { buildImage, skopeoCopy, type TestImage } from '../test/helpers/images';
import { startRegistry, type TestRegistry } from '../test/helpers/registry';
import { ctr, startContainerd, type PeerContainerd } from '../test/helpers/containerd';
import { SOCKET_DIR } from '../runtime/shim/main';
import { pidInFile } from '../runtime/shim/pidfile';
import { spareDir } from '../runtime/shim/spare';
import { idleReleaseMs } from '../runtime/init/pool';
import { metric, standalone, timed, type BenchOptions, type BenchResult, type Metric } from './common';
import { BERTH_SHIM, RUNC, c, forceClean, pss, removeContainers, removeRuncLeftovers, rotate, shimPids, verifyEmpty, type Combo } from './run';

const SHIM_BINARY = path.resolve(__dirname, '../../bin/containerd-shim-berth-v1');

/** The spare berth shim a daemon keeps (runtime/shim/spare.ts). */
const spareDirOf = (daemonAddress: string) => spareDir(SOCKET_DIR, daemonAddress);

const sparePid = (daemonAddress: string) => pidInFile(path.join(spareDirOf(daemonAddress), 'pid'));

export interface ShimBenchOptions extends BenchOptions {
  runs?: number;
  containers?: number;
}

interface MemoryResult {
  label: string;
  shims: number;
  perContainerBytes: number;
  /** after the idle release, when asked for */
  steadyPerContainerBytes?: number;
}

export async function shimBench(opts: ShimBenchOptions = {}): Promise<BenchResult> {
  const log = opts.log ?? ((s: string) => process.stdout.write(s));
  const runs = Math.max(1, opts.runs ?? (opts.quick ? 3 : 20));
  const containers = Math.max(1, opts.containers ?? (opts.quick ? 3 : 20));
  const binDir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-bench-shim-bin-'));
  fs.symlinkSync(SHIM_BINARY, path.join(binDir, 'containerd-shim-berth-v1'));
  let registry: TestRegistry | undefined;
  let containerd: PeerContainerd | undefined;
  let image: TestImage | undefined;
  const combos: Combo[] = [];
  const ns = `berth-bench-shim-${process.pid}`;
  try {
    registry = await startRegistry();
    containerd = await startContainerd(undefined, { pathPrepend: [binDir] });
    image = await buildImage({ tag: 'bench-shim' });
    const ref = `${registry.host}/bench/busybox:shim`;
    await skopeoCopy(image, ref);
    const base = { address: containerd.address, namespace: ns, daemonPid: containerd.pid!, live: new Set<string>() };
    combos.push({ ...base, name: 'containerd-runc', label: 'runc shim', runtime: RUNC, prefix: 'sr', live: new Set() });
    combos.push({ ...base, name: 'berthd-berth', label: 'berth-shim', runtime: BERTH_SHIM, prefix: 'sb', live: new Set() });
    await ctr(containerd.address, ['images', 'pull', '--plain-http', ref], { namespace: ns, timeoutMs: 120_000 });

    const runRm = async (combo: Combo, id: string) => {
      combo.live.add(id);
      const t = await timed(() => c(combo, ['run', '--rm', '--runtime', combo.runtime, ref, id, '/bin/busybox', 'true']));
      combo.live.delete(id);
      return t;
    };
    for (const combo of combos) await runRm(combo, `${combo.prefix}-warm`); // page cache, first-call costs
    await sleep(500);

    // 1. run --rm, alternating
    const times: Record<string, number[]> = { [RUNC]: [], [BERTH_SHIM]: [] };
    for (let i = 0; i < runs; i++) {
      const line: string[] = [];
      for (const combo of rotate(combos, i)) {
        const t = await runRm(combo, `${combo.prefix}-r${i}`);
        times[combo.runtime]!.push(t);
        line.push(`${combo.label} ${(t * 1000).toFixed(0)} ms`);
      }
      log(`run --rm ${i + 1}/${runs}  ${line.join('  ')}\n`);
    }
    for (const combo of combos) await verifyEmpty(combo);

    // 2. memory with `containers` running
    const memory = async (combo: Combo, label: string, extra: string[], steady = false): Promise<MemoryResult> => {
      const ids = Array.from({ length: containers }, (_, i) => `${combo.prefix}-m${label === 'grouped' ? 'g' : ''}${i}`);
      for (const id of ids) {
        combo.live.add(id);
        await c(combo, ['run', '-d', '--runtime', combo.runtime, ...extra, ref, id, '/bin/busybox', 'sleep', '1000']);
      }
      const perContainer = () => {
        const spare = combo.runtime === BERTH_SHIM ? sparePid(containerd!.address) : 0;
        return { spare, bytes: (shimPids(ns).reduce((sum, p) => sum + pss(p), 0) + (spare ? pss(spare) : 0)) / containers };
      };
      await sleep(1500); // let start-up garbage be collected and a spare come up
      const pids = shimPids(ns);
      const first = perContainer();
      let steadyBytes: number | undefined;
      if (steady) {
        await sleep(idleReleaseMs() + 3000);
        steadyBytes = perContainer().bytes;
      }
      await removeContainers(combo, ids);
      await waitFor(`${combo.label} shims to exit`, () => (shimPids(ns).length === 0 ? true : undefined), 15_000);
      const r: MemoryResult = { label: `${combo.label}${label ? ` (${label})` : ''}`, shims: pids.length, perContainerBytes: first.bytes, ...(steadyBytes !== undefined ? { steadyPerContainerBytes: steadyBytes } : {}) };
      const steadyText = steadyBytes !== undefined ? `, ${(steadyBytes / 1048576).toFixed(2)} MiB once idle` : '';
      log(`memory ${r.label}: ${r.shims} shim(s)${first.spare ? ' + spare' : ''}, ${(r.perContainerBytes / 1048576).toFixed(2)} MiB PSS per container${steadyText}\n`);
      return r;
    };
    const runcMem = await memory(combos[0]!, '', [], !opts.quick);
    const berthMem = await memory(combos[1]!, 'one shim per container', [], !opts.quick);
    const groupedMem = await memory(combos[1]!, 'grouped', ['--annotation', 'io.containerd.runc.v2.group=bench']);

    const mib = (r: MemoryResult) => [r.perContainerBytes / 1048576];
    const metrics: Metric[] = [
      metric('shim: run --rm under containerd', 'ms', 'lower', times[BERTH_SHIM]!, times[RUNC]!, 'berth-shim vs runc shim, same containerd', 1000),
      metric(`shim: PSS per container, ${containers} running`, 'MiB', 'lower', mib(berthMem), mib(runcMem), 'one berth-shim per container (+ spare)'),
      ...(berthMem.steadyPerContainerBytes === undefined ? [] : [metric(
        `shim: PSS per container, ${containers} running, idle ${Math.round(idleReleaseMs() / 1000) + 3} s`,
        'MiB',
        'lower',
        [berthMem.steadyPerContainerBytes! / 1048576],
        [runcMem.steadyPerContainerBytes! / 1048576],
        'one berth-shim per container (+ spare), after its idle init threads ended',
      )]),
      metric(`shim: PSS per container, ${containers} running, grouped`, 'MiB', 'lower', mib(groupedMem), mib(runcMem), `one berth-shim for all ${containers} (+ spare); runc: one shim each`),
    ];
    return { detail: { runs, containers, times, memory: [runcMem, berthMem, groupedMem] }, metrics };
  } finally {
    for (const combo of combos) await forceClean(combo).catch(() => undefined);
    const spare = containerd ? sparePid(containerd.address) : 0;
    await containerd?.stop().catch(() => undefined);
    if (spare) {
      // it leaves by itself once containerd's socket is gone; make sure
      await sleep(1500);
      try {
        process.kill(spare, 'SIGKILL');
      } catch {
        /* gone */
      }
      if (containerd) fs.rmSync(spareDirOf(containerd.address), { recursive: true, force: true });
    }
    removeRuncLeftovers([ns]); // the namespace's (empty) cgroup parents
    await registry?.stop().catch(() => undefined);
    image?.remove();
    fs.rmSync(binDir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { runs: { type: 'string' }, containers: { type: 'string' }, quick: { type: 'boolean' }, json: { type: 'string' } } });
  const r = await shimBench({
    quick: !!values.quick,
    ...(values.runs ? { runs: Number(values.runs) } : {}),
    ...(values.containers ? { containers: Number(values.containers) } : {}),
  });
  for (const m of r.metrics) {
    process.stdout.write(`${m.name}: berth ${m.berth.median.toFixed(2)} ${m.unit} (${m.berth.min.toFixed(2)}–${m.berth.max.toFixed(2)}), runc ${m.containerd.median.toFixed(2)} ${m.unit}, ratio ${m.ratio.toFixed(2)}x\n`);
  }
  if (values.json) fs.writeFileSync(values.json, JSON.stringify(r, null, 2));
}

standalone(module, main);
