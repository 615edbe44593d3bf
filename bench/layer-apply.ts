// Benchmark: pulling and unpacking one large layer with the real `ctr`, into containerd 1.6 (a
// peer started for the run) and into berthd, side by side on the same machine, same registry.
//
//   npm run build && node dist/bench/layer-apply.js [--runs 3] [--quick] [--json FILE]
//
// The layer: a synthetic tree shaped like a Debian rootfs (nested usr/share/doc, usr/lib,
// usr/share/locale…: several thousand small files, some MB-sized libraries and blobs, symlinks,
// hard links), ~180 MB uncompressed, gzip level 6, cached under $XDG_CACHE_HOME/berth-bench (or
// ~/.cache/berth-bench). With BENCH_DEBOOTSTRAP=1 and /usr/sbin/debootstrap installed, a
// `--variant=minbase` rootfs is used instead (needs network; also cached).
//
// Each run, for each daemon (the order alternates between runs), in a fresh namespace:
//   pull    `ctr -n <ns> images pull --plain-http <ref>`: fetch + unpack from nothing.
//   unpack  `ctr -n <ns> snapshots rm <chainID>` (image and content stay), wait until the
//           snapshot directory is gone from disk, then the same pull again, timed: the content
//           is already present, so ctr only resolves the manifest (a few small requests to the
//           local registry), finds every blob local, and unpacks (Diff.Apply into a fresh
//           snapshot, commit). ctr 1.6 has no unpack-only command; this is the closest
//           measurement through the same client, with the same fixed overhead on both sides.
// Then `ctr -n <ns> images rm --sync <ref>` and a check that the namespace has no snapshot left.
import { execFileSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import * as zlib from 'node:zlib';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { encodeHeader, END_OF_ARCHIVE, padding, TypeFlag } from '../snapshotter/tar';
import { startDaemon, cleanup, tempDir, sleep, type TestDaemon } from '../test/helpers/daemon';
import { startRegistry, type TestRegistry } from '../test/helpers/registry';
import { skopeoCopy } from '../test/helpers/images';
import { ctr, startContainerd, unmountUnder, writeOciLayout, type PeerContainerd } from '../test/helpers/containerd';
import { cacheDir, median, metric, reportPeers, rng, standalone, stopPeers, tarEntries, timed, type BenchOptions, type BenchResult } from './common';

const CACHE_FORMAT = 1;

interface CachedLayer {
  gzPath: string;
  diffID: string;
  gzSize: number;
  tarSize: number;
  entries: number;
  files: number;
  source: string;
}



/**
 * The synthetic rootfs as tar chunks. Content comes from two pools: text-like (words, compresses
 * ~3-4x, like docs, scripts and locale files) and binary-like (half random bytes, half zero
 * runs, like shared libraries, ~2x).
 */
function* syntheticRootfs(stats: { entries: number; files: number }): Generator<Buffer> {
  const r = rng(0xbe27);
  const words = ['the', 'package', 'debian', 'copyright', 'license', 'GNU', 'General', 'Public', 'free', 'software', 'version', 'usr', 'lib', 'share',
    'doc', 'changelog', 'upstream', 'maintainer', 'depends', 'libc6', 'amd64', 'config', 'files', 'under', 'terms', 'of', 'Foundation', 'either', '2', '3'];
  const textPool: Buffer[] = [];
  let size = 0;
  while (size < 4 << 20) {
    const line = `${Array.from({ length: 4 + (r() % 10) }, () => words[r() % words.length]).join(' ')}\n`;
    const b = Buffer.from(line);
    textPool.push(b);
    size += b.length;
  }
  const text = Buffer.concat(textPool);
  const bin = Buffer.alloc(8 << 20);
  for (let i = 0; i < bin.length; i += 4096) {
    if ((i >> 12) % 2 === 0) crypto.randomFillSync(bin, i, Math.min(4096, bin.length - i));
  }
  const slice = (pool: Buffer, n: number) => {
    const off = r() % Math.max(1, pool.length - n);
    return pool.subarray(off, off + n);
  };
  const { entry, mkdirs } = tarEntries(1_700_000_000, (type) => {
    stats.entries++;
    if (type === TypeFlag.Reg) stats.files++;
  });
  for (const d of ['bin', 'sbin', 'lib', 'etc', 'var/lib/dpkg/info', 'var/cache', 'tmp', 'root', 'home', 'usr/bin', 'usr/sbin']) yield* mkdirs(d);
  // ~900 packages: docs (copyright, changelog.gz), dpkg info lists, locale catalogs
  for (let p = 0; p < 900; p++) {
    const pkg = `pkg${p.toString(36)}-${words[p % words.length]}`;
    yield* mkdirs(`usr/share/doc/${pkg}`);
    yield* entry(`usr/share/doc/${pkg}/copyright`, TypeFlag.Reg, 0o644, slice(text, 800 + (r() % 12_000)));
    yield* entry(`usr/share/doc/${pkg}/changelog.Debian.gz`, TypeFlag.Reg, 0o644, slice(bin, 300 + (r() % 4000)));
    yield* entry(`var/lib/dpkg/info/${pkg}.list`, TypeFlag.Reg, 0o644, slice(text, 200 + (r() % 3000)));
    yield* entry(`var/lib/dpkg/info/${pkg}.md5sums`, TypeFlag.Reg, 0o644, slice(text, 100 + (r() % 2000)));
    if (p % 3 === 0) {
      const lang = ['de', 'fr', 'es', 'ja', 'ru', 'pt_BR'][p % 6]!;
      yield* mkdirs(`usr/share/locale/${lang}/LC_MESSAGES`);
      yield* entry(`usr/share/locale/${lang}/LC_MESSAGES/${pkg}.mo`, TypeFlag.Reg, 0o644, slice(text, 2000 + (r() % 30_000)));
    }
    if (p % 2 === 0) {
      yield* entry(`usr/bin/${pkg}`, TypeFlag.Reg, 0o755, slice(bin, 10_000 + (r() % 150_000)));
      if (p % 10 === 0) yield* entry(`usr/bin/${pkg}-alias`, TypeFlag.Symlink, 0o777, undefined, pkg);
    }
    if (p % 4 === 1) {
      yield* mkdirs('usr/lib/x86_64-linux-gnu');
      const so = `usr/lib/x86_64-linux-gnu/lib${pkg}.so.1.0.0`;
      yield* entry(so, TypeFlag.Reg, 0o644, slice(bin, 40_000 + (r() % 400_000)));
      yield* entry(`usr/lib/x86_64-linux-gnu/lib${pkg}.so.1`, TypeFlag.Symlink, 0o777, undefined, path.basename(so));
    }
    if (p % 50 === 0) yield* entry(`usr/bin/${pkg}-hardlink`, TypeFlag.Link, 0o755, undefined, `var/lib/dpkg/info/${pkg}.list`);
  }
  // python-ish module trees: many small files in nested dirs
  for (let m = 0; m < 120; m++) {
    const base = `usr/lib/python3/dist-packages/mod${m}/sub${m % 7}`;
    yield* mkdirs(base);
    for (let f = 0; f < 12; f++) yield* entry(`${base}/file${f}.py`, TypeFlag.Reg, 0o644, slice(text, 300 + (r() % 8000)));
  }
  // a few MB-sized files (libc, locale archive, big binaries)
  yield* mkdirs('usr/lib/locale');
  yield* entry('usr/lib/locale/locale-archive', TypeFlag.Reg, 0o644, slice(text, 3_000_000));
  for (let i = 0; i < 12; i++) yield* entry(`usr/lib/x86_64-linux-gnu/libbig${i}.so`, TypeFlag.Reg, 0o644, slice(bin, 1_000_000 + (r() % 3_000_000)));
  yield* mkdirs('etc/apt');
  for (let i = 0; i < 40; i++) yield* entry(`etc/conf${i}.conf`, TypeFlag.Reg, 0o644, slice(text, 100 + (r() % 2000)));
  yield END_OF_ARCHIVE;
}

/** Streams a tar (from chunks) through sha256 (diffID) and gzip into `gzPath`. */
async function compress(chunks: AsyncIterable<Buffer> | Iterable<Buffer>, gzPath: string): Promise<{ diffID: string; tarSize: number; gzSize: number }> {
  const h = crypto.createHash('sha256');
  let tarSize = 0;
  async function* tee() {
    for await (const c of chunks) {
      h.update(c);
      tarSize += c.length;
      yield c;
    }
  }
  const tmp = `${gzPath}.tmp-${process.pid}`;
  await pipeline(Readable.from(tee()), zlib.createGzip({ level: 6 }), fs.createWriteStream(tmp));
  fs.renameSync(tmp, gzPath);
  return { diffID: `sha256:${h.digest('hex')}`, tarSize, gzSize: fs.statSync(gzPath).size };
}

async function buildLayer(): Promise<CachedLayer> {
  const useDebootstrap = process.env.BENCH_DEBOOTSTRAP === '1' && fs.existsSync('/usr/sbin/debootstrap');
  const name = useDebootstrap ? 'debootstrap-minbase' : 'synthetic-rootfs';
  const dir = cacheDir();
  const metaPath = path.join(dir, `${name}.v${CACHE_FORMAT}.json`);
  const gzPath = path.join(dir, `${name}.v${CACHE_FORMAT}.tar.gz`);
  if (fs.existsSync(metaPath) && fs.existsSync(gzPath)) {
    const meta = JSON.parse(fs.readFileSync(metaPath, 'utf8')) as CachedLayer;
    if (fs.statSync(gzPath).size === meta.gzSize) return { ...meta, gzPath };
  }
  const started = Date.now();
  let layer: CachedLayer;
  if (useDebootstrap) {
    const root = tempDir('berth-bench-debootstrap-');
    try {
      execFileSync('/usr/sbin/debootstrap', ['--variant=minbase', 'bookworm', root], { stdio: 'inherit' });
      const tarPath = path.join(dir, `${name}.tar.tmp`);
      execFileSync('tar', ['--numeric-owner', '--xattrs', '--xattrs-include=*', '-C', root, '-cf', tarPath, '.']);
      const entries = execFileSync('tar', ['-tf', tarPath], { maxBuffer: 1 << 28 }).toString().split('\n').filter(Boolean).length;
      const r = await compress(fs.createReadStream(tarPath, { highWaterMark: 1 << 20 }), gzPath);
      fs.rmSync(tarPath, { force: true });
      layer = { gzPath, ...r, entries, files: entries, source: 'debootstrap --variant=minbase bookworm' };
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  } else {
    const stats = { entries: 0, files: 0 };
    const r = await compress(syntheticRootfs(stats), gzPath);
    layer = { gzPath, ...r, ...stats, source: 'synthetic Debian-like rootfs' };
  }
  fs.writeFileSync(metaPath, JSON.stringify(layer, null, 2));
  process.stderr.write(`built ${layer.source}: ${(layer.tarSize / 1e6).toFixed(0)} MB tar, ${(layer.gzSize / 1e6).toFixed(0)} MB gzip, ${layer.entries} entries in ${((Date.now() - started) / 1000).toFixed(1)} s (cached in ${dir})\n`);
  return layer;
}



/** Number of snapshot directories on disk under an overlay snapshotter root (`…/snapshots/<id>`). */
function snapshotDirs(daemonRoot: string): number {
  let n = 0;
  const walk = (d: string, depth: number) => {
    if (depth > 3) return;
    let names: fs.Dirent[];
    try {
      names = fs.readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of names) {
      if (!e.isDirectory()) continue;
      const p = path.join(d, e.name);
      if (e.name === 'snapshots' && /overlay/.test(d)) n += fs.readdirSync(p).filter((x) => /^\d+$/.test(x)).length;
      else walk(p, depth + 1);
    }
  };
  walk(daemonRoot, 0);
  return n;
}

interface Side {
  name: 'containerd' | 'berthd';
  address: string;
  root: string;
  pull: number[];
  unpack: number[];
}

async function oneRun(side: Side, ref: string, chainID: string, ns: string): Promise<void> {
  const opts = { namespace: ns, timeoutMs: 180_000 };
  side.pull.push(await timed(() => ctr(side.address, ['images', 'pull', '--plain-http', ref], opts)));
  const before = snapshotDirs(side.root);
  await ctr(side.address, ['snapshots', '--snapshotter', 'overlayfs', 'rm', chainID], opts);
  // containerd removes snapshot directories in its asynchronous GC: wait for the disk to settle
  const deadline = Date.now() + 30_000;
  while (snapshotDirs(side.root) >= before && Date.now() < deadline) await sleep(50);
  side.unpack.push(await timed(() => ctr(side.address, ['images', 'pull', '--plain-http', ref], opts)));
  await ctr(side.address, ['images', 'rm', '--sync', ref], opts);
  const left = (await ctr(side.address, ['snapshots', '--snapshotter', 'overlayfs', 'ls'], opts)).stdout.split('\n').slice(1).filter((l) => l.trim());
  if (left.length) throw new Error(`${side.name}: snapshots left in namespace ${ns} after images rm --sync: ${left.join('; ')}`);
}

export interface LayerApplyOptions extends BenchOptions {
  /** default 3, quick 1 */
  runs?: number;
}

export async function layerApplyBench(opts: LayerApplyOptions = {}): Promise<BenchResult> {
  const log = opts.log ?? ((s: string) => process.stdout.write(s));
  const runs = Math.max(1, opts.runs ?? (opts.quick ? 1 : 3));
  const layer = await buildLayer();

  let registry: TestRegistry | undefined;
  let containerd: PeerContainerd | undefined;
  let berthd: TestDaemon | undefined;
  let layout: ReturnType<typeof writeOciLayout> | undefined;
  try {
    [registry, containerd, berthd] = await Promise.all([startRegistry(), startContainerd(), startDaemon()]);
    layout = writeOciLayout([{ gz: fs.readFileSync(layer.gzPath), diffID: layer.diffID }], 'bench');
    const ref = `${registry.host}/bench/rootfs:bench`;
    await skopeoCopy(layout, ref);
    layout.remove();
    layout = undefined;
    const chainID = layer.diffID; // a single layer: its chain ID is its diffID

    const sides: Side[] = [
      { name: 'containerd', address: containerd.address, root: containerd.root, pull: [], unpack: [] },
      { name: 'berthd', address: berthd.address, root: berthd.root, pull: [], unpack: [] },
    ];
    // a warm-up pull on each (page cache for the registry's blob, daemons' first-call costs), not measured
    for (const s of sides) {
      await ctr(s.address, ['images', 'pull', '--plain-http', ref], { namespace: 'warmup', timeoutMs: 180_000 });
      await ctr(s.address, ['images', 'rm', '--sync', ref], { namespace: 'warmup' });
    }
    for (let i = 0; i < runs; i++) {
      const order = i % 2 === 0 ? sides : [...sides].reverse();
      for (const s of order) {
        await oneRun(s, ref, chainID, `bench-${i}`);
        log(`run ${i + 1}/${runs} ${s.name.padEnd(10)} pull ${s.pull[i]!.toFixed(2)} s  unpack ${s.unpack[i]!.toFixed(2)} s\n`);
      }
    }

    const [c, b] = sides as [Side, Side];
    const stats = (xs: number[]) => ({ median: median(xs), min: Math.min(...xs), max: Math.max(...xs), samples: xs });
    const ratios = (bs: number[], cs: number[]) => stats(bs.map((x, i) => x / cs[i]!));
    const result = {
      benchmark: 'layer-apply',
      layer: { source: layer.source, tarBytes: layer.tarSize, gzipBytes: layer.gzSize, entries: layer.entries, diffID: layer.diffID },
      runs,
      client: 'ctr (containerd 1.6) images pull --plain-http',
      containerd: { pull: stats(c.pull), unpack: stats(c.unpack) },
      berthd: { pull: stats(b.pull), unpack: stats(b.unpack) },
      // per-run berthd/containerd time ratios (lower is better for berthd)
      ratio: { pull: ratios(b.pull, c.pull), unpack: ratios(b.unpack, c.unpack) },
    };
    const f = (x: number) => x.toFixed(2).padStart(6);
    const line = (label: string, s: { median: number; min: number; max: number }, unit: string) =>
      `${label.padEnd(26)}${f(s.median)}${unit} ${f(s.min)}${unit} ${f(s.max)}${unit}`;
    log(
      `layer apply: ${layer.source}, ${(layer.tarSize / 1e6).toFixed(0)} MB tar / ${(layer.gzSize / 1e6).toFixed(0)} MB gzip, ${layer.entries} entries; ${runs} runs\n` +
        `${''.padEnd(26)}${'median'.padStart(7)} ${'min'.padStart(7)} ${'max'.padStart(7)}\n` +
        `${line('containerd pull', result.containerd.pull, 's')}\n${line('berthd pull', result.berthd.pull, 's')}\n` +
        `${line('containerd unpack', result.containerd.unpack, 's')}\n${line('berthd unpack', result.berthd.unpack, 's')}\n` +
        `${line('ratio berth/ctrd pull', result.ratio.pull, 'x')}\n${line('ratio berth/ctrd unpack', result.ratio.unpack, 'x')}\n`,
    );
    const what = `${(layer.gzSize / 1e6).toFixed(0)} MB gzip, ${layer.entries} entries; ctr on both sides; ${runs} runs`;
    return {
      detail: result,
      metrics: [
        metric('layer apply: pull+unpack one large layer', 's', 'lower', b.pull, c.pull, what),
        metric('layer apply: unpack only (content present)', 's', 'lower', b.unpack, c.unpack, what),
      ],
    };
  } catch (err) {
    reportPeers({ berthd, containerd });
    throw err;
  } finally {
    layout?.remove();
    await stopPeers({ registry, containerd, berthd });
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { runs: { type: 'string' }, quick: { type: 'boolean', default: false }, json: { type: 'string' } } });
  const r = await layerApplyBench({ quick: values.quick, runs: values.runs === undefined ? undefined : Number(values.runs) });
  if (values.json) fs.writeFileSync(values.json, `${JSON.stringify({ ...(r.detail as object), metrics: r.metrics }, null, 2)}\n`);
}

standalone(module, main);
