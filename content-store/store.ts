// The local content store: committed blobs at blobs/sha256/<hex> (read-only files, named by
// their digest) and resumable ingests at ingest/<sha256(ref)>/. It is containerd's
// content/local store in TypeScript; labels, namespaces and leases are layered above it by the
// metadata store.
import * as fs from 'node:fs';
import { constants as fsc, type Stats } from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { BerthError, isKind } from '../services/errdefs';
import { digestFromHex, digestHex, isDigestHex, validateDigest, type Digest } from './digest';
import { blobExists, blobNotFound, ingestNotFound, isENOENT, throwIfAborted } from './errors';
import { IngestDir, ingestKey, openIngest } from './ingest';
import { RefLocks } from './locks';
import { BlobReader, rangeStream, readRange } from './reader';
import type {
  ContentStoreOptions,
  ExpiredIngest,
  Info,
  ReadStreamOptions,
  Status,
  StoreLogger,
  WalkOptions,
  WriterOptions,
} from './types';
import { ContentWriter, type WriterContext } from './writer';

export const DEFAULT_INGEST_EXPIRY = 24 * 60 * 60 * 1000;
const DEFAULT_BUFFER = 4 << 20;
const DEFAULT_SYNC_INTERVAL = 16 << 20;
const DEFAULT_LOCK_RETRIES = 10;

export class ContentStore {
  readonly root: string;
  private readonly blobDir: string;
  private readonly ingestRoot: string;
  private readonly locks: RefLocks;
  private readonly log: StoreLogger | undefined;
  private readonly ingestExpiry: number;
  private readonly lockRetries: number;
  private readonly writerContext: WriterContext;
  private dirsReady: Promise<void> | undefined;
  private expireTimer: NodeJS.Timeout | undefined;

  constructor(root: string, options: ContentStoreOptions = {}) {
    this.root = path.resolve(root);
    this.blobDir = path.join(this.root, 'blobs', 'sha256');
    this.ingestRoot = path.join(this.root, 'ingest');
    this.locks = options.locks ?? new RefLocks();
    this.log = options.log;
    this.ingestExpiry = options.ingestExpiry ?? DEFAULT_INGEST_EXPIRY;
    this.lockRetries = options.lockRetries ?? DEFAULT_LOCK_RETRIES;
    this.writerContext = {
      blobPath: (d) => this.blobPath(d),
      ensureBlobDir: async () => {
        await this.ensureDirs();
        return this.blobDir;
      },
      bufferSize: positive(options.writeBufferSize, DEFAULT_BUFFER),
      syncInterval: options.syncInterval ?? DEFAULT_SYNC_INTERVAL,
      log: this.log,
    };
    if (options.expireInterval && options.expireInterval > 0) {
      this.expireTimer = setInterval(() => {
        this.expireIngests().catch((err: unknown) => this.log?.warn({ err }, 'ingest expiry failed'));
      }, options.expireInterval);
      this.expireTimer.unref();
    }
  }

  /** Stops the expiry timer. Open writers and readers stay usable. */
  close(): void {
    if (this.expireTimer) clearInterval(this.expireTimer);
    this.expireTimer = undefined;
  }

  /** Where the blob for `d` lives (whether or not it exists); InvalidArgument for a bad digest. */
  blobPath(d: Digest): string {
    return path.join(this.blobDir, digestHex(d));
  }

  // ---- blobs ----

  async info(d: Digest): Promise<Info> {
    return blobInfo(d, await this.statBlob(d));
  }

  async exists(d: Digest): Promise<boolean> {
    try {
      await this.statBlob(d);
      return true;
    } catch (err) {
      if (isKind(err, 'NotFound')) return false;
      throw err;
    }
  }

  /** Removes a blob; NotFound if it is not there. Open readers keep reading the old bytes. */
  async delete(d: Digest): Promise<void> {
    const p = this.blobPath(d);
    try {
      await fsp.unlink(p);
    } catch (err) {
      if (isENOENT(err)) throw blobNotFound(d);
      throw err;
    }
  }

  /** Every committed blob, in directory order. */
  async *walk(opts: WalkOptions = {}): AsyncGenerator<Info> {
    let dir;
    try {
      dir = await fsp.opendir(this.blobDir);
    } catch (err) {
      if (isENOENT(err)) return;
      throw err;
    }
    // The for-await closes the directory however the loop ends.
    for await (const entry of dir) {
      throwIfAborted(opts.signal, 'walking content');
      if (!isDigestHex(entry.name)) continue;
      let st: Stats;
      try {
        st = await fsp.stat(path.join(this.blobDir, entry.name));
      } catch (err) {
        if (isENOENT(err)) continue; // deleted while walking
        throw err;
      }
      if (st.isFile()) yield blobInfo(digestFromHex(entry.name), st);
    }
  }

  /** Opens a blob for positional reads; the caller closes it. */
  async readerAt(d: Digest): Promise<BlobReader> {
    const fh = await this.openBlob(d);
    try {
      return new BlobReader(d, (await fh.stat()).size, fh);
    } catch (err) {
      await fh.close();
      throw err;
    }
  }

  /**
   * A stream of the blob's bytes (or a range of them) in bounded chunks with back-pressure.
   * NotFound and OutOfRange (offset past the size) are thrown before any byte is produced.
   */
  async createReadStream(d: Digest, opts: ReadStreamOptions = {}): Promise<Readable> {
    const r = await this.readRange(d, opts);
    return Buffer.isBuffer(r) ? Readable.from(r.length > 0 ? [r] : [], { objectMode: false }) : r;
  }

  /** As createReadStream, but a small range comes back read, as a Buffer, without a stream. */
  async readRange(d: Digest, opts: ReadStreamOptions = {}): Promise<Buffer | Readable> {
    throwIfAborted(opts.signal, `reading ${d}`);
    const small = this.readSmall(d, opts);
    if (small) return small;
    const fh = await this.openBlob(d);
    let range;
    try {
      range = readRange((await fh.stat()).size, opts.offset, opts.length);
    } catch (err) {
      await fh.close();
      throw err;
    }
    return rangeStream(fh, range.start, range.length, opts.chunkSize, opts.signal);
  }

  // ---- ingests ----

  /**
   * Opens the ingest `ref` for writing, resuming it when it exists (its status reports the
   * offset reached; the digest so far is rebuilt by reading the data back). A ref has one
   * writer at a time: another gets Unavailable until the first closes or commits. With
   * `expected` already committed, AlreadyExists.
   */
  async writer(ref: string, opts: WriterOptions = {}): Promise<ContentWriter> {
    if (ref === '') throw new BerthError('InvalidArgument', 'ref must not be empty');
    const total = opts.total ?? 0;
    if (!Number.isSafeInteger(total) || total < 0) {
      throw new BerthError('InvalidArgument', `invalid total ${total} for ref ${JSON.stringify(ref)}`);
    }
    const expected = opts.expected ? validateDigest(opts.expected) : undefined;
    const release = await this.lock(ref, opts.signal);
    try {
      if (expected && (await this.exists(expected))) throw blobExists(expected);
      await this.ensureDirs();
      const dir = this.ingestDir(ref);
      const opened = await openIngest(dir, ref, { total, expected }, this.log, opts.signal);
      const w = new ContentWriter(this.writerContext, ref, dir, opened, release);
      this.locks.setHolder(ref, w);
      return w;
    } catch (err) {
      release();
      throw err;
    }
  }

  /** The status of ingest `ref`; NotFound if there is none. Live figures if a writer here holds it. */
  async status(ref: string): Promise<Status> {
    const live = this.locks.holder(ref);
    if (live instanceof ContentWriter) return live.status();
    const status = await this.ingestDir(ref).readStatus();
    if (!status || status.ref !== ref) throw ingestNotFound(ref);
    return status;
  }

  /** Every ingest in progress or left to resume (incomplete directories are skipped). */
  async listStatuses(): Promise<Status[]> {
    const out: Status[] = [];
    for (const name of await this.ingestNames()) {
      const status = await new IngestDir(path.join(this.ingestRoot, name)).readStatus();
      if (!status) continue;
      const live = this.locks.holder(status.ref);
      out.push(live instanceof ContentWriter ? live.status() : status);
    }
    return out;
  }

  /**
   * Removes ingest `ref` and its data; NotFound if there is none. An open writer on it is
   * stopped first (its later calls fail), as containerd removes the files under a live writer.
   * Unavailable only while another writer is still being opened on the ref.
   */
  async abort(ref: string): Promise<void> {
    await this.locks.holder(ref)?.discard();
    const release = this.locks.tryLock(ref);
    try {
      const dir = this.ingestDir(ref);
      try {
        await fsp.access(dir.path);
      } catch (err) {
        if (isENOENT(err)) throw ingestNotFound(ref);
        throw err;
      }
      await dir.remove();
    } finally {
      release();
    }
  }

  /**
   * Removes ingests idle for longer than `maxAge` ms (default: the store's ingestExpiry, 24 h):
   * no write and no writer closed on them since. Incomplete ingest directories older
   * than that go too. Ingests held by a writer are left alone. Returns what was removed.
   */
  async expireIngests(maxAge = this.ingestExpiry, opts: { signal?: AbortSignal } = {}): Promise<ExpiredIngest[]> {
    const cutoff = Date.now() - maxAge;
    const removed: ExpiredIngest[] = [];
    for (const name of await this.ingestNames()) {
      throwIfAborted(opts.signal, 'expiring ingests');
      const dir = new IngestDir(path.join(this.ingestRoot, name));
      const status = await dir.readStatus();
      if (status) {
        // Last activity: the last write (updatedat, data mtime) or the last close of a writer
        // (which replaces `updatedat`, moving the directory's mtime).
        const dirTime = (await fsp.stat(dir.path).catch(() => undefined))?.mtime.getTime() ?? 0;
        if (Math.max(status.updatedAt.getTime(), dirTime) > cutoff) continue;
        let release;
        try {
          release = this.locks.tryLock(status.ref);
        } catch {
          continue; // a writer holds it
        }
        try {
          await dir.remove();
        } finally {
          release();
        }
        removed.push({ ref: status.ref, path: dir.path, offset: status.offset, updatedAt: status.updatedAt });
      } else {
        // Incomplete: judge by the directory's own time; skip one a writer may be creating now.
        let st;
        try {
          st = await fsp.stat(dir.path);
        } catch (err) {
          if (isENOENT(err)) continue;
          throw err;
        }
        if (!st.isDirectory() || st.mtime.getTime() > cutoff) continue;
        const ref = await fsp.readFile(dir.file('ref'), 'utf8').catch(() => undefined);
        if (ref !== undefined && this.locks.isLocked(ref)) continue;
        await dir.remove();
        removed.push({ ref, path: dir.path, offset: 0, updatedAt: st.mtime });
      }
    }
    if (removed.length > 0) {
      this.log?.info({ removed: removed.map((r) => r.ref ?? r.path) }, 'expired ingests removed');
    }
    return removed;
  }

  /**
   * Writes a whole blob from `source` under `ref` and commits it (containerd's content.WriteBlob
   * without the resume: an existing ingest is started over). AlreadyExists if it is committed.
   */
  async writeBlob(
    ref: string,
    source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
    opts: WriterOptions = {},
  ): Promise<Info> {
    const w = await this.writer(ref, opts);
    try {
      await w.truncate(0);
      for await (const chunk of source) {
        throwIfAborted(opts.signal, `writing ${JSON.stringify(ref)}`);
        await w.write(chunk);
      }
      return await w.commit();
    } finally {
      await w.close();
    }
  }

  // ---- internals ----

  private ingestDir(ref: string): IngestDir {
    return new IngestDir(path.join(this.ingestRoot, ingestKey(ref)));
  }

  private ensureDirs(): Promise<void> {
    this.dirsReady ??= (async () => {
      await fsp.mkdir(this.ingestRoot, { recursive: true, mode: 0o755 });
      await fsp.mkdir(this.blobDir, { recursive: true, mode: 0o755 });
    })().catch((err: unknown) => {
      this.dirsReady = undefined;
      throw err;
    });
    return this.dirsReady;
  }

  private async ingestNames(): Promise<string[]> {
    try {
      return (await fsp.readdir(this.ingestRoot)).filter(isDigestHex);
    } catch (err) {
      if (isENOENT(err)) return [];
      throw err;
    }
  }

  /**
   * The range, read at once, when the blob is small (manifests, indexes, configs: most of what
   * clients read); undefined for a larger one, to be streamed. Synchronous, like the stat below:
   * a few microseconds from the page cache, where each asynchronous step would be a round trip
   * through libuv's thread pool.
   */
  private readSmall(d: Digest, opts: ReadStreamOptions): Buffer | undefined {
    let fd: number;
    try {
      fd = fs.openSync(this.blobPath(d), fsc.O_RDONLY);
    } catch (err) {
      if (isENOENT(err)) throw blobNotFound(d);
      throw err;
    }
    try {
      const range = readRange(fs.fstatSync(fd).size, opts.offset, opts.length);
      if (range.length === 0 || range.length > Math.min(SMALL_READ, opts.chunkSize ?? SMALL_READ)) return range.length === 0 ? Buffer.alloc(0) : undefined;
      const buf = Buffer.allocUnsafe(range.length);
      let got = 0;
      while (got < range.length) {
        const n = fs.readSync(fd, buf, got, range.length - got, range.start + got);
        if (n === 0) break; // shorter than its size said: the caller sees the bytes that are there
        got += n;
      }
      return buf.subarray(0, got);
    } finally {
      fs.closeSync(fd);
    }
  }

  private async statBlob(d: Digest): Promise<Stats> {
    const p = this.blobPath(d);
    try {
      const st = fs.statSync(p);
      if (st.isFile()) return st;
    } catch (err) {
      if (!isENOENT(err)) throw err;
    }
    throw blobNotFound(d);
  }

  private async openBlob(d: Digest): Promise<fsp.FileHandle> {
    const p = this.blobPath(d);
    try {
      return await fsp.open(p, fsc.O_RDONLY);
    } catch (err) {
      if (isENOENT(err)) throw blobNotFound(d);
      throw err;
    }
  }

  /** containerd's tryLock loop: a few attempts with random back-off growing to ~0.5 s. */
  private async lock(ref: string, signal: AbortSignal | undefined): Promise<() => void> {
    for (let attempt = 0; ; attempt++) {
      throwIfAborted(signal, `waiting for ref ${ref}`);
      try {
        return this.locks.tryLock(ref);
      } catch (err) {
        if (!isKind(err, 'Unavailable') || attempt + 1 >= this.lockRetries) throw err;
      }
      await sleep(Math.floor(Math.random() * (1 << attempt)), undefined, { signal }).catch(() => undefined);
    }
  }
}

/** Reads up to this size are done in one synchronous read (see readSmall). */
const SMALL_READ = 256 * 1024;

function blobInfo(d: Digest, st: Stats): Info {
  return { digest: d, size: st.size, createdAt: st.mtime, updatedAt: st.atime };
}

function positive(n: number | undefined, fallback: number): number {
  return n !== undefined && Number.isSafeInteger(n) && n > 0 ? n : fallback;
}
