// Benchmark: ingest of a 1 GiB blob over Content/Write into berthd and into containerd 1.6 (a peer
// started for the run), next to single-core `sha256sum` of the same file measured in the same run
// (berthd's target: at least 0.7 of sha256sum's rate).
//
//   npm run build && node dist/bench/content-ingest.js [--size-mib 1024] [--runs 3] [--no-containerd] [--quick] [--json FILE]
//
// The client is containerd's `ctr content ingest` on both sides (berth's own CLI against berthd
// when ctr is not installed; containerd is then left out). Each run: sha256sum, then the two
// daemons in alternating order; after each ingest the blob is removed (`ctr content rm`; for
// containerd, until its garbage collector has deleted the file) so the next run ingests it again.
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { BERTH, TestDaemon, sleep, tempDir } from '../test/helpers/daemon';
import { containerdAvailable, ctr, startContainerd, type PeerContainerd } from '../test/helpers/containerd';
import { median, metric, randomChunks, standalone, stopPeers, type BenchOptions, type BenchResult, type Metric } from './common';

function timeCommand(cmd: string, args: string[], stdinFile?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const stdin = stdinFile ? fs.openSync(stdinFile, 'r') : 'ignore';
    const started = process.hrtime.bigint();
    const p = spawn(cmd, args, { stdio: [stdin, 'ignore', 'pipe'] });
    let stderr = '';
    p.stderr!.on('data', (d) => (stderr += d));
    p.on('exit', (code) => {
      if (typeof stdin === 'number') fs.closeSync(stdin);
      if (code !== 0) reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${stderr}`));
      else resolve(Number(process.hrtime.bigint() - started) / 1e9);
    });
  });
}

export interface IngestOptions extends BenchOptions {
  /** default 1024, quick 64 */
  sizeMiB?: number;
  /** default 3, quick 1 */
  runs?: number;
  /** measure containerd too (default: when ctr and containerd are installed) */
  containerd?: boolean;
}

interface Side {
  name: 'berthd' | 'containerd';
  times: number[];
  ingest(ref: string): Promise<number>;
  remove(): Promise<void>;
}

export async function contentIngestBench(opts: IngestOptions = {}): Promise<BenchResult> {
  const log = opts.log ?? ((s: string) => process.stdout.write(s));
  const sizeMiB = opts.sizeMiB ?? (opts.quick ? 64 : 1024);
  const runs = Math.max(1, opts.runs ?? (opts.quick ? 1 : 3));
  const dir = tempDir('berth-bench-ingest-');
  const file = path.join(dir, 'blob');
  const daemon = new TestDaemon(path.join(dir, 'daemon'));
  fs.mkdirSync(daemon.dir);
  let containerd: PeerContainerd | undefined;
  try {
    // incompressible, deterministic
    const fd = fs.openSync(file, 'w');
    for (const chunk of randomChunks(0x1a6e57, sizeMiB << 20, 4 << 20)) fs.writeSync(fd, chunk);
    fs.closeSync(fd);
    const hex = execFileSync('sha256sum', [file]).toString().split(' ')[0]!;
    const digest = `sha256:${hex}`;
    const useCtr = containerdAvailable();
    const withContainerd = useCtr && opts.containerd !== false;
    const [, cs] = await Promise.allSettled([daemon.start(), withContainerd ? startContainerd() : Promise.resolve(undefined)]);
    if (cs.status === 'fulfilled') containerd = cs.value;
    if (!daemon.proc || daemon.proc.exitCode !== null) throw new Error(`berthd did not start: ${daemon.stderr}`);
    if (cs.status === 'rejected') throw cs.reason;
    const client = useCtr ? 'ctr content ingest' : 'berth content ingest';
    const ctrIngest = (address: string, ref: string) =>
      timeCommand('/usr/bin/ctr', ['--address', address, 'content', 'ingest', '--expected-size', String(sizeMiB << 20), '--expected-digest', digest, ref], file);

    const sides: Side[] = [
      {
        name: 'berthd',
        times: [],
        ingest: (ref) =>
          useCtr ? ctrIngest(daemon.address, ref) : timeCommand(process.execPath, [BERTH, '--address', daemon.address, 'content', 'ingest', '--expected-digest', digest, ref], file),
        remove: async () => {
          execFileSync(process.execPath, [BERTH, '--address', daemon.address, 'content', 'rm', digest]);
          execFileSync(process.execPath, [BERTH, '--address', daemon.address, 'content', 'prune']);
        },
      },
    ];
    if (containerd) {
      const cd = containerd;
      const blob = path.join(cd.root, 'io.containerd.content.v1.content', 'blobs', 'sha256', hex);
      sides.push({
        name: 'containerd',
        times: [],
        ingest: (ref) => ctrIngest(cd.address, ref),
        remove: async () => {
          await ctr(cd.address, ['content', 'rm', digest]);
          // containerd deletes the file in its garbage collection, scheduled after the deletion
          const deadline = Date.now() + 30_000;
          while (fs.existsSync(blob)) {
            if (Date.now() > deadline) throw new Error(`containerd kept ${blob} 30 s after content rm`);
            await sleep(20);
          }
        },
      });
    }

    const hashTimes: number[] = [];
    for (let i = 0; i < runs; i++) {
      hashTimes.push(await timeCommand('sha256sum', [file]));
      const order = i % 2 ? [...sides].reverse() : sides;
      for (const s of order) {
        s.times.push(await s.ingest(`bench-${i}`));
        await s.remove();
      }
      log(`ingest ${i + 1}/${runs}: sha256sum ${hashTimes[i]!.toFixed(2)} s  ${sides.map((s) => `${s.name} ${s.times[i]!.toFixed(2)} s`).join('  ')}\n`);
    }
    const mibps = (t: number) => sizeMiB / t;
    const sideResult = (xs: number[]) => ({ medianSeconds: median(xs), MiBps: mibps(median(xs)), samples: xs });
    const [b, c] = sides as [Side, Side | undefined];
    const result = {
      benchmark: 'content-ingest',
      sizeMiB,
      runs,
      client,
      sha256sum: sideResult(hashTimes),
      berthd: sideResult(b.times),
      ...(c ? { containerd: sideResult(c.times) } : {}),
      // Throughput ratio: berthd's ingest rate over sha256sum's hashing rate (higher is better).
      ratio: median(hashTimes) / median(b.times),
      ...(c ? { containerdRatio: median(hashTimes) / median(c.times) } : {}),
      target: 0.7,
    };
    const row = (name: string, r: { medianSeconds: number; MiBps: number; samples: number[] }) =>
      `${name.padEnd(28)} ${r.medianSeconds.toFixed(2).padStart(8)} s ${r.MiBps.toFixed(0).padStart(7)} MiB/s   min ${Math.min(...r.samples).toFixed(2)} max ${Math.max(...r.samples).toFixed(2)}`;
    log(
      `content ingest of ${sizeMiB} MiB, ${runs} runs (median)\n` +
        `${row(`berthd (${client})`, result.berthd)}\n` +
        (result.containerd ? `${row(`containerd (${client})`, result.containerd)}\n` : '') +
        `${row('sha256sum (single core)', result.sha256sum)}\n` +
        `ratio (berthd ingest rate / sha256sum rate): ${result.ratio.toFixed(2)}  (target >= ${result.target})` +
        (result.containerdRatio ? `; containerd: ${result.containerdRatio.toFixed(2)}` : '') +
        '\n',
    );
    const metrics: Metric[] = [];
    if (c) {
      const mb = (xs: number[]) => xs.map(mibps);
      metrics.push(
        metric(`content ingest ${sizeMiB} MiB`, 'MiB/s', 'higher', mb(b.times), mb(c.times), `${client}; sha256sum ${result.sha256sum.MiBps.toFixed(0)} MiB/s; ${runs} runs`),
        metric(
          `content ingest rate / sha256sum rate`,
          'x',
          'higher',
          b.times.map((t, i) => hashTimes[i]! / t),
          c.times.map((t, i) => hashTimes[i]! / t),
          'per-run ratio to sha256sum of the same file; berthd target >= 0.7',
        ),
      );
    }
    return { detail: result, metrics };
  } finally {
    await daemon.kill();
    await stopPeers({ containerd });
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      'size-mib': { type: 'string' },
      runs: { type: 'string' },
      'no-containerd': { type: 'boolean', default: false },
      quick: { type: 'boolean', default: false },
      json: { type: 'string' },
    },
  });
  const r = await contentIngestBench({
    quick: values.quick,
    sizeMiB: values['size-mib'] === undefined ? undefined : Number(values['size-mib']),
    runs: values.runs === undefined ? undefined : Number(values.runs),
    containerd: !values['no-containerd'],
  });
  if (values.json) fs.writeFileSync(values.json, `${JSON.stringify({ ...(r.detail as object), metrics: r.metrics }, null, 2)}\n`);
}

standalone(module, main);
