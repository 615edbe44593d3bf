// Small test images built without network from busybox-static: rootfs tarballs (node-tar), an
// OCI image layout on disk (blobs, index.json with the tag), single- and multi-layer, a
// multi-platform index with a fake second platform, OCI or Docker schema 2 media types. They
// are pushed with skopeo (`oci:<dir>:<tag>` → `docker://…`, optionally converted to v2s2) or with
// our own RegistryClient.
import { execFile } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import * as tar from 'tar';
import {
  MediaType,
  hostPlatform,
  type Descriptor,
  type Platform,
  type RegistryClient,
} from '../../services/remotes';

const sha256 = (b: Buffer | string) => `sha256:${crypto.createHash('sha256').update(b).digest('hex')}`;

export interface TestManifest {
  descriptor: Descriptor;
  bytes: Buffer;
  config: Descriptor;
  layers: Descriptor[];
  diffIDs: string[];
  platform: Platform;
}

export interface TestImage {
  /** The OCI image layout directory. */
  dir: string;
  tag: string;
  /** The manifest, or the index of a multi-platform image. */
  root: Descriptor;
  rootBytes: Buffer;
  manifests: TestManifest[];
  /** Every blob of the image by digest (manifests, index, configs, layers). */
  blobs: Map<string, Buffer>;
  /** Removes the layout directory. */
  remove(): void;
}

export interface BuildOptions {
  tag?: string;
  /** Layers of the host-platform manifest: 1 busybox; 2 + a small file layer; 3 + a big random layer. */
  layers?: 1 | 2 | 3;
  /** Size of the random (incompressible) layer when `layers` is 3. Default 3 MiB. */
  bigLayerBytes?: number;
  mediaTypes?: 'oci' | 'docker';
  /** More than one → an index; the first is built from busybox, the others are fakes. */
  platforms?: Platform[];
}

/** A platform that is not this host's (for the fake half of a multi-platform image). */
export function otherPlatform(): Platform {
  const host = hostPlatform();
  return host.architecture === 'arm64' ? { os: 'linux', architecture: 'amd64' } : { os: 'linux', architecture: 'arm64', variant: 'v8' };
}

async function tarDir(dir: string, entries: string[]): Promise<Buffer> {
  const chunks: Buffer[] = [];
  const stream = tar.c({ cwd: dir, portable: true, noMtime: true }, entries) as unknown as NodeJS.ReadableStream;
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

async function withDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-rootfs-'));
  try {
    return await fn(dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** The busybox rootfs layer: /bin/busybox with a few applet links and /etc/passwd. */
export function busyboxLayerTar(): Promise<Buffer> {
  return withDir(async (dir) => {
    fs.mkdirSync(path.join(dir, 'bin'));
    fs.copyFileSync('/bin/busybox', path.join(dir, 'bin', 'busybox'));
    fs.chmodSync(path.join(dir, 'bin', 'busybox'), 0o755);
    for (const applet of ['sh', 'echo', 'cat', 'ls', 'true', 'sleep']) fs.symlinkSync('busybox', path.join(dir, 'bin', applet));
    fs.mkdirSync(path.join(dir, 'etc'));
    fs.writeFileSync(path.join(dir, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
    return tarDir(dir, ['bin', 'etc']);
  });
}

/** A layer holding small text files. */
export function filesLayerTar(files: Record<string, string | Buffer>): Promise<Buffer> {
  return withDir(async (dir) => {
    const tops = new Set<string>();
    for (const [name, content] of Object.entries(files)) {
      const full = path.join(dir, name);
      fs.mkdirSync(path.dirname(full), { recursive: true });
      fs.writeFileSync(full, content);
      tops.add(name.split('/')[0]!);
    }
    return tarDir(dir, [...tops].sort());
  });
}

function writeBlob(layout: string, blobs: Map<string, Buffer>, bytes: Buffer): string {
  const digest = sha256(bytes);
  fs.writeFileSync(path.join(layout, 'blobs', 'sha256', digest.slice(7)), bytes);
  blobs.set(digest, bytes);
  return digest;
}

/** Builds an image into a new OCI layout directory. */
export async function buildImage(options: BuildOptions = {}): Promise<TestImage> {
  const tag = options.tag ?? 'latest';
  const docker = options.mediaTypes === 'docker';
  const mt = {
    manifest: docker ? MediaType.DockerManifest : MediaType.OciManifest,
    index: docker ? MediaType.DockerManifestList : MediaType.OciIndex,
    config: docker ? MediaType.DockerConfig : MediaType.OciConfig,
    layer: docker ? MediaType.DockerLayerGzip : MediaType.OciLayerGzip,
  };
  const platforms = options.platforms ?? [hostPlatform()];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-oci-'));
  const blobs = new Map<string, Buffer>();
  try {
    fs.mkdirSync(path.join(dir, 'blobs', 'sha256'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    const manifests: TestManifest[] = [];
    for (const [i, platform] of platforms.entries()) {
      const tars: Buffer[] = [];
      if (i === 0) {
        tars.push(await busyboxLayerTar());
        if ((options.layers ?? 1) >= 2) tars.push(await filesLayerTar({ 'etc/berth-release': `berth test image ${tag}\n`, 'srv/hello.txt': 'hello\n' }));
        if ((options.layers ?? 1) >= 3) tars.push(await filesLayerTar({ 'data/random.bin': crypto.randomBytes(options.bigLayerBytes ?? 3 * 1024 * 1024) }));
      } else {
        tars.push(await filesLayerTar({ 'etc/platform': `${platform.os}/${platform.architecture}${platform.variant ? `/${platform.variant}` : ''}\n` }));
      }
      const layers: Descriptor[] = [];
      const diffIDs: string[] = [];
      for (const t of tars) {
        const gz = zlib.gzipSync(t);
        layers.push({ mediaType: mt.layer, digest: writeBlob(dir, blobs, gz), size: gz.length });
        diffIDs.push(sha256(t));
      }
      const configDoc: Record<string, unknown> = {
        created: '2024-01-01T00:00:00Z',
        architecture: platform.architecture,
        os: platform.os,
        config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], Cmd: ['/bin/sh'] },
        rootfs: { type: 'layers', diff_ids: diffIDs },
        history: diffIDs.map((_, n) => ({ created: '2024-01-01T00:00:00Z', created_by: `berth test layer ${n}` })),
      };
      if (platform.variant) configDoc.variant = platform.variant;
      const config = Buffer.from(JSON.stringify(configDoc));
      const configDesc: Descriptor = { mediaType: mt.config, digest: writeBlob(dir, blobs, config), size: config.length };
      const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: mt.manifest, config: configDesc, layers }));
      const desc: Descriptor = { mediaType: mt.manifest, digest: writeBlob(dir, blobs, manifest), size: manifest.length };
      manifests.push({ descriptor: desc, bytes: manifest, config: configDesc, layers, diffIDs, platform });
    }
    let root: Descriptor;
    let rootBytes: Buffer;
    if (manifests.length === 1) {
      root = manifests[0]!.descriptor;
      rootBytes = manifests[0]!.bytes;
    } else {
      rootBytes = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: mt.index,
          manifests: manifests.map((m) => ({ ...m.descriptor, platform: m.platform })),
        }),
      );
      root = { mediaType: mt.index, digest: writeBlob(dir, blobs, rootBytes), size: rootBytes.length };
    }
    fs.writeFileSync(
      path.join(dir, 'index.json'),
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.OciIndex,
        manifests: [{ ...root, annotations: { 'org.opencontainers.image.ref.name': tag } }],
      }),
    );
    return { dir, tag, root, rootBytes, manifests, blobs, remove: () => fs.rmSync(dir, { recursive: true, force: true }) };
  } catch (err) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

export interface SkopeoOptions {
  /** `v2s2` converts to Docker schema 2 media types; default keeps the image's. */
  format?: 'oci' | 'v2s2';
  /** `user:password` for the destination. */
  creds?: string;
  /** Copy every manifest of an index (default true when the image is an index). */
  all?: boolean;
}

/** `skopeo copy oci:<dir>:<tag> docker://<dest>` over plain HTTP (dest like `127.0.0.1:5000/test/busybox:latest`). */
export function skopeoCopy(image: TestImage, dest: string, options: SkopeoOptions = {}): Promise<void> {
  const args = ['--insecure-policy', 'copy', '--quiet', '--dest-tls-verify=false'];
  if (options.format) args.push('--format', options.format);
  if (options.creds) args.push('--dest-creds', options.creds);
  else args.push('--dest-no-creds');
  if (options.all ?? image.manifests.length > 1) args.push('--all');
  args.push(`oci:${image.dir}:${image.tag}`, `docker://${dest}`);
  return new Promise((resolve, reject) => {
    execFile('skopeo', args, { timeout: 120_000, env: { ...process.env, REGISTRY_AUTH_FILE: path.join(image.dir, 'no-auth.json') } }, (err, _out, stderr) => {
      if (err) reject(new Error(`skopeo ${args.join(' ')} failed: ${err.message}\n${stderr}`));
      else resolve();
    });
  });
}

/** `skopeo inspect --raw` of a pushed image: the manifest bytes the registry holds. */
export function skopeoInspectRaw(ref: string, creds?: string): Promise<Buffer> {
  const args = ['--insecure-policy', 'inspect', '--raw', '--tls-verify=false'];
  if (creds) args.push('--creds', creds);
  else args.push('--no-creds');
  args.push(`docker://${ref}`);
  return new Promise((resolve, reject) => {
    execFile('skopeo', args, { timeout: 60_000, encoding: 'buffer' }, (err, out, stderr) => {
      if (err) reject(new Error(`skopeo ${args.join(' ')} failed: ${err.message}\n${stderr.toString()}`));
      else resolve(out);
    });
  });
}

/** Pushes an image with our own client: layers and configs, then manifests, then the index, then the tag. */
export async function pushImage(client: RegistryClient, image: TestImage, ref: string): Promise<void> {
  for (const m of image.manifests) {
    for (const d of [...m.layers, m.config]) {
      await client.push(ref, d, () => image.blobs.get(d.digest)!);
    }
    await client.push(ref, m.descriptor, () => m.bytes);
  }
  if (image.manifests.length > 1) await client.push(ref, image.root, () => image.rootBytes);
  await client.pushTag(ref, image.root, image.rootBytes);
}
