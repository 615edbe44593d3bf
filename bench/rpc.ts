// Benchmark: gRPC round trip and throughput on one connection, containerd 1.6 (a peer started for
// the run) against berthd, side by side, with the same client code on both sides: grpc-js with
// berth's own proto definitions (cli/client.ts), so only the server differs.
//
//   npm run build && node dist/bench/rpc.js [--calls 2000] [--throughput-calls 20000] [--in-flight 64]
//                                           [--rounds 5] [--containers 50] [--quick] [--json FILE]
//
// Methods: Version/Version (no namespace work at all) and Containers/List in a namespace holding
// `--containers` containers (created over the API in both daemons, each with a generated OCI spec
// of ~2 KB, labels and a runc runtime; no snapshots, no tasks).
// For each method, `--rounds` rounds, the daemon order alternating between rounds:
//   round trip   `--calls / rounds` sequential unary calls: the latency of each call (µs).
//   throughput   `--throughput-calls / rounds` calls with `--in-flight` outstanding at any time:
//                calls per second of the round, and the daemon's CPU time per call (utime+stime of
//                its process from /proc/<pid>/stat over the round).
// One warm-up of 200 calls per method and daemon first, not measured.
import * as fs from 'node:fs';
import { parseArgs } from 'node:util';
import { Client } from '../cli/client';
import { generateSpec, withProcessArgs } from '../runtime/oci/defaults';
import { startDaemon, type TestDaemon } from '../test/helpers/daemon';
import { startContainerd, type PeerContainerd } from '../test/helpers/containerd';
import { metric, reportPeers, standalone, stats, stopPeers, type BenchOptions, type BenchResult, type Metric } from './common';

const SPEC_TYPE = 'types.containerd.io/opencontainers/runtime-spec/1/Spec';
const NAMESPACE = 'bench-rpc';

export interface RpcOptions extends BenchOptions {
  calls?: number;
  throughputCalls?: number;
  inFlight?: number;
  rounds?: number;
  containers?: number;
}

type Side = 'berthd' | 'containerd';

interface Target {
  side: Side;
  client: Client;
  pid: number;
}

interface MethodSpec {
  key: string;
  label: string;
  call: (c: Client) => Promise<unknown>;
}

/** utime + stime of a process, in seconds. */
function cpuSeconds(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is state (field 3); utime is field 14, stime 15
  return (Number(fields[11]) + Number(fields[12])) / 100; // USER_HZ is 100 on Linux
}

async function roundTrips(c: Client, m: MethodSpec, n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = process.hrtime.bigint();
    await m.call(c);
    out.push(Number(process.hrtime.bigint() - t) / 1e3);
  }
  return out;
}

async function throughput(t: Target, m: MethodSpec, total: number, inFlight: number): Promise<{ callsPerSecond: number; cpuMicrosPerCall: number }> {
  let issued = 0;
  const cpu0 = cpuSeconds(t.pid);
  const started = process.hrtime.bigint();
  const worker = async () => {
    while (issued < total) {
      issued++;
      await m.call(t.client);
    }
  };
  await Promise.all(Array.from({ length: Math.min(inFlight, total) }, worker));
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const cpu = cpuSeconds(t.pid) - cpu0;
  return { callsPerSecond: total / seconds, cpuMicrosPerCall: (cpu / total) * 1e6 };
}

async function createContainers(c: Client, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const id = `rpc-bench-${i}`;
    const spec = generateSpec(NAMESPACE, id, withProcessArgs('/bin/busybox', 'sleep', '1000'));
    await c.unary('containers', 'Create', {
      container: {
        id,
        image: 'registry.example/bench/busybox:bench',
        labels: { 'bench.berth/index': String(i), 'io.containerd.image.config.stop-signal': 'SIGTERM' },
        runtime: { name: 'io.containerd.runc.v2' },
        spec: { type_url: SPEC_TYPE, value: Buffer.from(JSON.stringify(spec)) },
        snapshotter: 'overlayfs',
        snapshot_key: id,
      },
    });
  }
  const { containers } = await c.unary('containers', 'List', {});
  if (containers.length !== n) throw new Error(`expected ${n} containers, List returned ${containers.length}`);
}

export async function rpcBench(opts: RpcOptions = {}): Promise<BenchResult> {
  const quick = !!opts.quick;
  const log = opts.log ?? ((s: string) => process.stdout.write(s));
  const rounds = Math.max(2, opts.rounds ?? (quick ? 2 : 5));
  const calls = Math.max(rounds, opts.calls ?? (quick ? 200 : 2000));
  const tCalls = Math.max(rounds, opts.throughputCalls ?? (quick ? 1000 : 20_000));
  const inFlight = Math.max(1, opts.inFlight ?? 64);
  const nContainers = opts.containers ?? 50;
  const started = Date.now();

  let containerd: PeerContainerd | undefined;
  let berthd: TestDaemon | undefined;
  const clients: Client[] = [];
  try {
    const [cs, bs] = await Promise.allSettled([startContainerd(), startDaemon()]);
    if (cs.status === 'fulfilled') containerd = cs.value;
    if (bs.status === 'fulfilled') berthd = bs.value;
    for (const s of [cs, bs]) if (s.status === 'rejected') throw s.reason;
    const targets: Target[] = [
      { side: 'berthd', client: new Client(berthd!.address, NAMESPACE), pid: berthd!.pid },
      { side: 'containerd', client: new Client(containerd!.address, NAMESPACE), pid: containerd!.pid! },
    ];
    clients.push(...targets.map((t) => t.client));
    for (const t of targets) await createContainers(t.client, nContainers);

    const methods: MethodSpec[] = [
      { key: 'version', label: 'Version/Version', call: (c) => c.unary('version', 'Version') },
      { key: 'containersList', label: `Containers/List (${nContainers} containers)`, call: (c) => c.unary('containers', 'List', {}) },
    ];
    const detail: Record<string, unknown> = {};
    const metrics: Metric[] = [];
    for (const m of methods) {
      for (const t of targets) await roundTrips(t.client, m, 200); // warm-up
      const rtt: Record<Side, number[]> = { berthd: [], containerd: [] };
      const tput: Record<Side, number[]> = { berthd: [], containerd: [] };
      const cpu: Record<Side, number[]> = { berthd: [], containerd: [] };
      for (let r = 0; r < rounds; r++) {
        const order = r % 2 ? [...targets].reverse() : targets;
        for (const t of order) rtt[t.side].push(...(await roundTrips(t.client, m, Math.floor(calls / rounds))));
        for (const t of order) {
          const x = await throughput(t, m, Math.floor(tCalls / rounds), inFlight);
          tput[t.side].push(x.callsPerSecond);
          cpu[t.side].push(x.cpuMicrosPerCall);
        }
        log(
          `rpc ${m.label} round ${r + 1}/${rounds}: ` +
            targets.map((t) => `${t.side} p50 ${stats(rtt[t.side]).median.toFixed(0)} µs, ${tput[t.side].at(-1)!.toFixed(0)} calls/s`).join('; ') +
            '\n',
        );
      }
      const { samples: _b, ...rb } = stats(rtt.berthd);
      const { samples: _c, ...rc } = stats(rtt.containerd);
      detail[m.key] = {
        roundTripMicros: { berthd: rb, containerd: rc },
        callsPerSecond: { berthd: stats(tput.berthd), containerd: stats(tput.containerd) },
        daemonCpuMicrosPerCall: { berthd: stats(cpu.berthd), containerd: stats(cpu.containerd) },
      };
      const rttMetric = metric(`rpc ${m.label} round trip`, 'µs', 'lower', rtt.berthd, rtt.containerd, `${calls} sequential calls, one connection`);
      // per-call samples are many: keep only the summary
      delete rttMetric.berth.samples;
      delete rttMetric.containerd.samples;
      metrics.push(
        rttMetric,
        metric(`rpc ${m.label} throughput`, 'calls/s', 'higher', tput.berthd, tput.containerd, `${inFlight} in flight, one connection, ${rounds} rounds`),
      );
      // /proc/<pid>/stat counts in 10 ms ticks: a short (quick) round may see none on one side
      if ([...cpu.berthd, ...cpu.containerd].every((x) => x > 0)) {
        metrics.push(metric(`rpc ${m.label} daemon CPU per call`, 'µs', 'lower', cpu.berthd, cpu.containerd, `at ${inFlight} in flight (10 ms tick resolution)`));
      }
    }

    const result = {
      benchmark: 'rpc',
      client: 'grpc-js + berth proto definitions (cli/client.ts), one channel per daemon',
      namespace: NAMESPACE,
      containers: nContainers,
      rounds,
      calls,
      throughputCalls: tCalls,
      inFlight,
      methods: detail,
      totalSeconds: (Date.now() - started) / 1000,
    };
    const f = (x: number) => x.toFixed(x < 10 ? 2 : 0).padStart(10);
    let out = `gRPC on one connection (grpc-js client, same code for both), ${rounds} rounds alternating\n`;
    out += `  ${''.padEnd(70)}${'berthd'.padStart(10)}${'containerd'.padStart(11)}${'ratio'.padStart(8)}\n`;
    for (const mt of metrics) out += `  ${`${mt.name} (${mt.unit}, median)`.padEnd(70)}${f(mt.berth.median)} ${f(mt.containerd.median)}${mt.ratio.toFixed(2).padStart(7)}x\n`;
    log(out);
    return { detail: result, metrics };
  } catch (err) {
    reportPeers({ berthd, containerd });
    throw err;
  } finally {
    for (const c of clients) c.close();
    await stopPeers({ containerd, berthd });
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      calls: { type: 'string' },
      'throughput-calls': { type: 'string' },
      'in-flight': { type: 'string' },
      rounds: { type: 'string' },
      containers: { type: 'string' },
      quick: { type: 'boolean', default: false },
      json: { type: 'string' },
    },
  });
  const num = (v: string | undefined) => (v === undefined ? undefined : Number(v));
  const r = await rpcBench({
    quick: values.quick,
    calls: num(values.calls),
    throughputCalls: num(values['throughput-calls']),
    inFlight: num(values['in-flight']),
    rounds: num(values.rounds),
    containers: num(values.containers),
  });
  if (values.json) fs.writeFileSync(values.json, `${JSON.stringify({ ...(r.detail as object), metrics: r.metrics }, null, 2)}\n`);
}

standalone(module, main);
