// What pull and import share once the content is in the store: unpacking a manifest's layers onto
// snapshots keyed by chain ID (as ctr's unpacker leaves them) and recording the image with its
// /images/create or /images/update event.
import * as crypto from 'node:crypto';
import type { Readable } from 'node:stream';
import { nowNanos } from '../../proto/codec';
import { applyToMounts } from '../../snapshotter';
import { BerthError, isAlreadyExists } from '../errdefs';
import type { Publisher } from '../events/exchange';
import type { Metadata } from '../metadata';
import type { Image } from '../metadata/images';
import { parseImageConfig, parseManifest, type Descriptor } from '../remotes';

export const DEFAULT_SNAPSHOTTER = 'overlayfs';
const EVENT = 'containerd.services.images.v1.';

/** OCI chain IDs of a list of diff IDs: chain(0) = diff(0), chain(n) = sha256(chain(n-1) + " " + diff(n)). */
export function chainIDs(diffIDs: readonly string[]): string[] {
  const out: string[] = [];
  for (const diff of diffIDs) {
    const prev = out[out.length - 1];
    out.push(prev === undefined ? diff : `sha256:${crypto.createHash('sha256').update(`${prev} ${diff}`).digest('hex')}`);
  }
  return out;
}

/** containerd's unpack key: `extract-<nanoseconds of the second>-<random> <chainID>`. */
function extractKey(chainID: string): string {
  const nanos = Number(nowNanos() % 1_000_000_000n);
  return `extract-${nanos}-${crypto.randomBytes(3).toString('base64url')} ${chainID}`;
}

export async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** Reads one blob of namespace `ns` whole. */
export async function readBlob(metadata: Metadata, ns: string, digest: string, signal?: AbortSignal): Promise<Buffer> {
  return readAll(await metadata.content.read(ns, digest, 0, 0, signal));
}

export interface UnpackOptions {
  snapshotter: string;
  /** Lease holding the snapshots while the caller works. */
  lease?: string;
  signal?: AbortSignal;
  /** Told when a layer starts unpacking and when it is done ('exists' when the chain was there). */
  onStatus?: (digest: string, status: 'unpacking' | 'unpacked' | 'exists') => void;
}

/**
 * Applies the layers of one manifest (content already in the namespace) onto snapshots named by
 * chain ID, skipping the chains that exist; labels layers `containerd.io/uncompressed` and the
 * config `containerd.io/gc.ref.snapshot.<snapshotter>`.
 */
export async function unpackManifest(metadata: Metadata, ns: string, manifestDesc: Descriptor, manifestBytes: Buffer, opts: UnpackOptions): Promise<string> {
  const { content, snapshots } = metadata;
  const { snapshotter, lease, signal } = opts;
  const updateLabels = async (digest: string, labels: Record<string, string>) => {
    await content.update(ns, digest, labels, Object.keys(labels).map((k) => `labels.${k}`));
  };
  const manifest = parseManifest(manifestBytes, manifestDesc.mediaType);
  const config = parseImageConfig(await readBlob(metadata, ns, manifest.config.digest, signal));
  const diffIDs = config.rootfs.diff_ids;
  if (diffIDs.length !== manifest.layers.length) {
    throw new BerthError('InvalidArgument', `image config ${manifest.config.digest} lists ${diffIDs.length} diff IDs for ${manifest.layers.length} layers`);
  }
  const chains = chainIDs(diffIDs);
  let parent = '';
  for (const [i, layer] of manifest.layers.entries()) {
    const chainID = chains[i]!;
    const diffID = diffIDs[i]!;
    let present = false;
    try {
      await snapshots.stat(ns, snapshotter, chainID);
      present = true;
    } catch (err) {
      if (!(err instanceof BerthError && err.kind === 'NotFound')) throw err;
    }
    if (!present) {
      opts.onStatus?.(layer.digest, 'unpacking');
      const key = extractKey(chainID);
      const mounts = await snapshots.create('Active', ns, snapshotter, key, parent, {}, lease);
      try {
        const applied = await applyToMounts(mounts, await content.read(ns, layer.digest, 0, 0, signal), { signal });
        if (applied.diffID !== diffID) {
          throw new BerthError('FailedPrecondition', `wrong diff id calculated on extraction of layer ${layer.digest}: got ${applied.diffID}, expected ${diffID}`);
        }
        try {
          await snapshots.commit(ns, snapshotter, chainID, key, {}, lease);
        } catch (err) {
          // Someone else unpacked the same chain meanwhile: theirs is as good as ours.
          if (!isAlreadyExists(err)) throw err;
          await snapshots.remove(ns, snapshotter, key).catch(() => undefined);
        }
      } catch (err) {
        await snapshots.remove(ns, snapshotter, key).catch(() => undefined);
        throw err;
      }
    }
    const info = await content.info(ns, layer.digest);
    if (info.labels['containerd.io/uncompressed'] !== diffID) await updateLabels(layer.digest, { 'containerd.io/uncompressed': diffID });
    opts.onStatus?.(layer.digest, present ? 'exists' : 'unpacked');
    parent = chainID;
  }
  if (parent) await updateLabels(manifest.config.digest, { [`containerd.io/gc.ref.snapshot.${snapshotter}`]: parent });
  return parent;
}

/** Records an image: create, or replace it (no field mask) as ctr does after AlreadyExists; publishes the event. */
export async function recordImage(
  metadata: Metadata,
  events: Publisher,
  ns: string,
  record: Pick<Image, 'name' | 'labels' | 'target'>,
): Promise<Image> {
  return metadata.db.update(async (tx) => {
    try {
      const created = await metadata.images.create(tx, ns, record);
      tx.afterCommit(() => events.publish(ns, '/images/create', `${EVENT}ImageCreate`, { name: created.name, labels: created.labels }));
      return created;
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
      const updated = await metadata.images.update(tx, ns, record, []);
      tx.afterCommit(() => events.publish(ns, '/images/update', `${EVENT}ImageUpdate`, { name: updated.name, labels: updated.labels }));
      return updated;
    }
  });
}
