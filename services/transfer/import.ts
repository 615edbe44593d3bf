// Image import: an OCI image layout tar or a `docker save` tar into the content store of a
// namespace, as containerd 1.6's archive importer does it:
//
//   * every regular file is written into the content store under a lease while the tar streams
//     in; a file named blobs/<alg>/<hex> must hash to <hex> (checked before it is committed);
//     absolute names and `..` components are refused;
//   * OCI: index.json's manifests are the images, named by io.containerd.image.name, else by
//     org.opencontainers.image.ref.name (a bare tag gets the base name as repository);
//   * docker: manifest.json's entries (Config, RepoTags, Layers, layers possibly uncompressed
//     `<id>/layer.tar`) become Docker schema 2 manifests written into the store, named by RepoTags;
//   * manifests and indexes get their containerd.io/gc.ref.content.* labels, the images are
//     unpacked (host platform) and recorded with their events; the lease goes at the end, so a
//     failed import leaves nothing behind once the garbage is collected.
import * as crypto from 'node:crypto';
import type { Logger } from 'pino';
import { BerthError, isAlreadyExists } from '../errdefs';
import type { Publisher } from '../events/exchange';
import type { Metadata } from '../metadata';
import type { Image } from '../metadata/images';
import { generateLeaseId } from '../metadata/leases';
import {
  MediaType,
  formatReference,
  gcLabels,
  isIndexType,
  isManifestType,
  parseIndex,
  parseManifest,
  parseReference,
  platformMatcher,
  selectManifest,
  type Descriptor,
} from '../remotes';
import { readTar } from './archive';
import { DEFAULT_SNAPSHOTTER, readBlob, recordImage, unpackManifest } from './unpack';

const LEASE_TTL_MS = 24 * 60 * 60 * 1000;
/** Files kept in memory as well (JSON documents are read back from here). */
const SMALL = 4 << 20;

export interface ImportOptions {
  baseName?: string;
  allPlatforms?: boolean;
  skipUnpack?: boolean;
  indexName?: string;
  snapshotter?: string;
  platform?: string;
  signal?: AbortSignal;
}

export interface ImportDeps {
  metadata: Metadata;
  events: Publisher;
  log?: Logger;
}

export interface ImportItem {
  ref: string;
  digest: string;
  mediaType: string;
  offset: number;
  total: number;
  status: string;
}

interface StoredFile {
  digest: string;
  size: number;
  /** First bytes (compression detection). */
  head: Buffer;
  bytes?: Buffer;
}

function today(): string {
  return new Date().toISOString().slice(0, 10);
}

/** containerd's AddRefPrefix: a bare tag (or @digest) gets `base`; a full reference is normalised. */
function imageName(refName: string, base: string): string {
  if (refName.startsWith('@')) return `${base}${refName}`;
  if (!refName.includes('/') && !refName.includes('.') && /^[\w][\w.-]{0,127}$/.test(refName)) return `${base}:${refName}`;
  try {
    return formatReference(parseReference(refName));
  } catch {
    return `${base}:${refName}`;
  }
}

export async function importArchive(
  deps: ImportDeps,
  ns: string,
  source: AsyncIterable<Uint8Array>,
  opts: ImportOptions,
  onItem: (item: ImportItem) => Promise<void> = async () => undefined,
): Promise<Image[]> {
  const { metadata } = deps;
  const { content, db } = metadata;
  const signal = opts.signal;
  const snapshotter = opts.snapshotter || DEFAULT_SNAPSHOTTER;
  if (!opts.skipUnpack) metadata.snapshots.backend(snapshotter);
  const base = opts.baseName || `import-${today()}`;
  const lease = generateLeaseId();
  await db.update((tx) => metadata.leases.create(tx, ns, lease, { 'containerd.io/gc.expire': new Date(Date.now() + LEASE_TTL_MS).toISOString() }));
  const tag = crypto.randomBytes(6).toString('hex');
  let n = 0;

  /** Writes bytes (an iterable of chunks) into the store; checks `expected` before the commit. */
  const put = async (label: string, chunks: AsyncIterable<Buffer> | Buffer[], size: number, expected?: string, keep = false): Promise<StoredFile> => {
    const ref = `import-${tag}-${n++}`;
    const hash = crypto.createHash('sha256');
    const writer = await content.writer(ns, ref, { total: size, lease, signal });
    let committed = false;
    const kept: Buffer[] = [];
    let head = Buffer.alloc(0);
    try {
      let got = 0;
      for await (const c of chunks) {
        hash.update(c);
        if (head.length < 8) head = Buffer.concat([head, c.subarray(0, 8 - head.length)]);
        if (keep) kept.push(Buffer.from(c));
        await writer.write(c);
        got += c.length;
      }
      if (got !== size) throw new BerthError('InvalidArgument', `${label}: ${got} bytes, expected ${size}`);
      const digest = `sha256:${hash.digest('hex')}`;
      if (expected !== undefined && digest !== expected) {
        throw new BerthError('FailedPrecondition', `${label}: content hashes to ${digest}, not ${expected} as its name says; refusing the archive`);
      }
      try {
        await writer.commit(size, digest, undefined);
      } catch (err) {
        if (!isAlreadyExists(err)) throw err;
        await writer.close().catch(() => undefined);
        await content.abort(ns, ref).catch(() => undefined);
      }
      committed = true;
      return { digest, size, head, ...(keep ? { bytes: Buffer.concat(kept) } : {}) };
    } finally {
      if (!committed) {
        await writer.close().catch(() => undefined);
        await content.abort(ns, ref).catch(() => undefined);
      }
    }
  };

  try {
    const files = new Map<string, StoredFile>();
    const links = new Map<string, string>();
    for await (const entry of readTar(source)) {
      if (signal?.aborted) throw new BerthError('Canceled', 'import cancelled');
      if (entry.type === 'symlink' || entry.type === 'link') {
        // docker save shares layer.tar between layer directories with links; resolve within the archive.
        const target = entry.type === 'link' ? entry.linkname : resolveSymlink(entry.name, entry.linkname);
        links.set(entry.name, target);
        continue;
      }
      if (entry.type !== 'file') continue;
      const m = /^blobs\/([a-z0-9]+)\/([^/]+)$/.exec(entry.name);
      let expected: string | undefined;
      if (m) {
        if (m[1] !== 'sha256') throw new BerthError('NotImplemented', `archive entry ${entry.name}: unsupported digest algorithm ${m[1]}`);
        if (!/^[a-f0-9]{64}$/.test(m[2]!)) throw new BerthError('InvalidArgument', `archive entry ${entry.name}: not a sha256 digest`);
        expected = `sha256:${m[2]}`;
      }
      const stored = await put(`archive entry ${entry.name}`, entry.body, entry.size, expected, entry.size <= SMALL);
      files.set(entry.name, stored);
      await onItem({ ref: `blob-${entry.name}`, digest: stored.digest, mediaType: '', offset: stored.size, total: stored.size, status: 'done' });
    }
    const lookup = (name: string, what: string): StoredFile => {
      let p = safeLookupName(name, what);
      for (let hops = 0; hops < 16 && !files.has(p) && links.has(p); hops++) p = links.get(p)!;
      const f = files.get(p);
      if (!f) throw new BerthError('InvalidArgument', `${what}: ${JSON.stringify(name)} is not in the archive`);
      return f;
    };
    const bytesOf = async (f: StoredFile) => f.bytes ?? readBlob(metadata, ns, f.digest, signal);
    const setLabels = async (digest: string, labels: Record<string, string>) => {
      if (Object.keys(labels).length === 0) return;
      await content.update(ns, digest, labels, Object.keys(labels).map((k) => `labels.${k}`));
    };

    // name → root descriptor; manifests to unpack per image.
    const records: Array<{ name: string; target: Descriptor }> = [];
    const matcher = platformMatcher(opts.platform || undefined);

    /** Checks a descriptor's blob against the archive (by its blobs/ path) and labels documents; returns the manifest to unpack. */
    const walk = async (desc: Descriptor, required: boolean): Promise<{ desc: Descriptor; bytes: Buffer } | undefined> => {
      const p = `blobs/sha256/${desc.digest.slice('sha256:'.length)}`;
      const f = files.get(p);
      if (!f) {
        if (!required) return undefined;
        throw new BerthError('InvalidArgument', `blob ${desc.digest} (${desc.mediaType}) is not in the archive`);
      }
      if (f.size !== desc.size) throw new BerthError('FailedPrecondition', `blob ${desc.digest}: ${f.size} bytes in the archive, descriptor says ${desc.size}`);
      if (isIndexType(desc.mediaType)) {
        const bytes = await bytesOf(f);
        const index = parseIndex(bytes, desc.mediaType);
        await setLabels(desc.digest, gcLabels(desc, bytes));
        const found: Array<{ desc: Descriptor; bytes: Buffer }> = [];
        for (const m of index.manifests) {
          const r = await walk(m, !!opts.allPlatforms);
          if (r) found.push(r);
        }
        if (found.length === 0) throw new BerthError('InvalidArgument', `index ${desc.digest}: none of its manifests is in the archive`);
        let pick = found[0]!;
        try {
          const sel = selectManifest({ ...index, manifests: found.map((x) => x.desc) }, matcher);
          pick = found.find((x) => x.desc.digest === sel.digest) ?? pick;
        } catch {
          /* no manifest for this platform: unpack the first */
        }
        return pick;
      }
      if (isManifestType(desc.mediaType)) {
        const bytes = await bytesOf(f);
        const manifest = parseManifest(bytes, desc.mediaType);
        for (const child of [manifest.config, ...manifest.layers]) await walk(child, true);
        await setLabels(desc.digest, gcLabels(desc, bytes));
        return { desc, bytes };
      }
      return { desc, bytes: Buffer.alloc(0) };
    };

    const unpackTargets = new Map<string, { desc: Descriptor; bytes: Buffer }>();
    const indexFile = files.get('index.json');
    const dockerFile = files.get('manifest.json');
    if (indexFile) {
      const indexBytes = await bytesOf(indexFile);
      const index = parseIndex(indexBytes);
      for (const d of index.manifests) {
        const target: Descriptor = { mediaType: d.mediaType, digest: d.digest, size: d.size };
        const picked = await walk(target, true);
        if (picked && isManifestType(picked.desc.mediaType)) unpackTargets.set(target.digest, picked);
        const ann = d.annotations ?? {};
        const name = ann['io.containerd.image.name'] || (ann['org.opencontainers.image.ref.name'] ? imageName(ann['org.opencontainers.image.ref.name'], base) : `${base}@${d.digest}`);
        records.push({ name, target });
      }
      if (opts.indexName) {
        const labels = gcLabels({ mediaType: MediaType.OciIndex, digest: indexFile.digest, size: indexFile.size }, indexBytes);
        await setLabels(indexFile.digest, labels);
        records.push({ name: opts.indexName, target: { mediaType: MediaType.OciIndex, digest: indexFile.digest, size: indexFile.size } });
      }
    } else if (dockerFile) {
      let entries: Array<{ Config?: string; RepoTags?: string[] | null; Layers?: string[] }>;
      try {
        entries = JSON.parse((await bytesOf(dockerFile)).toString('utf8'));
        if (!Array.isArray(entries)) throw new Error('not an array');
      } catch (err) {
        throw new BerthError('InvalidArgument', `manifest.json: ${(err as Error).message}`);
      }
      for (const [i, e] of entries.entries()) {
        if (typeof e?.Config !== 'string' || !Array.isArray(e.Layers)) throw new BerthError('InvalidArgument', `manifest.json entry ${i}: Config and Layers are required`);
        const cfg = lookup(e.Config, `manifest.json entry ${i} Config`);
        const config: Descriptor = { mediaType: MediaType.DockerConfig, digest: cfg.digest, size: cfg.size };
        const layers: Descriptor[] = e.Layers.map((l, j) => {
          const f = lookup(l, `manifest.json entry ${i} layer ${j}`);
          const gz = f.head[0] === 0x1f && f.head[1] === 0x8b;
          const zst = f.head.length >= 4 && f.head.readUInt32LE(0) === 0xfd2fb528;
          return { mediaType: gz ? MediaType.DockerLayerGzip : zst ? MediaType.DockerLayerZstd : MediaType.DockerLayer, digest: f.digest, size: f.size };
        });
        const manifestBytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.DockerManifest, config, layers }, null, 2));
        const stored = await put(`manifest for ${e.Config}`, [manifestBytes], manifestBytes.length);
        const desc: Descriptor = { mediaType: MediaType.DockerManifest, digest: stored.digest, size: stored.size };
        await setLabels(desc.digest, gcLabels(desc, manifestBytes));
        unpackTargets.set(desc.digest, { desc, bytes: manifestBytes });
        const tags = (e.RepoTags ?? []).filter((t) => typeof t === 'string' && t);
        if (tags.length === 0) records.push({ name: `${base}@${desc.digest}`, target: desc });
        for (const t of tags) {
          let name: string;
          try {
            name = formatReference(parseReference(t));
          } catch (err) {
            throw new BerthError('InvalidArgument', `manifest.json entry ${i}: RepoTag ${JSON.stringify(t)}: ${(err as Error).message}`);
          }
          records.push({ name, target: desc });
        }
      }
    } else {
      throw new BerthError('InvalidArgument', 'not an image archive: neither index.json (OCI layout) nor manifest.json (docker save) found');
    }
    if (records.length === 0) throw new BerthError('InvalidArgument', 'the archive names no image');

    if (!opts.skipUnpack) {
      for (const t of unpackTargets.values()) {
        await unpackManifest(metadata, ns, t.desc, t.bytes, {
          snapshotter,
          lease,
          signal,
          onStatus: (digest, status) => void onItem({ ref: `layer-${digest}`, digest, mediaType: '', offset: 0, total: 0, status }),
        });
      }
    }
    const out: Image[] = [];
    for (const r of records) {
      out.push(await recordImage(metadata, deps.events, ns, { name: r.name, labels: {}, target: { ...r.target, annotations: {} } }));
    }
    return out;
  } finally {
    await db.update((tx) => metadata.leases.delete(tx, ns, lease)).catch(() => undefined);
    metadata.gc.schedule();
  }
}

function resolveSymlink(entry: string, link: string): string {
  if (link.startsWith('/')) throw new BerthError('InvalidArgument', `archive entry ${JSON.stringify(entry)}: link to an absolute name`);
  const dir = entry.split('/').slice(0, -1);
  for (const part of link.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (dir.length === 0) throw new BerthError('InvalidArgument', `archive entry ${JSON.stringify(entry)}: link points outside the archive`);
      dir.pop();
    } else dir.push(part);
  }
  return dir.join('/');
}

function safeLookupName(name: string, what: string): string {
  if (name.startsWith('/') || name.split('/').includes('..')) throw new BerthError('InvalidArgument', `${what}: ${JSON.stringify(name)} is not a name inside the archive`);
  return name.split('/').filter((p) => p && p !== '.').join('/');
}
