// Benchmark: ingest of a 1 GiB blob over Content/Write into berthd, as a ratio to single-core
// `sha256sum` of the same file measured in the same run (target: at least 0.7).
//
//   npm run build && node dist/bench/content-ingest.js [--size-mib 1024] [--runs 3] [--json FILE]
//
// The client is containerd's `ctr content ingest` when it is installed (the same client
// containerd is measured with), otherwise berth's own CLI. Runs alternate the two measurements.
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { BERTH, TestDaemon, tempDir } from '../test/helpers/daemon';

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

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

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { 'size-mib': { type: 'string', default: '1024' }, runs: { type: 'string', default: '3' }, json: { type: 'string' } },
  });
  const sizeMiB = Number(values['size-mib']);
  const runs = Number(values.runs);
  const dir = tempDir('berth-bench-ingest-');
  const file = path.join(dir, 'blob');
  const daemon = new TestDaemon(path.join(dir, 'daemon'));
  fs.mkdirSync(daemon.dir);
  try {
    execFileSync('dd', ['if=/dev/urandom', `of=${file}`, 'bs=1M', `count=${sizeMiB}`, 'status=none']);
    const digest = `sha256:${execFileSync('sha256sum', [file]).toString().split(' ')[0]}`;
    await daemon.start();
    const useCtr = fs.existsSync('/usr/bin/ctr');
    const client = useCtr ? 'ctr content ingest' : 'berth content ingest';

    const hashTimes: number[] = [];
    const ingestTimes: number[] = [];
    for (let i = 0; i < runs; i++) {
      hashTimes.push(await timeCommand('sha256sum', [file]));
      const ref = `bench-${i}`;
      const args = useCtr
        ? ['/usr/bin/ctr', ['--address', daemon.address, 'content', 'ingest', '--expected-size', String(sizeMiB << 20), '--expected-digest', digest, ref]]
        : [process.execPath, [BERTH, '--address', daemon.address, 'content', 'ingest', '--expected-digest', digest, ref]];
      ingestTimes.push(await timeCommand(args[0] as string, args[1] as string[], file));
      // Remove the blob so the next run ingests it again.
      execFileSync(process.execPath, [BERTH, '--address', daemon.address, 'content', 'rm', digest]);
      execFileSync(process.execPath, [BERTH, '--address', daemon.address, 'content', 'prune']);
    }
    const mibps = (t: number) => sizeMiB / t;
    const result = {
      benchmark: 'content-ingest',
      sizeMiB,
      runs,
      client,
      sha256sum: { medianSeconds: median(hashTimes), MiBps: mibps(median(hashTimes)), samples: hashTimes },
      berthd: { medianSeconds: median(ingestTimes), MiBps: mibps(median(ingestTimes)), samples: ingestTimes },
      // Throughput ratio: berthd's ingest rate over sha256sum's hashing rate (higher is better).
      ratio: median(hashTimes) / median(ingestTimes),
      target: 0.7,
    };
    const row = (name: string, r: { medianSeconds: number; MiBps: number; samples: number[] }) =>
      `${name.padEnd(28)} ${r.medianSeconds.toFixed(2).padStart(8)} s ${r.MiBps.toFixed(0).padStart(7)} MiB/s   min ${Math.min(...r.samples).toFixed(2)} max ${Math.max(...r.samples).toFixed(2)}`;
    process.stdout.write(
      `content ingest of ${sizeMiB} MiB, ${runs} runs (median)\n` +
        `${row(`berthd (${client})`, result.berthd)}\n${row('sha256sum (single core)', result.sha256sum)}\n` +
        `ratio (ingest rate / sha256sum rate): ${result.ratio.toFixed(2)}  (target >= ${result.target})\n`,
    );
    if (values.json) fs.writeFileSync(values.json, JSON.stringify(result, null, 2) + '\n');
  } finally {
    await daemon.kill();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
