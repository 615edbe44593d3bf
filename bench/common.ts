// Shared pieces of the benchmarks: the build cache, a seeded generator, timing and medians.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { cleanup, type TestDaemon } from '../test/helpers/daemon';
import type { TestRegistry } from '../test/helpers/registry';
import { unmountUnder, type PeerContainerd } from '../test/helpers/containerd';
import { encodeHeader, padding, TypeFlag } from '../snapshotter/tar';

export function cacheDir(): string {
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  const d = path.join(base, 'berth-bench');
  fs.mkdirSync(d, { recursive: true });
  return d;
}

/** xorshift32 */
export function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

export async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t) / 1e9;
}

export interface Peers {
  registry?: TestRegistry;
  containerd?: PeerContainerd;
  berthd?: TestDaemon;
}

/** After a failure: whether each daemon still runs, and the end of its stderr. */
export function reportPeers({ berthd, containerd }: Peers): void {
  if (berthd) {
    const p = berthd.proc;
    process.stderr.write(`berthd: ${p && p.exitCode === null && p.signalCode === null ? 'running' : `exited (${p?.exitCode ?? p?.signalCode})`}; stderr tail:\n${berthd.stderr.slice(-3000)}\n`);
  }
  if (containerd) process.stderr.write(`containerd: ${containerd.running ? 'running' : 'exited'}; stderr tail:\n${containerd.stderr.slice(-2000)}\n`);
}

/** Stops what a benchmark started, unmounting anything left under berthd's directory. */
export async function stopPeers({ registry, containerd, berthd }: Peers): Promise<void> {
  await containerd?.stop();
  if (berthd) {
    const dir = berthd.dir;
    await berthd.kill();
    unmountUnder(dir);
    await cleanup(berthd);
  }
  await registry?.stop();
}

// ---- the shape every bench module reports in, for bench/all.ts ----

export interface Stats {
  median: number;
  min: number;
  max: number;
  samples?: number[];
}

export function stats(xs: number[]): Stats {
  if (!xs.length) throw new Error('no samples');
  return { median: median(xs), min: Math.min(...xs), max: Math.max(...xs), samples: xs };
}

/** One comparable measurement: the same thing measured on berthd and on containerd, same run. */
export interface Metric {
  /** e.g. "pull small (ctr)", "rpc Version round trip" */
  name: string;
  /** unit of median/min/max: s, ms, µs, MiB, MiB/s, calls/s */
  unit: string;
  /** whether a higher number is better (throughput) or a lower one (time, memory) */
  better: 'lower' | 'higher';
  berth: Stats;
  containerd: Stats;
  /** berth median / containerd median */
  ratio: number;
  /** which berth side (runtime, client) and anything else worth reading next to the numbers */
  note?: string;
}

/** Builds a Metric from raw samples (scaled by `scale`, e.g. 1000 for s → ms). */
export function metric(name: string, unit: string, better: 'lower' | 'higher', berth: number[], containerd: number[], note?: string, scale = 1): Metric {
  const b = stats(berth.map((x) => x * scale));
  const c = stats(containerd.map((x) => x * scale));
  return { name, unit, better, berth: b, containerd: c, ratio: b.median / c.median, ...(note ? { note } : {}) };
}

export interface BenchOptions {
  /** few iterations, small sizes: a smoke run */
  quick?: boolean;
  /** where a module writes its own detailed report (all.ts sends it to stderr) */
  log?: (s: string) => void;
}

export interface BenchResult {
  /** the module's detailed result (what its standalone --json writes) */
  detail: unknown;
  metrics: Metric[];
}

/** Runs a module's `main` when the file is executed directly (node dist/bench/x.js). */
export function standalone(mod: NodeModule, main: () => Promise<void>): void {
  if (require.main !== mod) return;
  main().catch((err) => {
    process.stderr.write(`${(err as Error).stack ?? err}\n`);
    process.exit(1);
  });
}

/** Writes a deterministic, incompressible stream of `bytes` (xorshift32 from `seed`) as chunks. */
export function* randomChunks(seed: number, bytes: number, chunk = 1 << 20): Generator<Buffer> {
  const r = rng(seed);
  for (let off = 0; off < bytes; off += chunk) {
    const n = Math.min(chunk, bytes - off);
    const words = new Uint32Array(Math.ceil(n / 4));
    for (let i = 0; i < words.length; i++) words[i] = r();
    yield Buffer.from(words.buffer, 0, n);
  }
}

/** Kills a pid (SIGKILL), ignoring one that is gone. */
export function killPid(pid: number | undefined): void {
  if (!pid) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // gone
  }
}

/**
 * Writers of tar entries for generated layers: `entry` gives a header (and the padded body),
 * `mkdirs` each missing parent directory once. `onEntry` counts what was written.
 */
export function tarEntries(mtime: number, onEntry: (type: string) => void = () => undefined) {
  const entry = (name: string, type: string, mode: number, body?: Buffer, linkname?: string): Buffer[] => {
    onEntry(type);
    const len = body?.length ?? 0;
    const out = [encodeHeader({ name, type, mode, uid: 0, gid: 0, size: len, mtime, linkname })];
    if (body && len) out.push(body, padding(len));
    return out;
  };
  const dirs = new Set<string>();
  function* mkdirs(p: string): Generator<Buffer> {
    const parts = p.split('/');
    for (let i = 1; i <= parts.length; i++) {
      const d = parts.slice(0, i).join('/');
      if (!dirs.has(d)) {
        dirs.add(d);
        yield* entry(`${d}/`, TypeFlag.Dir, 0o755);
      }
    }
  }
  return { entry, mkdirs };
}
