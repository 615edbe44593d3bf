// Shared pieces of the benchmarks: the build cache, a seeded generator, timing and medians.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { cleanup, type TestDaemon } from '../test/helpers/daemon';
import type { TestRegistry } from '../test/helpers/registry';
import { unmountUnder, type PeerContainerd } from '../test/helpers/containerd';

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
