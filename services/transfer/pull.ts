// Server-side image pull: what ctr's `images pull` drives over the Content, Images, Snapshots and
// Diff services, done inside berthd against the metadata stores directly. The store ends up as
// ctr leaves it (containerd-wire §3.3, §5.6):
//
//   * every blob under a lease (24 h expiry) while the pull runs, deleted at the end;
//   * index → `containerd.io/gc.ref.content.m.<i>`, manifest → `….config` / `….l.<i>`, every blob
//     `containerd.io/distribution.source.<host>: <repo>`;
//   * layers applied in order onto snapshots named by chain ID (prepared as
//     `extract-<nanos>-<rand> <chainID>` on the previous chain ID, committed as `<chainID>`;
//     existing ones skipped), layer blobs labelled `containerd.io/uncompressed: <diffID>`, the
//     config `containerd.io/gc.ref.snapshot.<snapshotter>: <top chain ID>`;
//   * the image record created (or replaced after AlreadyExists), with /images/create or
//     /images/update published.
//
// Differences from ctr: the image is recorded after the unpack (a layer that fails to apply
// fails the pull with no image left behind); a transient registry failure or a cancelled pull
// (client gone) keeps the lease (it expires by itself) so that the next pull skips the blobs
// already committed and resumes the partial downloads instead of restarting.
import type { Logger } from 'pino';
import { BerthError, isAlreadyExists } from '../errdefs';
import type { Publisher } from '../events/exchange';
import type { Metadata } from '../metadata';
import type { Image } from '../metadata/images';
import { generateLeaseId } from '../metadata/leases';
import { DEFAULT_SNAPSHOTTER, chainIDs, readAll, recordImage, unpackManifest } from './unpack';

export { DEFAULT_SNAPSHOTTER, chainIDs };
import {
  RegistryClient,
  allPlatforms,
  children,
  distributionSourceLabel,
  gcLabels,
  isIndexType,
  isLayerType,
  isManifestType,
  mergeDistributionSource,
  parseIndex,
  platformMatcher,
  selectManifest,
  selectManifests,
  type Descriptor,
  type Reference,
} from '../remotes';

const LEASE_TTL_MS = 24 * 60 * 60 * 1000;

export interface PullOptions {
  ref: string;
  /** Platform specifier; empty = host. */
  platform?: string;
  allPlatforms?: boolean;
  snapshotter?: string;
  skipUnpack?: boolean;
  plainHttp?: boolean;
  labels?: Record<string, string>;
  /** hosts.toml directory (containerd's config_path). */
  hostsDir?: string;
  /** Registry credentials for every host of this transfer. */
  credentials?: { username: string; secret: string };
  signal?: AbortSignal;
  /** Registry client to use (tests); one is made per pull otherwise. */
  client?: RegistryClient;
}

export type ItemStatus = 'waiting' | 'downloading' | 'uploading' | 'mounted' | 'done' | 'exists' | 'unpacking' | 'unpacked';

export interface ProgressItem {
  ref: string;
  digest: string;
  mediaType: string;
  offset: number;
  total: number;
  status: ItemStatus;
}

/**
 * The state of every blob of a pull. `onChange(stateChange)` is called after each update:
 * `stateChange` true for a status change (send now), false for byte counts (send when due).
 */
export class PullProgress {
  readonly items = new Map<string, ProgressItem>();

  constructor(private readonly onChange: (stateChange: boolean) => void = () => undefined) {}

  add(kind: string, desc: Descriptor, status: ItemStatus = 'waiting'): ProgressItem {
    let item = this.items.get(desc.digest);
    if (!item) {
      item = { ref: `${kind}-${desc.digest}`, digest: desc.digest, mediaType: desc.mediaType, offset: 0, total: desc.size, status };
      this.items.set(desc.digest, item);
      this.onChange(true);
    }
    return item;
  }

  status(digest: string, status: ItemStatus, offset?: number): void {
    const item = this.items.get(digest);
    if (!item) return;
    if (offset !== undefined) item.offset = offset;
    if (status === 'done' || status === 'exists') item.offset = item.total;
    if (item.status === status) return this.onChange(false);
    item.status = status;
    this.onChange(true);
  }

  offset(digest: string, offset: number): void {
    const item = this.items.get(digest);
    if (!item) return;
    item.offset = offset;
    this.onChange(false);
  }

  snapshot(): ProgressItem[] {
    return [...this.items.values()].map((i) => ({ ...i }));
  }
}

function isTransient(err: unknown): boolean {
  return err instanceof BerthError && (err.kind === 'Unavailable' || err.kind === 'DeadlineExceeded');
}

function isCorrupt(err: unknown): boolean {
  return err instanceof BerthError && (err.kind === 'FailedPrecondition' || err.kind === 'InvalidArgument');
}

export interface PullDeps {
  metadata: Metadata;
  events: Publisher;
  log?: Logger;
}

/** Runs one pull in namespace `ns`; resolves with the image as recorded. */
export async function pullImage(deps: PullDeps, ns: string, opts: PullOptions, progress = new PullProgress()): Promise<Image> {
  const { metadata } = deps;
  const { content, snapshots, db } = metadata;
  const signal = opts.signal;
  const snapshotter = opts.snapshotter || DEFAULT_SNAPSHOTTER;
  if (!opts.ref) throw new BerthError('InvalidArgument', 'ref must not be empty');
  if (!opts.skipUnpack) snapshots.backend(snapshotter); // NotFound for an unknown snapshotter, before any download
  const matcher = opts.platform ? platformMatcher(opts.platform) : platformMatcher();

  const lease = generateLeaseId();
  await db.update((tx) => metadata.leases.create(tx, ns, lease, { 'containerd.io/gc.expire': new Date(Date.now() + LEASE_TTL_MS).toISOString() }));
  const client = opts.client ?? new RegistryClient({ plainHttp: opts.plainHttp ?? false, hostsDir: opts.hostsDir, credentials: opts.credentials, logger: deps.log });
  let keepLease = false;
  try {
    const resolved = await client.resolve(opts.ref, { signal });
    const ref: Reference = resolved.ref;
    const [[sourceKey, sourceRepo]] = Object.entries(distributionSourceLabel(ref)) as [[string, string]];

    /** Labels to set on a blob: its GC labels and the source label merged with what is there. */
    const labelsFor = (existing: Record<string, string> | undefined, extra: Record<string, string>) => ({
      ...extra,
      [sourceKey]: mergeDistributionSource(existing?.[sourceKey], sourceRepo),
    });
    const updateLabels = async (digest: string, labels: Record<string, string>) => {
      await content.update(ns, digest, labels, Object.keys(labels).map((k) => `labels.${k}`));
    };
    const existing = async (digest: string) => {
      try {
        return await content.info(ns, digest);
      } catch (err) {
        if (err instanceof BerthError && err.kind === 'NotFound') return undefined;
        throw err;
      }
    };

    /**
     * Puts one blob into the namespace (unless it is there), resuming a partial ingest of the
     * same ref, with `labels` (plus the source label). `data` = the bytes already fetched.
     */
    const store = async (kind: string, desc: Descriptor, labels: Record<string, string>, data?: Buffer): Promise<void> => {
      progress.add(kind, desc);
      const info = await existing(desc.digest);
      if (info) {
        await updateLabels(desc.digest, labelsFor(info.labels, labels));
        progress.status(desc.digest, 'exists');
        return;
      }
      const ingestRef = `${kind}-${desc.digest}`;
      let writer;
      try {
        writer = await content.writer(ns, ingestRef, { total: desc.size, expected: desc.digest, lease, signal });
      } catch (err) {
        if (!isAlreadyExists(err)) throw err;
        const now = await content.info(ns, desc.digest);
        await updateLabels(desc.digest, labelsFor(now.labels, labels));
        progress.status(desc.digest, 'exists');
        return;
      }
      let committed = false;
      try {
        let offset = writer.status().offset;
        if (offset > desc.size || (data && offset > 0)) {
          await writer.truncate(0);
          offset = 0;
        }
        progress.status(desc.digest, 'downloading', offset);
        if (data) {
          await writer.write(data);
          progress.offset(desc.digest, data.length);
        } else if (offset < desc.size) {
          // The commit checks the digest of the whole ingest, resumed or not.
          const stream = await client.fetch(ref, desc, { offset, signal });
          for await (const chunk of stream) {
            await writer.write(chunk as Buffer);
            offset += (chunk as Buffer).length;
            progress.offset(desc.digest, offset);
          }
        }
        try {
          await writer.commit(desc.size, desc.digest, labelsFor(undefined, labels));
        } catch (err) {
          if (!isAlreadyExists(err)) throw err;
          const now = await content.info(ns, desc.digest);
          await updateLabels(desc.digest, labelsFor(now.labels, labels));
        }
        committed = true;
        progress.status(desc.digest, 'done');
      } catch (err) {
        // Corrupt data must not be resumed from; an interrupted download may be.
        if (isCorrupt(err)) await content.abort(ns, ingestRef).catch(() => undefined);
        throw err;
      } finally {
        if (!committed) await writer.close().catch(() => undefined);
      }
    };

    /** A manifest or index: from the namespace if there, else fetched (and verified) then stored. */
    const document = async (kind: string, desc: Descriptor): Promise<Buffer> => {
      if (await existing(desc.digest)) {
        const bytes = await readAll(await content.read(ns, desc.digest, 0, 0, signal));
        await store(kind, desc, gcLabels(desc, bytes));
        return bytes;
      }
      progress.add(kind, desc);
      progress.status(desc.digest, 'downloading');
      const bytes = await client.fetchBytes(ref, desc, { signal });
      await store(kind, desc, gcLabels(desc, bytes), bytes);
      return bytes;
    };

    // Root → the manifests to fetch (one per platform, or all) → their blobs.
    const root = resolved.descriptor;
    const manifests: Array<{ desc: Descriptor; bytes: Buffer }> = [];
    const walk = async (desc: Descriptor): Promise<void> => {
      if (isIndexType(desc.mediaType)) {
        const bytes = await document('index', desc);
        const index = parseIndex(bytes, desc.mediaType);
        const picked = opts.allPlatforms ? selectManifests(index, allPlatforms) : [selectManifest(index, matcher)];
        for (const m of picked) await walk(m);
      } else if (isManifestType(desc.mediaType)) {
        manifests.push({ desc, bytes: await document('manifest', desc) });
      } else {
        throw new BerthError('NotImplemented', `${desc.digest}: unsupported media type ${JSON.stringify(desc.mediaType)}`);
      }
    };
    await walk(root);

    const blobs = new Map<string, { kind: string; desc: Descriptor }>();
    for (const m of manifests) {
      for (const child of children(m.desc, m.bytes)) {
        if (!blobs.has(child.digest)) {
          blobs.set(child.digest, { kind: isLayerType(child.mediaType) ? 'layer' : 'config', desc: child });
          progress.add(isLayerType(child.mediaType) ? 'layer' : 'config', child);
        }
      }
    }
    // All transfers run; the first failure is reported once the others have settled.
    const results = await Promise.allSettled([...blobs.values()].map(({ kind, desc }) => client.limiter.run(() => store(kind, desc, {}), signal)));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;

    // Unpack the manifest for the wanted platform (the only one unless all platforms were fetched).
    if (!opts.skipUnpack) {
      let target = manifests[0]!;
      if (isIndexType(root.mediaType) && manifests.length > 1) {
        const index = parseIndex(await readAll(await content.read(ns, root.digest, 0, 0, signal)), root.mediaType);
        const wanted = selectManifest({ ...index, manifests: index.manifests.filter((d) => manifests.some((m) => m.desc.digest === d.digest)) }, matcher);
        target = manifests.find((m) => m.desc.digest === wanted.digest)!;
      }
      await unpackManifest(metadata, ns, target.desc, target.bytes, { snapshotter, lease, signal, onStatus: (d, st) => progress.status(d, st) });
    }

    // Record the image: create, or replace it (no field mask) as ctr does after AlreadyExists.
    const record = { name: resolved.name, labels: { ...(opts.labels ?? {}) }, target: { mediaType: root.mediaType, digest: root.digest, size: root.size, annotations: {} } };
    const image = await recordImage(metadata, deps.events, ns, record);
    return image;
  } catch (err) {
    // A cancelled pull (the client went away) is an interruption like a network failure: the
    // blobs committed so far and the partial ingests stay under the lease for the next pull.
    keepLease = isTransient(err) || !!signal?.aborted || (err instanceof BerthError && err.kind === 'Canceled');
    throw err;
  } finally {
    if (!opts.client) client.close();
    if (!keepLease) {
      await db.update((tx) => metadata.leases.delete(tx, ns, lease)).catch(() => undefined);
      metadata.gc.schedule();
    }
  }
}
