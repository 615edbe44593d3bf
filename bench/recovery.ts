// Benchmark: restart recovery. With N containers running, SIGKILL the daemon (by pid), start it
// again, and time from the spawn until Tasks.List reports all N tasks RUNNING; containerd 1.6 (a
// peer started for the run) against berthd, side by side in the same run, the same image.
//
//   npm run build && node dist/bench/recovery.js [--containers 10] [--rounds 3] [--quick] [--json FILE]
//
// Combinations (as in bench/run.ts; each its own namespace and container-ID prefix):
//   containerd + runc     containerd, io.containerd.runc.v2
//   berthd + runc         berthd, io.containerd.runc.v2
//   berthd + berth-shim   berthd, io.containerd.berth.v1 (berth's own runtime)
// Each round, for each combination (order rotating): `ctr run -d --runtime <rt> <ref> <id>
// /bin/busybox sleep 1000` N times (5 at a time), wait until all RUNNING, note the task pids,
// SIGKILL the daemon, wait for it to be gone, spawn it again (same root, state, socket, config),
// and poll from the spawn on, every 5 ms: first whether the socket accepts, then Tasks.List over a
// grpc-js connection (berth's proto definitions, the same client for both). Measured:
//   answers      spawn → first Tasks.List answered
//   all running  spawn → Tasks.List lists all N tasks RUNNING
// and whether the workloads survived (the same pids after recovery). Then every task is killed
// and removed, the containers removed, and a check that nothing is left (no task, container, shim).
import * as fs from 'node:fs';
import { parseArgs } from 'node:util';
import { Client } from '../cli/client';
import { connectable, sleep, startDaemon, type TestDaemon } from '../test/helpers/daemon';
import { startRegistry, type TestRegistry } from '../test/helpers/registry';
import { ctr, startContainerd, type PeerContainerd } from '../test/helpers/containerd';
import { metric, reportPeers, standalone, stats, stopPeers, type BenchOptions, type BenchResult, type Metric } from './common';
import {
  BERTH_SHIM,
  RUNC,
  c,
  cleanupNamespaces,
  forceClean,
  removeContainers,
  removeRuncLeftovers,
  rotate,
  startPeersWithImage,
  tasksLs,
  verifyEmpty,
  type Combo,
  type ComboName,
} from './run';

export interface RecoveryOptions extends BenchOptions {
  /** containers running when the daemon is killed (default 10, quick 3) */
  containers?: number;
  /** rounds per combination (default 3, quick 1) */
  rounds?: number;
  /** also measure berthd with berth's own runtime (default true) */
  berthShim?: boolean;
}

interface Round {
  answerSeconds: number;
  allRunningSeconds: number;
  survived: number;
}

/** Polls Tasks.List (5 ms) from `t0` until all `ids` are RUNNING. */
async function pollRecovery(address: string, namespace: string, ids: string[], t0: bigint, timeoutMs = 60_000): Promise<{ answer: number; all: number; pids: Map<string, number> }> {
  const since = () => Number(process.hrtime.bigint() - t0) / 1e9;
  const deadline = Date.now() + timeoutMs;
  while (!(await connectable(address))) {
    if (Date.now() > deadline) throw new Error(`${address}: no socket after restart`);
    await sleep(5);
  }
  const client = new Client(address, namespace, undefined, 2_000);
  try {
    let answer: number | undefined;
    let last = '';
    for (;;) {
      try {
        const { tasks } = await client.unary('tasks', 'List', {});
        answer ??= since();
        const running = new Map<string, number>();
        for (const t of tasks as Array<{ id: string; status: string; pid: number }>) if (t.status === 'RUNNING') running.set(t.id, t.pid);
        if (ids.every((id) => running.has(id))) return { answer, all: since(), pids: running };
        last = `${running.size} of ${ids.length} RUNNING`;
      } catch (err) {
        last = (err as Error).message;
      }
      if (Date.now() > deadline) throw new Error(`${address}: tasks not all RUNNING after restart: ${last}`);
      await sleep(5);
    }
  } finally {
    client.close();
  }
}

export async function recoveryBench(opts: RecoveryOptions = {}): Promise<BenchResult> {
  const log = opts.log ?? ((s: string) => process.stdout.write(s));
  const n = Math.max(1, opts.containers ?? (opts.quick ? 3 : 10));
  const rounds = Math.max(1, opts.rounds ?? (opts.quick ? 1 : 3));
  const started = Date.now();

  let registry: TestRegistry | undefined;
  let containerd: PeerContainerd | undefined;
  let berthd: TestDaemon | undefined;
  const combos: Combo[] = [];
  const nsBase = `berth-bench-rec-${process.pid}`;
  const namespaces = [`${nsBase}-c`, `${nsBase}-br`, `${nsBase}-bb`];
  try {
    let ref: string;
    ({ registry, containerd, berthd, ref } = await startPeersWithImage());

    const cd = containerd;
    const bd = berthd;
    combos.push(
      { name: 'containerd-runc', label: 'containerd + runc', address: cd.address, namespace: namespaces[0]!, runtime: RUNC, prefix: 'kc', daemonPid: cd.pid!, live: new Set() },
      { name: 'berthd-runc', label: 'berthd + runc', address: bd.address, namespace: namespaces[1]!, runtime: RUNC, prefix: 'kr', daemonPid: bd.pid, live: new Set() },
    );
    if (opts.berthShim !== false) {
      combos.push({ name: 'berthd-berth', label: 'berthd + berth-shim', address: bd.address, namespace: namespaces[2]!, runtime: BERTH_SHIM, prefix: 'kb', daemonPid: bd.pid, live: new Set() });
    }
    for (const combo of combos) await ctr(combo.address, ['images', 'pull', '--plain-http', ref], { namespace: combo.namespace, timeoutMs: 120_000 });

    /** SIGKILL + restart of the combination's daemon; returns the spawn time. */
    const killAndRestart = async (combo: Combo): Promise<{ t0: bigint; started: Promise<void> }> => {
      if (combo.name.startsWith('containerd')) {
        process.kill(cd.pid!, 'SIGKILL');
        while (cd.running) await sleep(2);
        const t0 = process.hrtime.bigint();
        return { t0, started: cd.start() };
      }
      await bd.kill(); // SIGKILL by pid, waits for the exit
      const t0 = process.hrtime.bigint();
      return { t0, started: bd.start() };
    };

    const results: Partial<Record<ComboName, Round[]>> = {};
    for (let r = 0; r < rounds; r++) {
      const line: string[] = [];
      for (const combo of rotate(combos, r)) {
        const ids = Array.from({ length: n }, (_, i) => `${combo.prefix}-${r}-${i}`);
        for (let i = 0; i < ids.length; i += 5) {
          await Promise.all(
            ids.slice(i, i + 5).map((id) => {
              combo.live.add(id);
              return c(combo, ['run', '-d', '--runtime', combo.runtime, ref, id, '/bin/busybox', 'sleep', '1000']);
            }),
          );
        }
        await sleep(300); // the shims settle (the berth shim's start process hands over and exits)
        const before = await tasksLs(combo);
        const notRunning = ids.filter((id) => before.get(id) !== 'RUNNING');
        if (notRunning.length) throw new Error(`${combo.name}: not running before the kill: ${notRunning.join(' ')}`);
        const pidsBefore = await pollRecovery(combo.address, combo.namespace, ids, process.hrtime.bigint(), 10_000);

        const { t0, started: daemonUp } = await killAndRestart(combo);
        const rec = await pollRecovery(combo.address, combo.namespace, ids, t0);
        await daemonUp;
        combo.daemonPid = combo.name.startsWith('containerd') ? cd.pid! : bd.pid;
        for (const other of combos) if (other.address === combo.address) other.daemonPid = combo.daemonPid;
        const survived = ids.filter((id) => rec.pids.get(id) === pidsBefore.pids.get(id)).length;
        (results[combo.name] ??= []).push({ answerSeconds: rec.answer, allRunningSeconds: rec.all, survived });
        line.push(`${combo.name} answers ${(rec.answer * 1000).toFixed(0)} ms, all RUNNING ${(rec.all * 1000).toFixed(0)} ms, ${survived}/${n} survived`);

        await removeContainers(combo, ids);
        await verifyEmpty(combo);
      }
      log(`recovery ${r + 1}/${rounds}  ${line.join('  ')}\n`);
    }

    const detail = {
      benchmark: 'recovery',
      containers: n,
      rounds,
      combinations: Object.fromEntries(
        combos.map((k) => {
          const rs = results[k.name]!;
          return [
            k.name,
            {
              runtime: k.runtime,
              answerSeconds: stats(rs.map((x) => x.answerSeconds)),
              allRunningSeconds: stats(rs.map((x) => x.allRunningSeconds)),
              survived: rs.map((x) => x.survived),
            },
          ];
        }),
      ),
      totalSeconds: (Date.now() - started) / 1000,
    };
    const base = results['containerd-runc']!;
    const metrics: Metric[] = [];
    for (const k of combos.filter((x) => x.name !== 'containerd-runc')) {
      const rs = results[k.name]!;
      const surv = `${rs.map((x) => x.survived).join('/')} of ${n} survived (containerd ${base.map((x) => x.survived).join('/')})`;
      metrics.push(
        metric(`recovery, ${n} running: answers [${k.name}]`, 'ms', 'lower', rs.map((x) => x.answerSeconds), base.map((x) => x.answerSeconds), `SIGKILL, spawn → first Tasks.List; ${rounds} rounds`, 1000),
        metric(`recovery, ${n} running: all RUNNING [${k.name}]`, 'ms', 'lower', rs.map((x) => x.allRunningSeconds), base.map((x) => x.allRunningSeconds), `spawn → all ${n} RUNNING; ${surv}`, 1000),
      );
    }
    let out = `restart recovery with ${n} running, ${rounds} rounds (ms from spawn, median / min / max)\n`;
    for (const k of combos) {
      const d = detail.combinations[k.name] as { answerSeconds: ReturnType<typeof stats>; allRunningSeconds: ReturnType<typeof stats>; survived: number[] };
      const f = (s: ReturnType<typeof stats>) => [s.median, s.min, s.max].map((x) => (x * 1000).toFixed(0)).join(' / ');
      out += `  ${k.label.padEnd(22)} answers ${f(d.answerSeconds).padEnd(16)} all RUNNING ${f(d.allRunningSeconds).padEnd(16)} survived ${d.survived.join(',')}\n`;
    }
    log(out);
    return { detail, metrics };
  } catch (err) {
    reportPeers({ berthd, containerd });
    throw err;
  } finally {
    for (const combo of combos) await forceClean(combo).catch(() => undefined);
    cleanupNamespaces(namespaces);
    await stopPeers({ registry, containerd, berthd });
    removeRuncLeftovers(namespaces);
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { containers: { type: 'string' }, rounds: { type: 'string' }, 'no-berth-shim': { type: 'boolean', default: false }, quick: { type: 'boolean', default: false }, json: { type: 'string' } },
  });
  const r = await recoveryBench({
    quick: values.quick,
    containers: values.containers === undefined ? undefined : Number(values.containers),
    rounds: values.rounds === undefined ? undefined : Number(values.rounds),
    berthShim: !values['no-berth-shim'],
  });
  if (values.json) fs.writeFileSync(values.json, `${JSON.stringify({ ...(r.detail as object), metrics: r.metrics }, null, 2)}\n`);
}

standalone(module, main);
