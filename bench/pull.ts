// Benchmark: image pull + unpack, containerd 1.6 (a peer started for the run) against berthd, side
// by side in the same run, from the same local registry.
//
//   npm run build && node dist/bench/pull.js [--runs 5] [--images small,medium,large] [--quick] [--json FILE]
//
// Three images, pushed once with skopeo to a local docker-registry (plain HTTP):
//   small   busybox-static, one layer (~1 MB gzip): test/helpers/images.ts buildImage().
//   medium  five layers of a synthetic Debian-like rootfs, ~100 MB gzip in all, layers of different
//           sizes (base ~40 %, then ~25, 15, 12, 8 %); the upper layers delete some files of the
//           base (whiteouts) and add packages of their own. Built once, cached under
//           $XDG_CACHE_HOME/berth-bench (or ~/.cache/berth-bench).
//   large   medium + a sixth layer holding one 500 MiB file of incompressible data (xorshift32,
//           fixed seed: the same bytes on every machine; gzip level 1), also cached.
// --quick: one run, the small image and, as "large", only the random layer at 16 MiB.
//
// For each image and each run (the order of the three rotates between runs), in a fresh namespace:
//   containerd         `ctr -n <ns> images pull --plain-http <ref>` against containerd: ctr fetches
//                      into containerd's content store, containerd unpacks.
//   berthd (ctr)       the same ctr command against berthd: same client on both sides.
//   berthd (server)    `node dist/cli/main.js --address <sock> -n <ns> images pull --plain-http <ref>`:
//                      berthd fetches and unpacks itself (includes the CLI's Node start-up).
// After each pull: `ctr -n <ns> images rm --sync <ref>` and a check that no snapshot is left.
import { execFile } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import * as zlib from 'node:zlib';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { encodeHeader, END_OF_ARCHIVE, padding, TypeFlag } from '../snapshotter/tar';
import { startDaemon, cleanup, BERTH, type TestDaemon } from '../test/helpers/daemon';
import { startRegistry, type TestRegistry } from '../test/helpers/registry';
import { buildImage, skopeoCopy, type TestImage } from '../test/helpers/images';
import { ctr, startContainerd, unmountUnder, writeOciLayout, type PeerContainerd } from '../test/helpers/containerd';
import { cacheDir, median, metric, randomChunks, reportPeers, rng, standalone, stopPeers, tarEntries, timed, type BenchOptions, type BenchResult, type Metric } from './common';

const CACHE_FORMAT = 1;

interface CachedLayer {
  gzPath: string;
  diffID: string;
  gzSize: number;
  tarSize: number;
  entries: number;
  whiteouts: number;
}



const WORDS = ['the', 'package', 'debian', 'copyright', 'license', 'GNU', 'General', 'Public', 'free', 'software', 'version', 'usr', 'lib', 'share',
  'doc', 'changelog', 'upstream', 'maintainer', 'depends', 'libc6', 'amd64', 'config', 'files', 'under', 'terms', 'of', 'Foundation', 'either', '2', '3'];

/** Content pools: text-like (compresses ~3-4x) and binary-like (half random, half zero runs, ~2x). */
function pools(): { text: Buffer; bin: Buffer } {
  const r = rng(0x9011);
  const parts: Buffer[] = [];
  let size = 0;
  while (size < 4 << 20) {
    const b = Buffer.from(`${Array.from({ length: 4 + (r() % 10) }, () => WORDS[r() % WORDS.length]).join(' ')}\n`);
    parts.push(b);
    size += b.length;
  }
  const bin = Buffer.alloc(8 << 20);
  for (let i = 0; i < bin.length; i += 4096) if ((i >> 12) % 2 === 0) crypto.randomFillSync(bin, i, Math.min(4096, bin.length - i));
  return { text: Buffer.concat(parts), bin };
}

interface LayerSpec {
  /** packages (docs, dpkg info, binaries, libraries, locale catalogs) */
  pkgs: number;
  /** python-ish module trees of 12 small files */
  modules: number;
  /** MB-sized library blobs */
  big: number;
  /** files of the base layer's packages deleted by this layer (whiteouts) */
  deletes: number;
}

// ~40 / 25 / 15 / 12 / 8 % of ~100 MB gzip
const SPECS: LayerSpec[] = [
  { pkgs: 620, modules: 60, big: 6, deletes: 0 },
  { pkgs: 330, modules: 40, big: 5, deletes: 40 },
  { pkgs: 200, modules: 20, big: 3, deletes: 40 },
  { pkgs: 160, modules: 20, big: 2, deletes: 40 },
  { pkgs: 110, modules: 10, big: 1, deletes: 40 },
];

const pkgName = (layer: number, p: number) => `pkg${layer}-${p.toString(36)}-${WORDS[p % WORDS.length]}`;

/** One layer of the synthetic rootfs as tar chunks (each layer carries its own parent directories). */
function* syntheticLayer(layer: number, spec: LayerSpec, pool: { text: Buffer; bin: Buffer }, stats: { entries: number; whiteouts: number }): Generator<Buffer> {
  const r = rng(0xbe27 + layer * 7919);
  const { text, bin } = pool;
  const slice = (b: Buffer, n: number) => {
    const off = r() % Math.max(1, b.length - n);
    return b.subarray(off, off + n);
  };
  const { entry, mkdirs } = tarEntries(1_700_000_000 + layer * 86_400, () => stats.entries++);
  if (layer === 0) for (const d of ['bin', 'sbin', 'lib', 'etc', 'var/lib/dpkg/info', 'var/cache', 'tmp', 'root', 'home', 'usr/bin', 'usr/sbin']) yield* mkdirs(d);
  // deletions of base-layer files: the way apt removes docs and packages in later layers
  for (let k = 0; k < spec.deletes; k++) {
    const victim = pkgName(0, (layer * 97 + k * 13) % SPECS[0]!.pkgs);
    yield* mkdirs(`usr/share/doc/${victim}`);
    yield* entry(`usr/share/doc/${victim}/.wh.changelog.Debian.gz`, TypeFlag.Reg, 0o644);
    stats.whiteouts++;
    if (k % 4 === 0) {
      yield* mkdirs('var/lib/dpkg/info');
      yield* entry(`var/lib/dpkg/info/.wh.${victim}.md5sums`, TypeFlag.Reg, 0o644);
      stats.whiteouts++;
    }
  }
  // an updated dpkg status in every layer, as apt leaves it
  yield* mkdirs('var/lib/dpkg');
  yield* entry('var/lib/dpkg/status', TypeFlag.Reg, 0o644, slice(text, 200_000 + layer * 50_000));
  for (let p = 0; p < spec.pkgs; p++) {
    const pkg = pkgName(layer, p);
    yield* mkdirs(`usr/share/doc/${pkg}`);
    yield* entry(`usr/share/doc/${pkg}/copyright`, TypeFlag.Reg, 0o644, slice(text, 800 + (r() % 12_000)));
    yield* entry(`usr/share/doc/${pkg}/changelog.Debian.gz`, TypeFlag.Reg, 0o644, slice(bin, 300 + (r() % 4000)));
    yield* mkdirs('var/lib/dpkg/info');
    yield* entry(`var/lib/dpkg/info/${pkg}.list`, TypeFlag.Reg, 0o644, slice(text, 200 + (r() % 3000)));
    yield* entry(`var/lib/dpkg/info/${pkg}.md5sums`, TypeFlag.Reg, 0o644, slice(text, 100 + (r() % 2000)));
    if (p % 3 === 0) {
      const lang = ['de', 'fr', 'es', 'ja', 'ru', 'pt_BR'][p % 6]!;
      yield* mkdirs(`usr/share/locale/${lang}/LC_MESSAGES`);
      yield* entry(`usr/share/locale/${lang}/LC_MESSAGES/${pkg}.mo`, TypeFlag.Reg, 0o644, slice(text, 2000 + (r() % 30_000)));
    }
    if (p % 2 === 0) {
      yield* mkdirs('usr/bin');
      yield* entry(`usr/bin/${pkg}`, TypeFlag.Reg, 0o755, slice(bin, 10_000 + (r() % 150_000)));
      if (p % 10 === 0) yield* entry(`usr/bin/${pkg}-alias`, TypeFlag.Symlink, 0o777, undefined, pkg);
    }
    if (p % 4 === 1) {
      yield* mkdirs('usr/lib/x86_64-linux-gnu');
      const so = `usr/lib/x86_64-linux-gnu/lib${pkg}.so.1.0.0`;
      yield* entry(so, TypeFlag.Reg, 0o644, slice(bin, 40_000 + (r() % 400_000)));
      yield* entry(`usr/lib/x86_64-linux-gnu/lib${pkg}.so.1`, TypeFlag.Symlink, 0o777, undefined, path.basename(so));
    }
    if (p % 50 === 0) {
      yield* mkdirs('usr/bin');
      yield* entry(`usr/bin/${pkg}-hardlink`, TypeFlag.Link, 0o755, undefined, `var/lib/dpkg/info/${pkg}.list`);
    }
  }
  for (let m = 0; m < spec.modules; m++) {
    const base = `usr/lib/python3/dist-packages/mod${layer}x${m}/sub${m % 7}`;
    yield* mkdirs(base);
    for (let f = 0; f < 12; f++) yield* entry(`${base}/file${f}.py`, TypeFlag.Reg, 0o644, slice(text, 300 + (r() % 8000)));
  }
  if (layer === 0) {
    yield* mkdirs('usr/lib/locale');
    yield* entry('usr/lib/locale/locale-archive', TypeFlag.Reg, 0o644, slice(text, 3_000_000));
    yield* mkdirs('etc/apt');
    for (let i = 0; i < 40; i++) yield* entry(`etc/conf${i}.conf`, TypeFlag.Reg, 0o644, slice(text, 100 + (r() % 2000)));
  }
  if (spec.big) yield* mkdirs('usr/lib/x86_64-linux-gnu');
  for (let i = 0; i < spec.big; i++) yield* entry(`usr/lib/x86_64-linux-gnu/libbig${layer}x${i}.so`, TypeFlag.Reg, 0o644, slice(bin, 1_000_000 + (r() % 3_000_000)));
  yield END_OF_ARCHIVE;
}

/** Streams a tar (from chunks) through sha256 (diffID) and gzip into `gzPath`. */
async function compress(chunks: Iterable<Buffer>, gzPath: string, level = 6): Promise<{ diffID: string; tarSize: number; gzSize: number }> {
  const h = crypto.createHash('sha256');
  let tarSize = 0;
  function* tee() {
    for (const c of chunks) {
      h.update(c);
      tarSize += c.length;
      yield c;
    }
  }
  const tmp = `${gzPath}.tmp-${process.pid}`;
  try {
    await pipeline(Readable.from(tee()), zlib.createGzip({ level }), fs.createWriteStream(tmp));
    fs.renameSync(tmp, gzPath);
  } finally {
    fs.rmSync(tmp, { force: true });
  }
  return { diffID: `sha256:${h.digest('hex')}`, tarSize, gzSize: fs.statSync(gzPath).size };
}

async function buildMediumLayers(): Promise<CachedLayer[]> {
  const dir = cacheDir();
  const name = `pull-synthetic-5layer.v${CACHE_FORMAT}`;
  const metaPath = path.join(dir, `${name}.json`);
  if (fs.existsSync(metaPath)) {
    const meta = JSON.parse(fs.readFileSync(metaPath, 'utf8')) as CachedLayer[];
    if (meta.length === SPECS.length && meta.every((l) => fs.existsSync(l.gzPath) && fs.statSync(l.gzPath).size === l.gzSize)) return meta;
  }
  const started = Date.now();
  const pool = pools();
  // gzip runs on libuv's threads: the five layers compress in parallel
  const layers = await Promise.all(
    SPECS.map(async (spec, i) => {
      const gzPath = path.join(dir, `${name}.layer${i}.tar.gz`);
      const stats = { entries: 0, whiteouts: 0 };
      const r = await compress(syntheticLayer(i, spec, pool, stats), gzPath);
      return { gzPath, ...r, ...stats };
    }),
  );
  fs.writeFileSync(metaPath, JSON.stringify(layers, null, 2));
  const sum = (f: (l: CachedLayer) => number) => layers.reduce((a, l) => a + f(l), 0);
  process.stderr.write(
    `built 5-layer synthetic rootfs: ${(sum((l) => l.tarSize) / 1e6).toFixed(0)} MB tar, ${(sum((l) => l.gzSize) / 1e6).toFixed(0)} MB gzip, ` +
      `${sum((l) => l.entries)} entries in ${((Date.now() - started) / 1000).toFixed(1)} s (cached in ${dir})\n`,
  );
  return layers;
}



/** One layer: a single file `data/random.bin` of `mib` MiB of incompressible, deterministic bytes. Cached. */
export async function buildRandomLayer(mib: number): Promise<CachedLayer> {
  const dir = cacheDir();
  const name = `pull-random-${mib}mib.v${CACHE_FORMAT}`;
  const metaPath = path.join(dir, `${name}.json`);
  const gzPath = path.join(dir, `${name}.tar.gz`);
  if (fs.existsSync(metaPath) && fs.existsSync(gzPath)) {
    const meta = JSON.parse(fs.readFileSync(metaPath, 'utf8')) as CachedLayer;
    if (fs.statSync(gzPath).size === meta.gzSize) return { ...meta, gzPath };
  }
  const started = Date.now();
  const bytes = mib * 1048576;
  const mtime = 1_700_000_000;
  function* chunks(): Generator<Buffer> {
    yield encodeHeader({ name: 'data/', type: TypeFlag.Dir, mode: 0o755, uid: 0, gid: 0, size: 0, mtime });
    yield encodeHeader({ name: 'data/random.bin', type: TypeFlag.Reg, mode: 0o644, uid: 0, gid: 0, size: bytes, mtime });
    yield* randomChunks(0x5eed0500, bytes);
    yield padding(bytes);
    yield END_OF_ARCHIVE;
  }
  const r = await compress(chunks(), gzPath, 1);
  const layer: CachedLayer = { gzPath, ...r, entries: 2, whiteouts: 0 };
  fs.writeFileSync(metaPath, JSON.stringify(layer, null, 2));
  process.stderr.write(`built ${mib} MiB random layer: ${(r.gzSize / 1e6).toFixed(0)} MB gzip in ${((Date.now() - started) / 1000).toFixed(1)} s (cached in ${dir})\n`);
  return layer;
}

/** `node dist/cli/main.js --address <sock> -n <ns> …args` */
function berth(address: string, ns: string, args: string[], timeoutMs = 180_000): Promise<void> {
  const full = [BERTH, '--address', address, '-n', ns, ...args];
  return new Promise((resolve, reject) => {
    execFile(process.execPath, full, { timeout: timeoutMs, maxBuffer: 1 << 26 }, (err, _out, stderr) => {
      if (err) reject(new Error(`berth ${full.slice(1).join(' ')} failed: ${err.message}\n${stderr}`));
      else resolve();
    });
  });
}

type ModeName = 'containerd' | 'berthd-ctr' | 'berthd-server';

interface Mode {
  name: ModeName;
  label: string;
  /** the daemon whose namespace holds the result (ctr is used for rm and the check on both) */
  address: string;
  pull(ref: string, ns: string): Promise<unknown>;
}

type ImageKey = 'small' | 'medium' | 'large';

interface Bench {
  key: ImageKey;
  description: string;
  ref: string;
  layers: number;
  gzipBytes: number;
  tarBytes: number;
  times: Record<ModeName, number[]>;
}

async function pullOnce(mode: Mode, ref: string, ns: string): Promise<number> {
  const t = await timed(() => mode.pull(ref, ns));
  await ctr(mode.address, ['images', 'rm', '--sync', ref], { namespace: ns, timeoutMs: 60_000 });
  const left = (await ctr(mode.address, ['snapshots', '--snapshotter', 'overlayfs', 'ls'], { namespace: ns })).stdout
    .split('\n')
    .slice(1)
    .filter((l) => l.trim());
  if (left.length) throw new Error(`${mode.name}: snapshots left in namespace ${ns} after images rm --sync: ${left.join('; ')}`);
  return t;
}

export interface PullOptions extends BenchOptions {
  /** default 5, quick 1 */
  runs?: number;
  /** default small, medium, large; quick small, large */
  images?: ImageKey[];
  /** size of the random layer of "large" (default 500 MiB, quick 16 MiB) */
  randomMiB?: number;
}

export async function pullBench(opts: PullOptions = {}): Promise<BenchResult> {
  const log = opts.log ?? ((s: string) => process.stdout.write(s));
  const quick = !!opts.quick;
  const runs = Math.max(1, opts.runs ?? (quick ? 1 : 5));
  const wanted = new Set<ImageKey>(opts.images ?? (quick ? ['small', 'large'] : ['small', 'medium', 'large']));
  const randomMiB = opts.randomMiB ?? (quick ? 16 : 500);
  // quick: "large" is the random layer alone (no medium underneath)
  const largeOnMedium = !quick;
  const started = Date.now();
  const mediumLayers = wanted.has('medium') || (wanted.has('large') && largeOnMedium) ? await buildMediumLayers() : [];
  const randomLayer = wanted.has('large') ? await buildRandomLayer(randomMiB) : undefined;

  let registry: TestRegistry | undefined;
  let containerd: PeerContainerd | undefined;
  let berthd: TestDaemon | undefined;
  const layouts: TestImage[] = [];
  try {
    // allSettled: if one fails to start, the others are still stopped in `finally`
    const [rs, cs, bs] = await Promise.allSettled([startRegistry(), startContainerd(), startDaemon()]);
    if (rs.status === 'fulfilled') registry = rs.value;
    if (cs.status === 'fulfilled') containerd = cs.value;
    if (bs.status === 'fulfilled') berthd = bs.value;
    for (const s of [rs, cs, bs]) if (s.status === 'rejected') throw s.reason;
    if (!registry || !containerd || !berthd) throw new Error('unreachable');
    const small = await buildImage({ tag: 'bench' });
    layouts.push(small);
    const smallRef = `${registry.host}/bench/busybox:bench`;
    const mediumRef = `${registry.host}/bench/rootfs5:bench`;
    const largeRef = `${registry.host}/bench/rootfs5-random:bench`;
    const copies: Promise<void>[] = [];
    if (wanted.has('small')) copies.push(skopeoCopy(small, smallRef));
    const gzOf = (l: CachedLayer) => ({ gz: fs.readFileSync(l.gzPath), diffID: l.diffID });
    if (wanted.has('medium')) {
      const medium = writeOciLayout(mediumLayers.map(gzOf), 'bench');
      layouts.push(medium);
      copies.push(skopeoCopy(medium, mediumRef));
    }
    if (wanted.has('large')) {
      const large = writeOciLayout([...(largeOnMedium ? mediumLayers : []), randomLayer!].map(gzOf), 'bench');
      layouts.push(large);
      copies.push(skopeoCopy(large, largeRef));
    }
    await Promise.all(copies);
    const smallLayer = small.manifests[0]!.layers[0]!;
    for (const l of layouts.splice(0)) l.remove();

    const c = containerd;
    const b = berthd;
    const ctrOpts = (ns: string) => ({ namespace: ns, timeoutMs: 180_000 });
    const modes: Mode[] = [
      { name: 'containerd', label: 'containerd (ctr)', address: c.address, pull: (ref, ns) => ctr(c.address, ['images', 'pull', '--plain-http', ref], ctrOpts(ns)) },
      { name: 'berthd-ctr', label: 'berthd (ctr)', address: b.address, pull: (ref, ns) => ctr(b.address, ['images', 'pull', '--plain-http', ref], ctrOpts(ns)) },
      { name: 'berthd-server', label: 'berthd (server pull)', address: b.address, pull: (ref, ns) => berth(b.address, ns, ['images', 'pull', '--plain-http', ref]) },
    ];
    const empty = (): Record<ModeName, number[]> => ({ containerd: [], 'berthd-ctr': [], 'berthd-server': [] });
    const largeLayers = randomLayer ? [...(largeOnMedium ? mediumLayers : []), randomLayer] : [];
    const benches: Bench[] = [
      { key: 'small' as const, description: 'busybox-static, 1 layer', ref: smallRef, layers: 1, gzipBytes: smallLayer.size, tarBytes: 0, times: empty() },
      {
        key: 'medium' as const,
        description: 'synthetic Debian-like rootfs, 5 layers',
        ref: mediumRef,
        layers: mediumLayers.length,
        gzipBytes: mediumLayers.reduce((a, l) => a + l.gzSize, 0),
        tarBytes: mediumLayers.reduce((a, l) => a + l.tarSize, 0),
        times: empty(),
      },
      {
        key: 'large' as const,
        description: `${largeOnMedium ? 'medium + ' : ''}a ${randomMiB} MiB layer of random data, ${largeLayers.length} layer${largeLayers.length > 1 ? 's' : ''}`,
        ref: largeRef,
        layers: largeLayers.length,
        gzipBytes: largeLayers.reduce((a, l) => a + l.gzSize, 0),
        tarBytes: largeLayers.reduce((a, l) => a + l.tarSize, 0),
        times: empty(),
      },
    ].filter((b) => wanted.has(b.key));

    // warm-up, not measured: page cache for the registry's blobs, daemons' and clients' first-call costs
    for (const bench of benches) for (const m of modes) await pullOnce(m, bench.ref, `warmup-${bench.key}-${m.name}`);

    for (let i = 0; i < runs; i++) {
      const order = [...modes.slice(i % modes.length), ...modes.slice(0, i % modes.length)];
      if (i % 2 === 1) order.reverse();
      for (const bench of benches) {
        const line: string[] = [];
        for (const m of order) {
          const t = await pullOnce(m, bench.ref, `bench-${bench.key}-${i}-${m.name}`);
          bench.times[m.name].push(t);
          line.push(`${m.name} ${t.toFixed(3)} s`);
        }
        log(`run ${i + 1}/${runs} ${bench.key.padEnd(6)} ${line.join('  ')}\n`);
      }
    }

    const stats = (xs: number[]) => ({ median: median(xs), min: Math.min(...xs), max: Math.max(...xs), samples: xs });
    const ratios = (xs: number[], cs: number[]) => stats(xs.map((x, i) => x / cs[i]!));
    const result = {
      benchmark: 'pull',
      runs,
      registry: 'docker-registry on loopback, plain HTTP',
      images: Object.fromEntries(
        benches.map((bench) => [
          bench.key,
          {
            description: bench.description,
            layers: bench.layers,
            gzipBytes: bench.gzipBytes,
            ...(bench.tarBytes ? { tarBytes: bench.tarBytes } : {}),
            seconds: {
              containerd: stats(bench.times.containerd),
              berthdCtr: stats(bench.times['berthd-ctr']),
              berthdServer: stats(bench.times['berthd-server']),
            },
            // per-run time ratios against containerd in the same run (lower is better for berthd)
            ratio: {
              berthdCtrToContainerd: ratios(bench.times['berthd-ctr'], bench.times.containerd),
              berthdServerToContainerd: ratios(bench.times['berthd-server'], bench.times.containerd),
            },
          },
        ]),
      ),
      clients: {
        containerd: 'ctr (containerd 1.6) images pull --plain-http',
        berthdCtr: 'ctr (containerd 1.6) images pull --plain-http',
        berthdServer: 'node dist/cli/main.js images pull --plain-http (the daemon fetches)',
      },
      totalSeconds: (Date.now() - started) / 1000,
    };

    const f = (x: number, d = 3) => x.toFixed(d).padStart(7);
    const row = (label: string, s: { median: number; min: number; max: number }, unit: string, d = 3) =>
      `  ${label.padEnd(30)}${f(s.median, d)}${unit} ${f(s.min, d)}${unit} ${f(s.max, d)}${unit}\n`;
    let out = `image pull + unpack from a local registry, ${runs} runs (order rotating), fresh namespace each\n`;
    for (const bench of benches) {
      const r = result.images[bench.key]!;
      out +=
        `${bench.key}: ${bench.description}, ${(bench.gzipBytes / 1e6).toFixed(1)} MB gzip${bench.tarBytes ? ` / ${(bench.tarBytes / 1e6).toFixed(0)} MB tar` : ''}\n` +
        `  ${''.padEnd(30)}${'median'.padStart(8)} ${'min'.padStart(8)} ${'max'.padStart(8)}\n` +
        row('containerd (ctr pull)', r.seconds.containerd, 's') +
        row('berthd (ctr pull)', r.seconds.berthdCtr, 's') +
        row('berthd (server pull, CLI)', r.seconds.berthdServer, 's') +
        row('ratio berth(ctr)/containerd', r.ratio.berthdCtrToContainerd, 'x', 2) +
        row('ratio berth(server)/containerd', r.ratio.berthdServerToContainerd, 'x', 2);
    }
    out +=
      'notes: ctr\'s pull returns on its 100 ms progress tick, so the small pull is dominated by the client\n' +
      '       (both ctr rows carry that quantum); the server pull includes the berth CLI\'s Node start-up (~0.1 s).\n' +
      `       total ${result.totalSeconds.toFixed(0)} s\n`;
    log(out);
    const metrics: Metric[] = [];
    for (const bench of benches) {
      const size = `${(bench.gzipBytes / 1e6).toFixed(bench.gzipBytes < 1e7 ? 1 : 0)} MB gzip, ${bench.layers} layer${bench.layers > 1 ? 's' : ''}`;
      metrics.push(
        metric(`pull+unpack ${bench.key} (ctr pulls)`, 's', 'lower', bench.times['berthd-ctr'], bench.times.containerd, `${size}; ctr on both sides; ${runs} runs`),
        metric(`pull+unpack ${bench.key} (berth server pull)`, 's', 'lower', bench.times['berthd-server'], bench.times.containerd, `${size}; berth CLI (incl. its Node start-up) vs ctr`),
      );
    }
    return { detail: result, metrics };
  } catch (err) {
    reportPeers({ berthd, containerd });
    throw err;
  } finally {
    for (const l of layouts) l.remove();
    await stopPeers({ registry, containerd, berthd });
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { runs: { type: 'string' }, images: { type: 'string' }, quick: { type: 'boolean', default: false }, json: { type: 'string' } } });
  const r = await pullBench({
    quick: values.quick,
    runs: values.runs === undefined ? undefined : Number(values.runs),
    images: values.images ? (values.images.split(',') as ImageKey[]) : undefined,
  });
  if (values.json) fs.writeFileSync(values.json, `${JSON.stringify({ ...(r.detail as object), metrics: r.metrics }, null, 2)}\n`);
}

standalone(module, main);
