// A write transaction on one ingest: bytes are hashed as they arrive and gathered into a buffer
// that goes to the data file in large writes, one write in flight while the caller produces the
// next buffer. Commit flushes, fsyncs, checks size and digest, and links the data file into
// blobs/ (link fails if the blob exists, so a concurrent identical commit is seen), then removes
// the ingest. Close keeps the ingest for a later writer to resume.
//
// Calls are serialised: a write issued before the previous one settled waits for it.
import * as fsp from 'node:fs/promises';
import { BerthError } from '../services/errdefs';
import { validateDigest, type Digest, type Digester } from './digest';
import {
  blobExists,
  digestMismatch,
  errnoCode,
  ioError,
  sizeMismatch,
  writerClosed,
  wrongOffset,
} from './errors';
import { fsyncDir, writeTimestampFile } from './files';
import { hashPrefix, type IngestDir, type OpenedIngest } from './ingest';
import type { LockHolder } from './locks';
import type { CommitOptions, Info, Status, StoreLogger } from './types';

/** What a writer needs from its store. */
export interface WriterContext {
  blobPath(d: Digest): string;
  ensureBlobDir(): Promise<string>;
  bufferSize: number;
  syncInterval: number;
  log?: StoreLogger;
}

type State = 'open' | 'closed' | 'committed' | 'aborted';

export class ContentWriter implements LockHolder {
  readonly ref: string;
  private readonly dir: IngestDir;
  private readonly ctx: WriterContext;
  private release: (() => void) | undefined;
  private fh: fsp.FileHandle | undefined;

  private digester: Digester;
  private offset: number; // bytes accepted (on disk, in flight or buffered)
  private diskEnd: number; // bytes handed to the file (written or in flight)
  private total: number;
  private expected: Digest | undefined;
  private readonly startedAt: Date;
  private updatedAt: Date;

  private buf: Buffer | undefined;
  private bufLen = 0;
  private spare: Buffer | undefined;
  private inflight: Promise<void> | undefined;
  private pendingSync: Promise<void> | undefined;
  private unsynced = 0;
  private failure: BerthError | undefined;

  private state: State = 'open';
  private chain: Promise<unknown> = Promise.resolve();

  /** @internal built by ContentStore.writer(), which holds the ref's lock and hands it over. */
  constructor(ctx: WriterContext, ref: string, dir: IngestDir, opened: OpenedIngest, release: () => void) {
    this.ctx = ctx;
    this.ref = ref;
    this.dir = dir;
    this.release = release;
    this.fh = opened.fh;
    this.digester = opened.digester;
    this.offset = opened.offset;
    this.diskEnd = opened.offset;
    this.total = opened.total;
    this.expected = opened.expected;
    this.startedAt = opened.startedAt;
    this.updatedAt = opened.updatedAt;
  }

  /** Where the ingest stands: `offset` counts every byte accepted by write(). */
  status(): Status {
    const s: Status = {
      ref: this.ref,
      offset: this.offset,
      total: this.total,
      startedAt: this.startedAt,
      updatedAt: this.updatedAt,
    };
    if (this.expected) s.expected = this.expected;
    return s;
  }

  /** The digest of the bytes written so far (sha256 of nothing for an empty ingest). */
  digest(): Digest {
    return this.digester.digest();
  }

  /**
   * Appends `data`. With `offset`, the write must happen at the current offset, except that 0
   * with data present starts the ingest over (containerd's Content/Write rule); anything else
   * is OutOfRange. Resolves to the offset after the write.
   */
  write(data: Uint8Array, offset?: number): Promise<number> {
    return this.serial(async () => {
      this.assertWritable();
      if (offset !== undefined) {
        if (offset === 0 && this.offset > 0) await this.truncateLocked(0);
        else if (offset !== this.offset) throw wrongOffset(offset, this.offset);
      }
      if (data.byteLength > 0) {
        await this.append(data);
        this.updatedAt = new Date();
      }
      return this.offset;
    });
  }

  /** Cuts the ingest back to `size` bytes (at most the current offset) and re-derives the digest. */
  truncate(size: number): Promise<void> {
    return this.serial(async () => {
      this.assertWritable();
      if (!Number.isSafeInteger(size) || size < 0 || size > this.offset) {
        throw new BerthError('OutOfRange', `truncate to ${size} outside of 0..${this.offset}`);
      }
      await this.truncateLocked(size);
      this.updatedAt = new Date();
    });
  }

  /**
   * Makes the ingest a blob. Checks `size` (default: the writer's total, when known) and
   * `expected` (default: the writer's expected digest). The writer is finished afterwards
   * whatever the outcome; on a failed check the ingest stays on disk to be resumed or aborted,
   * and when the blob already exists the ingest is removed and AlreadyExists thrown.
   */
  commit(opts: CommitOptions = {}): Promise<Info> {
    return this.serial(async () => {
      this.assertWritable();
      const wantSize = opts.size !== undefined && opts.size > 0 ? opts.size : this.total;
      const wantDigest = opts.expected !== undefined && opts.expected !== '' ? opts.expected : this.expected;
      if (wantDigest !== undefined) validateDigest(wantDigest);
      try {
        return await this.commitLocked(wantSize, wantDigest);
      } finally {
        if (this.state === 'open') this.state = 'closed';
        await this.closeHandle().catch(() => undefined);
        this.unlock();
      }
    });
  }

  /**
   * Flushes what was written and releases the ref; the ingest stays on disk so a later writer
   * can resume it. Safe to call more than once and after commit.
   */
  close(): Promise<void> {
    return this.serial(async () => {
      if (this.state !== 'open') return;
      this.state = 'closed';
      let first: unknown;
      try {
        // After a failed write the ingest keeps what reached the file; that error was reported.
        if (!this.failure) await this.drain();
        await this.pendingSync;
        await this.fh?.sync();
      } catch (err) {
        first = err;
      }
      try {
        await this.closeHandle();
        await writeTimestampFile(this.dir.file('updatedat'), this.updatedAt);
      } catch (err) {
        first ??= err;
      } finally {
        this.unlock();
      }
      if (first !== undefined) throw ioError(`closing ingest ${JSON.stringify(this.ref)}`, first);
    });
  }

  /** @internal abort: stop at once, drop buffered bytes, release the ref (the store removes the files). */
  discard(): Promise<void> {
    return this.serial(async () => {
      if (this.state !== 'open') return;
      this.state = 'aborted';
      this.bufLen = 0;
      await this.inflight;
      await this.settleSync().catch(() => undefined);
      await this.closeHandle().catch(() => undefined);
      this.unlock();
    });
  }

  // ---- internals ----

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn);
    this.chain = run.catch(() => undefined);
    return run;
  }

  private assertWritable(): void {
    if (this.state !== 'open') throw writerClosed(this.ref, this.state);
    if (this.failure) throw this.failure;
  }

  private unlock(): void {
    const release = this.release;
    this.release = undefined;
    release?.();
  }

  private async closeHandle(): Promise<void> {
    const fh = this.fh;
    this.fh = undefined;
    await fh?.close();
  }

  /** Copies `data` into the buffer, sending each full buffer to disk, then hashes it. */
  private async append(data: Uint8Array): Promise<void> {
    const size = this.ctx.bufferSize;
    let pos = 0;
    while (pos < data.byteLength) {
      this.buf ??= this.spare ?? Buffer.allocUnsafe(size);
      if (this.buf === this.spare) this.spare = undefined;
      const n = Math.min(data.byteLength - pos, size - this.bufLen);
      this.buf.set(data.subarray(pos, pos + n), this.bufLen);
      this.bufLen += n;
      this.offset += n;
      pos += n;
      if (this.bufLen === size) await this.flushBuffer();
    }
    // Hashing here overlaps with the write(2) just started on libuv's thread pool.
    this.digester.update(data);
  }

  /** Starts writing the current buffer (after the previous write finished). */
  private async flushBuffer(): Promise<void> {
    await this.inflight;
    if (this.failure) throw this.failure;
    const buf = this.buf;
    const len = this.bufLen;
    if (!buf || len === 0) return;
    const at = this.diskEnd;
    this.buf = undefined;
    this.bufLen = 0;
    this.diskEnd += len;
    this.inflight = this.writeOut(buf, len, at).then(
      () => {
        this.spare = buf;
        this.inflight = undefined;
      },
      (err: unknown) => {
        this.failure = ioError(`writing ingest ${JSON.stringify(this.ref)}`, err);
        this.inflight = undefined;
      },
    );
  }

  private async writeOut(buf: Buffer, len: number, at: number): Promise<void> {
    const fh = this.fh;
    if (!fh) throw writerClosed(this.ref, 'closed');
    let done = 0;
    while (done < len) {
      const { bytesWritten } = await fh.write(buf, done, len - done, at + done);
      if (bytesWritten <= 0) throw new Error(`short write at ${at + done}`);
      done += bytesWritten;
    }
    this.unsynced += len;
    if (this.ctx.syncInterval > 0 && this.unsynced >= this.ctx.syncInterval && !this.pendingSync) {
      // Start pushing data to disk now so that commit's fsync has little left to do.
      this.unsynced = 0;
      this.pendingSync = fh.datasync().then(
        () => {
          this.pendingSync = undefined;
        },
        (err: unknown) => {
          this.failure ??= ioError(`syncing ingest ${JSON.stringify(this.ref)}`, err);
          this.pendingSync = undefined;
        },
      );
    }
  }

  /** Everything accepted is in the file once this resolves. */
  private async drain(): Promise<void> {
    await this.flushBuffer();
    await this.inflight;
    if (this.failure) throw this.failure;
  }

  private async settleSync(): Promise<void> {
    await this.pendingSync;
    if (this.failure) throw this.failure;
  }

  private async truncateLocked(size: number): Promise<void> {
    const fh = this.fh;
    if (!fh) throw writerClosed(this.ref, 'closed');
    if (size === 0) {
      // Nothing worth keeping: drop the buffer instead of writing it out.
      this.bufLen = 0;
      await this.inflight;
      await this.pendingSync;
      if (this.failure) throw this.failure;
      await fh.truncate(0);
      this.digester.reset();
    } else {
      await this.drain();
      await fh.truncate(size);
      this.digester = await hashPrefix(fh, size);
    }
    this.offset = size;
    this.diskEnd = size;
  }

  private async commitLocked(wantSize: number, wantDigest: Digest | undefined): Promise<Info> {
    const fh = this.fh;
    if (!fh) throw writerClosed(this.ref, 'closed');
    const what = `committing ingest ${JSON.stringify(this.ref)}`;
    let size: number;
    try {
      await this.drain();
      await this.settleSync();
      await fh.sync();
      size = (await fh.stat()).size;
    } catch (err) {
      throw ioError(what, err);
    }
    if (size !== this.offset) {
      throw new BerthError('Internal', `${what}: data file holds ${size} bytes, ${this.offset} were written`);
    }
    if (wantSize > 0 && wantSize !== size) throw sizeMismatch(this.ref, size, wantSize);
    const dgst = this.digester.digest();
    if (wantDigest !== undefined && wantDigest !== dgst) throw digestMismatch(dgst, wantDigest);

    const target = this.ctx.blobPath(dgst);
    const now = new Date();
    // Read-only and dated before it becomes visible under blobs/.
    await fh.chmod(0o444);
    await fh.utimes(now, now);
    await this.closeHandle();
    const blobDir = await this.ctx.ensureBlobDir();
    try {
      await fsp.link(this.dir.data, target);
    } catch (err) {
      if (errnoCode(err) === 'EEXIST') {
        await this.dir.remove();
        throw blobExists(dgst);
      }
      await fsp.chmod(this.dir.data, 0o644).catch(() => undefined);
      throw ioError(what, err);
    }
    this.state = 'committed';
    await fsyncDir(blobDir);
    try {
      await this.dir.remove();
    } catch (err) {
      // The blob is committed; a leftover ingest is only clutter (resume recognises it).
      this.ctx.log?.warn({ ref: this.ref, path: this.dir.path, err }, 'failed to remove ingest directory');
    }
    return { digest: dgst, size, createdAt: now, updatedAt: now };
  }
}
