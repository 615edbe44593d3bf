// Image export: an OCI image layout as a tar stream, as containerd 1.6's archive exporter writes
// it (oci-layout, blobs/sha256/<hex>, index.json whose manifests carry io.containerd.image.name
// and org.opencontainers.image.ref.name), plus — unless format "oci" — docker's manifest.json
// (Config, RepoTags, Layers as blobs/sha256/<hex>) so `docker load` and skopeo's docker-archive
// can read the same file.
import { BerthError } from '../errdefs';
import type { Metadata } from '../metadata';
import {
  MediaType,
  familiarString,
  isIndexType,
  isManifestType,
  parseIndex,
  parseManifest,
  parseReference,
  platformMatcher,
  selectManifest,
  selectManifests,
  allPlatforms,
  type Descriptor,
} from '../remotes';
import { TAR_END, padding, tarHeader } from './archive';
import { readBlob } from './unpack';

export interface ExportOptions {
  names: string[];
  platform?: string;
  allPlatforms?: boolean;
  /** 'oci' | 'docker' (default docker: both index.json and manifest.json). */
  format?: string;
  signal?: AbortSignal;
}

const CHUNK = 1 << 20;

async function exists(metadata: Metadata, ns: string, digest: string): Promise<boolean> {
  try {
    await metadata.content.info(ns, digest);
    return true;
  } catch (err) {
    if (err instanceof BerthError && err.kind === 'NotFound') return false;
    throw err;
  }
}

/** The OCI ref.name of an image name: its tag (containerd's ociReferenceName), else the name. */
function ociRefName(name: string): string {
  try {
    const r = parseReference(name, { defaultTag: false });
    if (r.tag !== undefined || r.digest !== undefined) return `${r.tag ?? ''}${r.digest ? `@${r.digest}` : ''}`;
  } catch {
    /* not a reference */
  }
  return name;
}

/** Writes the archive through `emit` (called with chunks, awaited for back-pressure). */
export async function exportImages(metadata: Metadata, ns: string, opts: ExportOptions, emit: (data: Buffer) => Promise<void>): Promise<void> {
  if (opts.names.length === 0) throw new BerthError('InvalidArgument', 'no image names to export');
  const format = opts.format || 'docker';
  if (format !== 'oci' && format !== 'docker') throw new BerthError('InvalidArgument', `unknown export format ${JSON.stringify(format)} (oci or docker)`);
  const matcher = platformMatcher(opts.platform || undefined);
  const blobs = new Map<string, Descriptor>();
  const indexEntries: Descriptor[] = [];
  const dockerEntries: Array<{ Config: string; RepoTags: string[]; Layers: string[] }> = [];
  const path = (d: string) => `blobs/sha256/${d.slice('sha256:'.length)}`;

  for (const name of opts.names) {
    const image = await metadata.images.get(ns, name);
    const target: Descriptor = { mediaType: image.target.mediaType, digest: image.target.digest, size: image.target.size };
    if (!(await exists(metadata, ns, target.digest))) throw new BerthError('NotFound', `content ${target.digest} of image ${name} is not in the store`);
    blobs.set(target.digest, target);
    // Manifests exported for this image; the docker entry uses the platform's one.
    const manifests: Descriptor[] = [];
    let dockerManifest: Descriptor | undefined;
    if (isIndexType(target.mediaType)) {
      const index = parseIndex(await readBlob(metadata, ns, target.digest, opts.signal), target.mediaType);
      const wanted = opts.allPlatforms ? selectManifests(index, allPlatforms) : [selectManifest(index, matcher)];
      for (const m of wanted) {
        if (isIndexType(m.mediaType)) throw new BerthError('NotImplemented', `${name}: nested indexes are not exported`);
        const present = await exists(metadata, ns, m.digest);
        if (!present) {
          if (opts.allPlatforms) continue; // containerd skips content of platforms never pulled
          throw new BerthError('NotFound', `${name}: manifest ${m.digest} for the platform is not in the store`);
        }
        manifests.push(m);
      }
      try {
        dockerManifest = selectManifest({ ...index, manifests: manifests }, matcher);
      } catch {
        dockerManifest = manifests[0];
      }
    } else if (isManifestType(target.mediaType)) {
      manifests.push(target);
      dockerManifest = target;
    } else {
      throw new BerthError('NotImplemented', `${name}: unsupported media type ${target.mediaType}`);
    }
    for (const m of manifests) {
      blobs.set(m.digest, m);
      const doc = parseManifest(await readBlob(metadata, ns, m.digest, opts.signal), m.mediaType);
      for (const d of [doc.config, ...doc.layers]) {
        if (!(await exists(metadata, ns, d.digest))) throw new BerthError('NotFound', `${name}: blob ${d.digest} is not in the store`);
        blobs.set(d.digest, d);
      }
      if (m === dockerManifest || m.digest === dockerManifest?.digest) {
        let tags: string[] = [];
        try {
          const r = parseReference(name, { defaultTag: false });
          if (r.tag !== undefined) tags = [familiarString({ domain: r.domain, path: r.path, tag: r.tag })];
        } catch {
          /* not a docker reference: no RepoTags */
        }
        dockerEntries.push({ Config: path(doc.config.digest), RepoTags: tags, Layers: doc.layers.map((l) => path(l.digest)) });
      }
    }
    indexEntries.push({
      ...target,
      annotations: { 'io.containerd.image.name': name, 'org.opencontainers.image.ref.name': ociRefName(name) },
    });
  }

  const file = async (name: string, data: Buffer) => {
    await emit(Buffer.concat([tarHeader(name, data.length), data, Buffer.alloc(padding(data.length))]));
  };
  await emit(tarHeader('blobs/', 0, '5'));
  await emit(tarHeader('blobs/sha256/', 0, '5'));
  for (const d of blobs.values()) {
    await emit(tarHeader(path(d.digest), d.size));
    let sent = 0;
    let pending: Buffer[] = [];
    let pendingLen = 0;
    for await (const c of await metadata.content.read(ns, d.digest, 0, 0, opts.signal)) {
      const b = c as Buffer;
      pending.push(b);
      pendingLen += b.length;
      sent += b.length;
      if (pendingLen >= CHUNK) {
        await emit(Buffer.concat(pending));
        pending = [];
        pendingLen = 0;
      }
    }
    if (sent !== d.size) throw new BerthError('FailedPrecondition', `blob ${d.digest} has ${sent} bytes, descriptor says ${d.size}`);
    pending.push(Buffer.alloc(padding(d.size)));
    await emit(Buffer.concat(pending));
  }
  await file('oci-layout', Buffer.from(JSON.stringify({ imageLayoutVersion: '1.0.0' })));
  await file('index.json', Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: indexEntries })));
  if (format === 'docker') await file('manifest.json', Buffer.from(JSON.stringify(dockerEntries)));
  await emit(TAR_END);
}
