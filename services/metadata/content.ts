// Content as clients see it: the shared blob store seen through namespaces. A blob is visible
// in a namespace only once it was committed (or re-committed) there; its labels are per
// namespace. Writes made under a lease are attached to it.
//
//   o/<ns>/content/<digest>   { size, createdAt, updatedAt, labels }
//   o/<ns>/ingests/<ref>      { createdAt, lease? }   (the ingest itself lives in the store as "<ns>/<ref>")
import { Readable } from 'node:stream';
import { nowTimestamp, type Timestamp } from '../../proto/codec';
import { validateDigest, type ContentStore, type ContentWriter, type Status } from '../../content-store';
import { BerthError, isAlreadyExists } from '../errdefs';
import { objectKey, objectPrefix, type MetadataDB, type Transaction } from './db';
import { applyLabelPaths, type Labels } from './labels';
import type { LeaseStore } from './leases';
import { validateLabels } from './validate';

export interface ContentRecord {
  size: number;
  createdAt: Timestamp;
  updatedAt: Timestamp;
  labels: Labels;
}

export interface ContentInfo extends ContentRecord {
  digest: string;
}

interface IngestRecord {
  createdAt: Timestamp;
  lease?: string;
}

export interface IngestStatus {
  ref: string;
  offset: number;
  total: number;
  expected: string;
  startedAt: Date;
  updatedAt: Date;
}

export const contentKey = (ns: string, digest: string) => objectKey(ns, 'content', digest);
const ingestKey = (ns: string, ref: string) => objectKey(ns, 'ingests', ref);
/** The store's ref for a namespace's ingest: refs are per namespace, the store's are global. */
export const storeRef = (ns: string, ref: string) => `${ns}/${ref}`;

/** Digest validation as the Content service answers it. */
export function checkDigest(digest: string): string {
  try {
    validateDigest(digest);
  } catch {
    throw new BerthError('InvalidArgument', `${JSON.stringify(digest)} failed validation`);
  }
  return digest;
}

function toStatus(ref: string, s: Status): IngestStatus {
  return { ref, offset: s.offset, total: s.total, expected: s.expected ?? '', startedAt: s.startedAt, updatedAt: s.updatedAt };
}

export class MetadataContent {
  /** Digests being read right now: the collector leaves their blobs alone. */
  private readonly reading = new Map<string, number>();

  constructor(
    private readonly db: MetadataDB,
    readonly store: ContentStore,
    private readonly leases: LeaseStore,
  ) {}

  isBeingRead(digest: string): boolean {
    return (this.reading.get(digest) ?? 0) > 0;
  }

  async info(ns: string, digest: string): Promise<ContentInfo> {
    checkDigest(digest);
    const rec = await this.db.get<ContentRecord>(contentKey(ns, digest));
    if (!rec || !(await this.store.exists(digest))) throw new BerthError('NotFound', `content digest ${digest}`);
    return { digest, ...rec };
  }

  async update(ns: string, digest: string, labels: Labels, paths: readonly string[]): Promise<ContentInfo> {
    checkDigest(digest);
    return this.db.update(async (tx) => {
      const rec = await tx.get<ContentRecord>(contentKey(ns, digest));
      if (!rec) throw new BerthError('NotFound', `content digest ${digest}`);
      const updated: ContentRecord = {
        ...rec,
        labels: applyLabelPaths(rec.labels, labels, paths, () => false, (p) => `cannot update ${JSON.stringify(p)} field on content info ${JSON.stringify(digest)}`),
        updatedAt: nowTimestamp(),
      };
      tx.put(contentKey(ns, digest), updated);
      return { digest, ...updated };
    });
  }

  async *list(ns: string): AsyncIterable<ContentInfo> {
    for await (const [digest, rec] of this.db.scan<ContentRecord>(objectPrefix(ns, 'content'))) yield { digest, ...rec };
  }

  /** Removes the namespace's record; the blob goes at the next collection if nothing else uses it. */
  async delete(tx: Transaction, ns: string, digest: string): Promise<void> {
    checkDigest(digest);
    if ((await tx.get(contentKey(ns, digest))) === undefined) throw new BerthError('NotFound', `content digest ${digest}`);
    tx.del(contentKey(ns, digest));
  }

  /** A ranged read of a blob visible in the namespace; the blob is protected from collection until the stream ends. */
  async read(ns: string, digest: string, offset: number, size: number, signal?: AbortSignal): Promise<Readable> {
    const { range, release } = await this.openRange(ns, digest, offset, size, signal);
    const stream = Buffer.isBuffer(range) ? Readable.from(range.length > 0 ? [range] : [], { objectMode: false }) : range;
    stream.once('close', release);
    return stream;
  }

  /**
   * As read(), but a small range (manifests, configs: most of what clients read) comes back
   * read, as a Buffer, without a stream (`size` 0: to the end).
   */
  async readRange(ns: string, digest: string, offset: number, size: number, signal?: AbortSignal): Promise<Buffer | Readable> {
    const { range, release } = await this.openRange(ns, digest, offset, size, signal);
    // a Buffer is read already: nothing left for a collection to take from under it
    if (Buffer.isBuffer(range)) release();
    else range.once('close', release);
    return range;
  }

  /** The range, with the blob protected from collection until `release`. */
  private async openRange(ns: string, digest: string, offset: number, size: number, signal?: AbortSignal): Promise<{ range: Buffer | Readable; release: () => void }> {
    const info = await this.info(ns, digest);
    if (offset < 0) offset = 0;
    if (offset > info.size) throw new BerthError('OutOfRange', `read past object length ${info.size} bytes`);
    this.reading.set(digest, (this.reading.get(digest) ?? 0) + 1);
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      const n = (this.reading.get(digest) ?? 1) - 1;
      if (n > 0) this.reading.set(digest, n);
      else this.reading.delete(digest);
    };
    try {
      return { range: await this.store.readRange(digest, { offset, length: size > 0 ? size : undefined, signal }), release };
    } catch (err) {
      release();
      throw err;
    }
  }

  /**
   * Opens (or resumes) the namespace's ingest `ref`. An expected digest already committed in the
   * namespace is AlreadyExists; one committed only elsewhere is written again (namespaces are
   * isolated, which also avoids a client-side quirk of the shared policy, see containerd-wire §4.2).
   */
  async writer(ns: string, ref: string, opts: { total?: number; expected?: string; lease?: string; signal?: AbortSignal }): Promise<NamespacedWriter> {
    if (!ref) throw new BerthError('InvalidArgument', 'ref must not be empty');
    if (opts.expected) {
      checkDigest(opts.expected);
      if ((await this.db.get(contentKey(ns, opts.expected))) !== undefined && (await this.store.exists(opts.expected))) {
        throw new BerthError('AlreadyExists', `content ${opts.expected}`);
      }
    }
    const globallyPresent = opts.expected ? await this.store.exists(opts.expected) : false;
    const writer = await this.store.writer(storeRef(ns, ref), {
      total: opts.total || undefined,
      // The store refuses an expected digest it already holds; the commit checks it instead.
      expected: globallyPresent ? undefined : opts.expected || undefined,
      signal: opts.signal,
    });
    try {
      await this.db.update(async (tx) => {
        const existing = await tx.get<IngestRecord>(ingestKey(ns, ref));
        const record: IngestRecord = existing ?? { createdAt: nowTimestamp() };
        if (opts.lease) {
          await this.leases.addResource(tx, ns, opts.lease, { type: 'ingests', id: ref }).catch((err) => {
            throw isLeaseMissing(err) ? new BerthError('NotFound', `lease ${JSON.stringify(opts.lease)} does not exist`) : err;
          });
          record.lease = opts.lease;
        }
        await tx.putObject(ns, 'ingests', ref, record);
      });
    } catch (err) {
      await writer.close();
      throw err;
    }
    return new NamespacedWriter(this, this.db, this.leases, ns, ref, writer, opts.lease);
  }

  async status(ns: string, ref: string): Promise<IngestStatus> {
    if ((await this.db.get(ingestKey(ns, ref))) === undefined) throw new BerthError('NotFound', `ref ${JSON.stringify(ref)}`);
    return toStatus(ref, await this.store.status(storeRef(ns, ref)));
  }

  async listStatuses(ns: string): Promise<IngestStatus[]> {
    const out: IngestStatus[] = [];
    for await (const [ref] of this.db.scan<IngestRecord>(objectPrefix(ns, 'ingests'))) {
      try {
        out.push(toStatus(ref, await this.store.status(storeRef(ns, ref))));
      } catch {
        // expired or aborted under us; the collector removes the record
      }
    }
    return out;
  }

  async abort(ns: string, ref: string): Promise<void> {
    await this.db.update(async (tx) => {
      if ((await tx.get(ingestKey(ns, ref))) === undefined) throw new BerthError('NotFound', `ref ${JSON.stringify(ref)}`);
      tx.del(ingestKey(ns, ref));
    });
    await this.store.abort(storeRef(ns, ref)).catch((err) => {
      if (!(err instanceof BerthError && err.kind === 'NotFound')) throw err;
    });
  }

  /** @internal the collector removes an ingest record and its data. */
  async dropIngest(tx: Transaction, ns: string, ref: string): Promise<void> {
    tx.del(ingestKey(ns, ref));
    tx.afterCommit(() => void this.store.abort(storeRef(ns, ref)).catch(() => undefined));
  }
}

function isLeaseMissing(err: unknown): boolean {
  return err instanceof BerthError && err.kind === 'NotFound';
}

/** A writer on one namespace's ingest: the store's writer plus the namespace bookkeeping at commit. */
export class NamespacedWriter {
  constructor(
    private readonly content: MetadataContent,
    private readonly db: MetadataDB,
    private readonly leases: LeaseStore,
    readonly ns: string,
    readonly ref: string,
    private readonly inner: ContentWriter,
    private readonly lease: string | undefined,
  ) {}

  status(): IngestStatus {
    return toStatus(this.ref, this.inner.status());
  }

  digest(): string {
    return this.inner.digest();
  }

  write(data: Uint8Array): Promise<number> {
    return this.inner.write(data);
  }

  truncate(size: number): Promise<void> {
    return this.inner.truncate(size);
  }

  /**
   * Commits the ingest into the namespace: the blob (unless the store already has it, in which
   * case the bytes written must have its digest), the namespace record with labels, and the
   * lease link. Runs as a metadata update so a concurrent collection cannot remove the blob
   * between the store commit and the record.
   */
  async commit(size: number, expected: string | undefined, labels: Labels | undefined): Promise<void> {
    if (expected) checkDigest(expected);
    validateLabels(labels);
    const { ns, ref } = this;
    if (expected && (await this.db.get(contentKey(ns, expected))) !== undefined && (await this.content.store.exists(expected))) {
      await this.content.abort(ns, ref);
      throw new BerthError('AlreadyExists', `content ${expected}`);
    }
    const duplicate = await this.db.update(async (tx) => {
      let digest: string;
      let blobSize: number;
      try {
        const info = await this.inner.commit({ size: size || undefined, expected: expected || undefined });
        digest = info.digest;
        blobSize = info.size;
      } catch (err) {
        if (!isAlreadyExists(err)) throw err;
        // The store holds the blob already (another namespace, or ours): the bytes matched it.
        digest = this.inner.digest();
        blobSize = this.inner.status().offset;
        if (expected && expected !== digest) {
          throw new BerthError('FailedPrecondition', `unexpected commit digest ${digest}, expected ${expected}`);
        }
      }
      // From here the ingest is gone from the store, whatever the namespace record says.
      tx.del(objectKey(ns, 'ingests', ref));
      if (this.lease) {
        await this.leases.deleteResource(tx, ns, this.lease, { type: 'ingests', id: ref }).catch(() => undefined);
      }
      if ((await tx.get(contentKey(ns, digest))) !== undefined) return digest;
      const now = nowTimestamp();
      await tx.putObject(ns, 'content', digest, {
        size: blobSize,
        createdAt: now,
        updatedAt: now,
        labels: Object.fromEntries(Object.entries(labels ?? {}).filter(([, v]) => v !== '')),
      } satisfies ContentRecord);
      if (this.lease) {
        await this.leases.addResource(tx, ns, this.lease, { type: 'content', id: digest }).catch(() => undefined);
      }
      return undefined;
    });
    if (duplicate) throw new BerthError('AlreadyExists', `content ${duplicate}`);
  }

  /** Releases the ingest for a later writer to resume (the data stays). */
  close(): Promise<void> {
    return this.inner.close();
  }
}
