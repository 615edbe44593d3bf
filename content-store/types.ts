// The store's plain data types and options. Labels are not here: they belong to the metadata
// layer above, which keeps them per namespace.
import type { Logger } from 'pino';
import type { Digest } from './digest';
import type { RefLocks } from './locks';

/** A committed blob. */
export interface Info {
  digest: Digest;
  size: number;
  /** When the blob was committed (the file's mtime). */
  createdAt: Date;
  /** The file's atime, as containerd reports it. */
  updatedAt: Date;
}

/** An ingest in progress (or left behind by a writer that closed or died). */
export interface Status {
  ref: string;
  /** Bytes written so far; a resumed writer continues from here. */
  offset: number;
  /** Expected total size, 0 when unknown. */
  total: number;
  /** Expected digest, when the writer was opened with one. */
  expected?: Digest;
  startedAt: Date;
  updatedAt: Date;
}

export interface WriterOptions {
  /** Expected total size (recorded in the ingest's `total` file, checked at commit). */
  total?: number;
  /** Expected digest: refused up front if already committed, checked at commit. */
  expected?: Digest;
  /** Cancels waiting for the lock and re-reading a resumed ingest. */
  signal?: AbortSignal;
}

export interface CommitOptions {
  /** Size to check; defaults to the writer's total (0 or absent: not checked). */
  size?: number;
  /** Digest to check; defaults to the writer's expected digest. */
  expected?: Digest;
}

export interface ReadStreamOptions {
  /** First byte to read (negative is treated as 0); past the blob's size is OutOfRange. */
  offset?: number;
  /** How many bytes to read; absent, 0 or past the end: up to the end. */
  length?: number;
  /** Bytes per chunk (default 1 MiB, containerd's read buffer). */
  chunkSize?: number;
  signal?: AbortSignal;
}

export interface WalkOptions {
  signal?: AbortSignal;
}

export type StoreLogger = Pick<Logger, 'warn' | 'info' | 'debug'>;

export interface ContentStoreOptions {
  /**
   * Age (ms since the last write) after which an idle ingest is removed by expireIngests();
   * default 24 h, the expiry containerd gives an ingest that is not held by a lease.
   */
  ingestExpiry?: number;
  /** When set, expireIngests() runs every this many ms until close() (timer does not hold the process). */
  expireInterval?: number;
  /** Bytes a writer gathers before one write(2) (default 4 MiB; two per open writer). */
  writeBufferSize?: number;
  /**
   * A writer starts an fdatasync in the background after every this many bytes, so most data is
   * already on disk when commit's fsync runs (default 16 MiB; 0 turns it off).
   */
  syncInterval?: number;
  /** Attempts to take a busy ref lock before Unavailable, with random back-off (default 10, as containerd). */
  lockRetries?: number;
  /** Lock table to share between stores opened on the same root in one process. */
  locks?: RefLocks;
  log?: StoreLogger;
}

/** A removed ingest, as reported by expireIngests(). */
export interface ExpiredIngest {
  /** Undefined when the ingest directory was incomplete (no readable `ref`). */
  ref?: string;
  /** The ingest directory that was removed. */
  path: string;
  offset: number;
  updatedAt: Date;
}
