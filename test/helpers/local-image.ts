// Builds a small single-layer image (busybox) straight into a daemon's content store and image
// records, without a registry: for tests of the image commands that do not pull.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import * as tar from 'tar';
import type { Client } from '../../cli/client';
import { putBlob, sha256 } from './calls';
import { tempDir } from './daemon';


export interface LocalImage {
  name: string;
  manifest: { digest: string; size: number };
  config: { digest: string; size: number };
  layer: { digest: string; size: number; diffID: string };
}

/** A busybox rootfs layer as gzip tar bytes, and its uncompressed digest. */
export async function busyboxLayer(): Promise<{ gz: Buffer; diffID: string }> {
  const dir = tempDir('berth-layer-');
  try {
    fs.mkdirSync(path.join(dir, 'bin'));
    fs.copyFileSync('/bin/busybox', path.join(dir, 'bin', 'busybox'));
    fs.chmodSync(path.join(dir, 'bin', 'busybox'), 0o755);
    for (const applet of ['sh', 'echo', 'cat', 'ls', 'true', 'sleep']) fs.symlinkSync('busybox', path.join(dir, 'bin', applet));
    fs.mkdirSync(path.join(dir, 'etc'));
    fs.writeFileSync(path.join(dir, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
    const chunks: Buffer[] = [];
    const stream = tar.c({ cwd: dir, portable: true, noMtime: true }, ['bin', 'etc']) as unknown as NodeJS.ReadableStream;
    for await (const c of stream) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks);
    return { gz: zlib.gzipSync(raw), diffID: sha256(raw) };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Writes layer, config and manifest (with containerd's GC labels) under a lease, records the image. */
export async function createLocalImage(client: Client, name: string): Promise<LocalImage> {
  const { gz, diffID } = await busyboxLayer();
  const config = Buffer.from(
    JSON.stringify({ architecture: process.arch === 'x64' ? 'amd64' : process.arch, os: 'linux', config: { Cmd: ['/bin/sh'] }, rootfs: { type: 'layers', diff_ids: [diffID] } }),
  );
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha256(gz), size: gz.length }],
    }),
  );
  const lease = `local-image-${Date.now()}`;
  await client.unary('leases', 'Create', { id: lease });
  const headers = { 'containerd-lease': lease };
  try {
    await putBlob(client, 'layer', gz, { 'containerd.io/uncompressed': diffID }, headers);
    await putBlob(client, 'config', config, {}, headers);
    await putBlob(client, 'manifest', manifest, { 'containerd.io/gc.ref.content.l.0': sha256(gz), 'containerd.io/gc.ref.content.config': sha256(config) }, headers);
    await client.unary('images', 'Create', {
      image: { name, target: { media_type: 'application/vnd.oci.image.manifest.v1+json', digest: sha256(manifest), size: manifest.length } },
    });
  } finally {
    await client.unary('leases', 'Delete', { id: lease });
  }
  return {
    name,
    manifest: { digest: sha256(manifest), size: manifest.length },
    config: { digest: sha256(config), size: config.length },
    layer: { digest: sha256(gz), size: gz.length, diffID },
  };
}
