// The real containerd (Debian's /usr/bin/containerd, 1.6) as a peer for side-by-side tests and
// benchmarks: its own root, state, gRPC and ttrpc sockets in a temporary directory, the CRI
// plugin disabled, the overlayfs snapshotter. Stopped by pid (TERM, then KILL); everything still
// mounted under its directory is unmounted (lazily) and the directory removed. It never touches
// /run/containerd itself (only the shims containerd would start put sockets there; tests that run
// tasks clean up after them), nor /var/lib/containerd, nor /opt/containerd (the opt plugin is
// pointed inside). `pathPrepend` lets containerd find another runtime's shim (Berth's).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { MediaType, hostPlatform, type Descriptor } from '../../services/remotes';
import { connectable, sleep, tempDir } from './daemon';
import type { TestImage } from './images';

export const CONTAINERD_BIN = process.env.CONTAINERD ?? '/usr/bin/containerd';
export const CTR_BIN = process.env.CTR ?? '/usr/bin/ctr';

export function containerdAvailable(): boolean {
  try {
    fs.accessSync(CONTAINERD_BIN, fs.constants.X_OK);
    fs.accessSync(CTR_BIN, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** TOML basic string. */
const q = (s: string) => JSON.stringify(s);

export interface PeerOptions {
  /**
   * Directories put in front of containerd's PATH (and so of the shims' it starts): containerd
   * resolves runtime `io.containerd.X.vN` to `containerd-shim-X-vN` there.
   */
  pathPrepend?: string[];
}

export class PeerContainerd {
  stderr = '';
  private proc: ChildProcess | undefined;
  private exitPromise: Promise<void> = Promise.resolve();

  constructor(
    readonly dir: string,
    readonly options: PeerOptions = {},
  ) {}

  get root(): string {
    return path.join(this.dir, 'root');
  }
  get state(): string {
    return path.join(this.dir, 'state');
  }
  get address(): string {
    return path.join(this.dir, 'containerd.sock');
  }
  get ttrpcAddress(): string {
    return path.join(this.dir, 'containerd-ttrpc.sock');
  }
  get configPath(): string {
    return path.join(this.dir, 'config.toml');
  }
  get pid(): number | undefined {
    return this.proc?.pid;
  }
  get running(): boolean {
    return !!this.proc && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  config(): string {
    return [
      'version = 2',
      `root = ${q(this.root)}`,
      `state = ${q(this.state)}`,
      'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
      '',
      '[grpc]',
      `  address = ${q(this.address)}`,
      '',
      '[ttrpc]',
      `  address = ${q(this.ttrpcAddress)}`,
      '',
      '[debug]',
      '  level = "warn"',
      '',
      '[plugins]',
      '  [plugins."io.containerd.internal.v1.opt"]',
      `    path = ${q(path.join(this.dir, 'opt'))}`,
      '  [plugins."io.containerd.service.v1.diff-service"]',
      '    default = ["walking"]',
      '  [plugins."io.containerd.snapshotter.v1.overlayfs"]',
      `    root_path = ${q(path.join(this.root, 'io.containerd.snapshotter.v1.overlayfs'))}`,
      '',
    ].join('\n');
  }

  async start(timeoutMs = 20_000): Promise<void> {
    fs.mkdirSync(this.root, { recursive: true });
    fs.mkdirSync(this.state, { recursive: true });
    fs.writeFileSync(this.configPath, this.config());
    const env = { ...process.env };
    if (this.options.pathPrepend?.length) env.PATH = [...this.options.pathPrepend, env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'].join(':');
    const proc = spawn(CONTAINERD_BIN, ['--config', this.configPath], { stdio: ['ignore', 'ignore', 'pipe'], env });
    this.proc = proc;
    this.stderr = '';
    proc.stderr!.on('data', (d: Buffer) => {
      this.stderr += d.toString();
      if (this.stderr.length > 200_000) this.stderr = this.stderr.slice(-100_000);
    });
    this.exitPromise = new Promise((resolve) => proc.once('exit', () => resolve()));
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (!this.running) throw new Error(`containerd exited (${proc.exitCode ?? proc.signalCode}): ${this.stderr.slice(-4000)}`);
      if (await connectable(this.address)) return;
      if (Date.now() > deadline) throw new Error(`containerd did not start in time: ${this.stderr.slice(-4000)}`);
      await sleep(25);
    }
  }

  /** SIGTERM, SIGKILL after `graceMs`; waits for the exit. */
  async terminate(graceMs = 10_000): Promise<void> {
    if (!this.running) return;
    const pid = this.proc!.pid!;
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      // gone
    }
    let timer: NodeJS.Timeout | undefined;
    const stopped = await Promise.race([
      this.exitPromise.then(() => true),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), graceMs);
      }),
    ]);
    clearTimeout(timer);
    if (!stopped && this.running) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
      await this.exitPromise;
    }
  }

  /** Sends `signal` to the daemon (by its pid) and waits for it to exit: a crash, as far as its shims can tell. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (!this.running) return;
    try {
      process.kill(this.proc!.pid!, signal);
    } catch {
      // gone
    }
    await this.exitPromise;
  }

  /** Stops the daemon, unmounts whatever is still mounted under its directory, removes it. */
  async stop(): Promise<void> {
    await this.terminate();
    unmountUnder(this.dir);
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Mount points under `prefix` (from /proc/mounts, octal escapes decoded), deepest first. */
export function mountsUnder(prefix: string): string[] {
  const base = prefix.replace(/\/+$/, '');
  const out: string[] = [];
  for (const line of fs.readFileSync('/proc/mounts', 'utf8').split('\n')) {
    const target = line.split(' ')[1];
    if (!target) continue;
    const decoded = target.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    if (decoded === base || decoded.startsWith(`${base}/`)) out.push(decoded);
  }
  return out.sort((a, b) => b.length - a.length);
}

/** Lazily unmounts everything mounted at or below `prefix`. */
export function unmountUnder(prefix: string): void {
  for (let round = 0; round < 5; round++) {
    const targets = mountsUnder(prefix);
    if (targets.length === 0) return;
    for (const t of targets) {
      try {
        execFileSync('umount', ['-l', t], { stdio: 'ignore' });
      } catch {
        // raced with another unmount
      }
    }
  }
}

export async function startContainerd(dir = tempDir('berth-containerd-'), options: PeerOptions = {}): Promise<PeerContainerd> {
  const c = new PeerContainerd(dir, options);
  try {
    await c.start();
  } catch (err) {
    await c.stop();
    throw err;
  }
  return c;
}

// ---- side-by-side helpers: ctr, chain IDs, single-manifest OCI layouts, mounting what ctr prints ----

export interface CtrResult {
  stdout: string;
  stderr: string;
  code: number | null;
}

/** Runs `ctr --address <address> …args`; rejects (with stderr) on a non-zero exit unless `allowFail`. */
export function ctr(address: string, args: string[], opts: { timeoutMs?: number; allowFail?: boolean; namespace?: string } = {}): Promise<CtrResult> {
  const full = ['--address', address];
  if (opts.namespace) full.push('--namespace', opts.namespace);
  full.push(...args);
  return new Promise((resolve, reject) => {
    const p = spawn(CTR_BIN, full, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => p.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
    p.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    p.on('exit', (code) => {
      clearTimeout(timer);
      if (code !== 0 && !opts.allowFail) reject(new Error(`ctr ${full.join(' ')} exited ${code}: ${stderr.trim()}`));
      else resolve({ stdout, stderr, code });
    });
  });
}

const sha256hex = (b: Buffer | string) => crypto.createHash('sha256').update(b).digest('hex');

/** The chain IDs of a layer stack (identity for the first; sha256("<parent> <diffID>") after). */
export function chainIDs(diffIDs: string[]): string[] {
  const out: string[] = [];
  for (const d of diffIDs) out.push(out.length === 0 ? d : `sha256:${sha256hex(`${out[out.length - 1]} ${d}`)}`);
  return out;
}

export interface LayoutImage extends TestImage {
  diffIDs: string[];
  chainIDs: string[];
}

/**
 * Writes a single-manifest OCI image layout (gzip layers, OCI media types, host platform) from
 * uncompressed layer tars (or already-compressed ones with their diffIDs), ready for `skopeoCopy`.
 */
export function writeOciLayout(
  layers: Array<Buffer | { gz: Buffer; diffID: string }>,
  tag = 'latest',
  dir = tempDir('berth-oci-'),
): LayoutImage {
  const blobs = new Map<string, Buffer>();
  fs.mkdirSync(path.join(dir, 'blobs', 'sha256'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  const put = (bytes: Buffer): string => {
    const hex = sha256hex(bytes);
    fs.writeFileSync(path.join(dir, 'blobs', 'sha256', hex), bytes);
    blobs.set(`sha256:${hex}`, bytes);
    return `sha256:${hex}`;
  };
  const platform = hostPlatform();
  const descs: Descriptor[] = [];
  const diffIDs: string[] = [];
  for (const l of layers) {
    const { gz, diffID } = Buffer.isBuffer(l) ? { gz: zlib.gzipSync(l), diffID: `sha256:${sha256hex(l)}` } : l;
    descs.push({ mediaType: MediaType.OciLayerGzip, digest: put(gz), size: gz.length });
    diffIDs.push(diffID);
  }
  const config = Buffer.from(
    JSON.stringify({
      created: '2024-01-01T00:00:00Z',
      architecture: platform.architecture,
      os: platform.os,
      ...(platform.variant ? { variant: platform.variant } : {}),
      config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], Cmd: ['/bin/sh'] },
      rootfs: { type: 'layers', diff_ids: diffIDs },
      history: diffIDs.map((_, n) => ({ created: '2024-01-01T00:00:00Z', created_by: `berth side-by-side layer ${n}` })),
    }),
  );
  const configDesc: Descriptor = { mediaType: MediaType.OciConfig, digest: put(config), size: config.length };
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciManifest, config: configDesc, layers: descs }));
  const root: Descriptor = { mediaType: MediaType.OciManifest, digest: put(manifest), size: manifest.length };
  fs.writeFileSync(
    path.join(dir, 'index.json'),
    JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [{ ...root, annotations: { 'org.opencontainers.image.ref.name': tag } }] }),
  );
  return {
    dir,
    tag,
    root,
    rootBytes: manifest,
    manifests: [{ descriptor: root, bytes: manifest, config: configDesc, layers: descs, diffIDs, platform }],
    blobs,
    diffIDs,
    chainIDs: chainIDs(diffIDs),
    remove: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}

/**
 * Runs the `mount -t … <src> <target> -o …` line `ctr snapshots mounts <target> <key>` printed
 * (one line per mount), without a shell.
 */
export function runMountLines(output: string, target: string): void {
  fs.mkdirSync(target, { recursive: true });
  const lines = output.split('\n').map((l) => l.trim()).filter(Boolean);
  if (lines.length === 0) throw new Error(`ctr printed no mount command for ${target}`);
  for (const line of lines) {
    const args = line.split(/\s+/);
    if (args[0] !== 'mount') throw new Error(`unexpected mount line: ${line}`);
    execFileSync('mount', args.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
  }
}

/**
 * `ctr snapshots view <key> <parent>`, pinned with a `containerd.io/gc.root` label. ctr creates
 * the view without a lease, so containerd's garbage collector (scheduled by the pull's lease
 * removal a moment earlier) may remove it before it is labelled; then it is created again.
 */
export async function viewPinned(address: string, key: string, parent: string, snapshotter = 'overlayfs'): Promise<void> {
  let last = '';
  for (let attempt = 0; attempt < 5; attempt++) {
    const v = await ctr(address, ['snapshots', '--snapshotter', snapshotter, 'view', key, parent], { allowFail: true });
    if (v.code !== 0 && !/already exists/.test(v.stderr)) throw new Error(`ctr snapshots view ${key} ${parent}: ${v.stderr.trim()}`);
    const l = await ctr(address, ['snapshots', '--snapshotter', snapshotter, 'label', key, `containerd.io/gc.root=${new Date().toISOString()}`], { allowFail: true });
    if (l.code === 0) return;
    last = l.stderr.trim();
    await sleep(100);
  }
  throw new Error(`could not create a pinned view ${key} of ${parent}: ${last}`);
}
