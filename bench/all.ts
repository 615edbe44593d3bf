// Every benchmark in one run: berthd against containerd 1.6 + runc (Debian's packages), each with
// its own root, state and socket, the same local docker-registry and the same images, the two
// systems alternating inside each module. Prints one table of berth/containerd ratios with medians,
// minimums and maximums, and writes JSON; both carry a description of the machine.
//
//   npm run bench [-- --quick] [-- --only rpc,recovery] [-- --json FILE]
//   (= npm run build && node dist/bench/all.js …)
//
// Modules, in order (names for --only):
//   pull         pull + unpack: 1 MB single-layer, ~100 MB five-layer, medium + 500 MiB random layer
//   run          `ctr run --rm … true`, 20 concurrent `run -d`, memory per container with 20
//                running, `tasks exec … true` (berthd with runc and with berth-shim)
//   rpc          gRPC round trip and throughput on one connection: Version, Containers.List
//   content      `ctr content ingest` of 1 GiB, next to sha256sum of the same file
//   recovery     10 running, SIGKILL the daemon, restart: time until all tasks RUNNING
//   layer-apply  pull and unpack-only of one large layer
//   shim         berth-shim against the runc shim under one containerd (bench/shim.ts)
// --quick: few iterations, small sizes (a smoke run; its numbers are not for quoting).
// The detailed per-module reports go to stderr; the table to stdout. A module that fails is
// reported (in the table and the JSON) and the others still run; the exit status is then 1.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { CONTAINERD_BIN } from '../test/helpers/containerd';
import type { BenchOptions, BenchResult, Metric } from './common';

const PACKAGE_ROOT = path.resolve(__dirname, '..', '..');

type Runner = (opts: BenchOptions) => Promise<BenchResult>;

interface Module {
  name: string;
  what: string;
  run: Runner;
}

/** Loaded on demand, so `--only rpc` does not load (or build the caches of) the others. */
const MODULES: Module[] = [
  { name: 'pull', what: 'pull + unpack', run: (o) => require('./pull').pullBench(o) },
  { name: 'run', what: 'container start, burst, memory, exec', run: (o) => require('./run').runBench(o) },
  { name: 'rpc', what: 'gRPC round trip and throughput', run: (o) => require('./rpc').rpcBench(o) },
  { name: 'content', what: 'content ingest vs sha256sum', run: (o) => require('./content-ingest').contentIngestBench(o) },
  { name: 'recovery', what: 'restart recovery', run: (o) => require('./recovery').recoveryBench(o) },
  { name: 'layer-apply', what: 'large layer pull and unpack', run: (o) => require('./layer-apply').layerApplyBench(o) },
  { name: 'shim', what: 'berth-shim vs runc shim under containerd', run: (o) => require('./shim').shimBench(o) },
];

function firstLine(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'ignore'], timeout: 10_000 }).toString().split('\n')[0]!.trim();
  } catch {
    return 'not found';
  }
}

export function machine(): Record<string, string | number> {
  const cpuinfo = fs.readFileSync('/proc/cpuinfo', 'utf8');
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? os.cpus()[0]?.model ?? 'unknown';
  let revision = 'unknown';
  try {
    revision = fs.readFileSync(path.join(PACKAGE_ROOT, 'dist', 'REVISION'), 'utf8').trim();
  } catch {
    // not built with npm run build
  }
  let fsType = 'unknown';
  try {
    fsType = execFileSync('findmnt', ['-no', 'FSTYPE', '-T', os.tmpdir()]).toString().trim();
  } catch {
    // no findmnt
  }
  return {
    cpu: model,
    cores: os.cpus().length,
    memoryGiB: Math.round((os.totalmem() / 1073741824) * 10) / 10,
    kernel: `${os.type()} ${os.release()}`,
    cgroup: fs.existsSync('/sys/fs/cgroup/cgroup.controllers') ? 'v2 (unified)' : 'v1 / hybrid',
    tmpFilesystem: fsType,
    node: process.version,
    containerd: firstLine(CONTAINERD_BIN, ['--version']),
    runc: firstLine('runc', ['--version']),
    berthRevision: revision,
    hostname: os.hostname(),
  };
}

/** 3 significant digits, thousands separated. */
export function fmt(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  const a = Math.abs(x);
  const digits = a >= 100 ? 0 : a >= 10 ? 1 : a >= 1 ? 2 : 3;
  return x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** The table as Markdown (aligned, so it reads as plain text too). */
export function table(metrics: Metric[], failures: Array<{ module: string; error: string }>): string {
  const head = ['metric', 'unit', 'berth median', 'containerd median', 'berth/containerd', 'berth min–max', 'containerd min–max'];
  const rows = metrics.map((m) => [
    m.name,
    `${m.unit} (${m.better === 'lower' ? 'lower' : 'higher'} is better)`,
    fmt(m.berth.median),
    fmt(m.containerd.median),
    `${m.ratio.toFixed(2)}x`,
    `${fmt(m.berth.min)}–${fmt(m.berth.max)}`,
    `${fmt(m.containerd.min)}–${fmt(m.containerd.max)}`,
  ]);
  for (const f of failures) rows.push([`${f.module}: FAILED`, f.error.split('\n')[0]!.slice(0, 100), '', '', '', '', '']);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const numeric = (i: number) => i >= 2;
  const line = (cells: string[]) => `| ${cells.map((c, i) => (numeric(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join(' | ')} |`;
  const sep = `|${widths.map((w, i) => (numeric(i) ? `${'-'.repeat(w + 1)}:` : '-'.repeat(w + 2))).join('|')}|`;
  return [line(head), sep, ...rows.map(line)].join('\n');
}

export interface AllOptions {
  quick?: boolean;
  only?: string[];
  json?: string;
}

export async function benchAll(opts: AllOptions): Promise<{ path: string; failed: number }> {
  const all = MODULES;
  const known = new Set(all.map((m) => m.name));
  const unknown = (opts.only ?? []).filter((n) => !known.has(n));
  if (unknown.length) throw new Error(`unknown bench module(s): ${unknown.join(', ')} (known: ${[...known].join(', ')})`);
  const selected = opts.only?.length ? all.filter((m) => opts.only!.includes(m.name)) : all;
  const jsonPath = path.resolve(opts.json ?? path.join(PACKAGE_ROOT, 'bench', 'results', 'latest.json'));
  const startedAt = new Date();
  const mach = machine();
  const log = (s: string) => process.stderr.write(s);

  const metrics: Metric[] = [];
  const failures: Array<{ module: string; error: string }> = [];
  const modules: Record<string, unknown> = {};
  for (const m of selected) {
    log(`\n== ${m.name}: ${m.what}${opts.quick ? ' (quick)' : ''}\n`);
    const t = Date.now();
    try {
      const r = await m.run({ quick: !!opts.quick, log });
      metrics.push(...r.metrics);
      modules[m.name] = { seconds: (Date.now() - t) / 1000, metrics: r.metrics.map((x) => x.name), detail: r.detail };
    } catch (err) {
      const error = (err as Error).stack ?? String(err);
      log(`${m.name} failed: ${error}\n`);
      failures.push({ module: m.name, error: (err as Error).message ?? String(err) });
      modules[m.name] = { seconds: (Date.now() - t) / 1000, error };
    }
  }
  const totalSeconds = (Date.now() - startedAt.getTime()) / 1000;

  const machineLine = `${mach.cpu}, ${mach.cores} cores, ${mach.memoryGiB} GiB, ${mach.kernel}, cgroup ${mach.cgroup}, ${mach.tmpFilesystem}; node ${mach.node}; ${mach.containerd}; ${mach.runc}`;
  const out =
    `berth vs containerd + runc${opts.quick ? ' (QUICK: smoke run, not for quoting)' : ''}, ${startedAt.toISOString().slice(0, 16).replace('T', ' ')} UTC, berth ${mach.berthRevision}\n` +
    `machine: ${machineLine}\n` +
    `ratio = berth median / containerd median (same run, alternating); berth = berthd, with the runtime named in [brackets] where it matters\n\n` +
    `${table(metrics, failures)}\n\n` +
    metrics
      .filter((m) => m.note)
      .map((m) => `- ${m.name}: ${m.note}`)
      .join('\n') +
    `\n\ntotal ${totalSeconds.toFixed(0)} s; JSON: ${jsonPath}\n`;
  process.stdout.write(out);

  fs.mkdirSync(path.dirname(jsonPath), { recursive: true });
  const json = {
    benchmark: 'all',
    quick: !!opts.quick,
    only: opts.only ?? null,
    startedAt: startedAt.toISOString(),
    totalSeconds,
    machine: mach,
    metrics,
    failures,
    modules,
  };
  fs.writeFileSync(jsonPath, `${JSON.stringify(json, null, 2)}\n`);
  return { path: jsonPath, failed: failures.length };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { quick: { type: 'boolean', default: false }, only: { type: 'string' }, json: { type: 'string' }, help: { type: 'boolean', short: 'h', default: false } },
  });
  if (values.help) {
    process.stdout.write(
      'usage: npm run bench -- [--quick] [--only name,name] [--json FILE]\n' +
        `modules: ${MODULES.map((m) => `${m.name} (${m.what})`).join('; ')}\n` +
        'default JSON: bench/results/latest.json\n',
    );
    return;
  }
  const only = values.only
    ?.split(/[,\s]+/)
    .map((s) => s.trim())
    .filter(Boolean);
  const r = await benchAll({ quick: values.quick, only, json: values.json });
  if (r.failed) process.exitCode = 1;
}

if (require.main === module) {
  main().catch((err) => {
    process.stderr.write(`${(err as Error).stack ?? err}\n`);
    process.exit(1);
  });
}
