// One ingest directory, `ingest/<sha256(ref) hex>/`, laid out as containerd lays it out so an
// operator can read it with ls and cat:
//
//   data       the bytes written so far (its size is the offset a resumed writer continues from)
//   ref        the ref, verbatim
//   startedat  RFC 3339 time the ingest began
//   updatedat  RFC 3339 time of the last close (the data file's mtime is used when later)
//   total      expected size, when known
//   expected   expected digest, when known (containerd 1.6 keeps this only in its metadata DB)
//
// The metadata files are written before the data file is created and replaced atomically, so a
// process killed at any point leaves either a complete ingest or one without `data`, which
// readers treat as absent and the next writer recreates.
import { createHash } from 'node:crypto';
import { constants as fsc } from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { BerthError } from '../services/errdefs';
import { Digester, isDigest, type Digest } from './digest';
import { errnoCode, isENOENT, throwIfAborted } from './errors';
import { parseTimestamp, readTextFile, writeFileAtomic, writeTimestampFile } from './files';
import type { Status, StoreLogger } from './types';

const REHASH_CHUNK = 4 << 20;

/** The directory name of a ref's ingest: a digest of the ref keeps paths short and safe. */
export function ingestKey(ref: string): string {
  return createHash('sha256').update(ref).digest('hex');
}

export class IngestDir {
  constructor(readonly path: string) {}

  get data(): string {
    return path.join(this.path, 'data');
  }

  file(name: 'ref' | 'startedat' | 'updatedat' | 'total' | 'expected'): string {
    return path.join(this.path, name);
  }

  /**
   * The ingest's status as recorded on disk, or undefined if there is no usable ingest here
   * (missing directory, no data file, unreadable ref or timestamps).
   */
  async readStatus(): Promise<Status | undefined> {
    let st;
    try {
      st = await fsp.stat(this.data);
    } catch (err) {
      if (isENOENT(err) || errnoCode(err) === 'ENOTDIR') return undefined;
      throw err;
    }
    const [ref, startedText, updatedText, totalText, expectedText] = await Promise.all([
      readTextFile(this.file('ref')),
      readTextFile(this.file('startedat')),
      readTextFile(this.file('updatedat')),
      readTextFile(this.file('total')),
      readTextFile(this.file('expected')),
    ]);
    if (ref === undefined || startedText === undefined || updatedText === undefined) return undefined;
    const startedAt = parseTimestamp(startedText);
    let updatedAt = parseTimestamp(updatedText);
    if (!startedAt || !updatedAt) return undefined;
    // updatedat is written on close only; the data file's mtime is fresher while writing.
    if (st.mtime > updatedAt) updatedAt = st.mtime;
    const total = totalText === undefined ? 0 : Number.parseInt(totalText.trim(), 10);
    const expected = expectedText?.trim();
    const status: Status = {
      ref,
      offset: st.size,
      total: Number.isSafeInteger(total) && total > 0 ? total : 0,
      startedAt,
      updatedAt,
    };
    if (expected && isDigest(expected)) status.expected = expected;
    return status;
  }

  /** Writes the metadata of a fresh ingest (the data file is created afterwards by the opener). */
  async writeMetadata(ref: string, startedAt: Date, total: number, expected: Digest | undefined): Promise<void> {
    await writeFileAtomic(this.file('ref'), ref);
    await writeTimestampFile(this.file('startedat'), startedAt);
    await writeTimestampFile(this.file('updatedat'), startedAt);
    await this.writeTotal(total);
    await this.writeExpected(expected);
  }

  async writeTotal(total: number): Promise<void> {
    if (total > 0) await writeFileAtomic(this.file('total'), String(total));
    else await fsp.rm(this.file('total'), { force: true });
  }

  async writeExpected(expected: Digest | undefined): Promise<void> {
    if (expected) await writeFileAtomic(this.file('expected'), expected);
    else await fsp.rm(this.file('expected'), { force: true });
  }

  async remove(): Promise<void> {
    await fsp.rm(this.path, { recursive: true, force: true });
  }
}

/** An ingest opened for writing: the data file and where writing continues. */
export interface OpenedIngest {
  fh: fsp.FileHandle;
  offset: number;
  digester: Digester;
  startedAt: Date;
  updatedAt: Date;
  total: number;
  expected?: Digest;
  resumed: boolean;
}

/**
 * Opens `dir` for `ref`, resuming what is there when it belongs to the same ref and agrees with
 * the requested total and expected digest (the running digest is rebuilt by re-reading the data),
 * otherwise starting afresh. The caller holds the ref's lock.
 */
export async function openIngest(
  dir: IngestDir,
  ref: string,
  want: { total: number; expected?: Digest },
  log: StoreLogger | undefined,
  signal: AbortSignal | undefined,
): Promise<OpenedIngest> {
  let created = false;
  try {
    await fsp.mkdir(dir.path, { mode: 0o755 });
    created = true;
  } catch (err) {
    if (errnoCode(err) !== 'EEXIST') throw err;
  }

  if (!created) {
    const resumed = await tryResume(dir, ref, want, log, signal);
    if (resumed) return resumed;
  }

  // A fresh ingest. Unlink rather than truncate leftover data: after a crash between commit's
  // link and cleanup it is the committed blob's inode.
  await fsp.rm(dir.data, { force: true });
  const startedAt = new Date();
  await dir.writeMetadata(ref, startedAt, want.total, want.expected);
  const fh = await fsp.open(dir.data, fsc.O_RDWR | fsc.O_CREAT | fsc.O_TRUNC, 0o644);
  return {
    fh,
    offset: 0,
    digester: new Digester(),
    startedAt,
    updatedAt: startedAt,
    total: want.total,
    expected: want.expected,
    resumed: false,
  };
}

async function tryResume(
  dir: IngestDir,
  ref: string,
  want: { total: number; expected?: Digest },
  log: StoreLogger | undefined,
  signal: AbortSignal | undefined,
): Promise<OpenedIngest | undefined> {
  const status = await dir.readStatus();
  const problem =
    status === undefined
      ? 'incomplete ingest'
      : status.ref !== ref
        ? `ref key does not match: ${JSON.stringify(ref)} != ${JSON.stringify(status.ref)}`
        : want.total > 0 && status.total > 0 && want.total !== status.total
          ? `provided total differs from status: ${want.total} != ${status.total}`
          : want.expected && status.expected && want.expected !== status.expected
            ? `provided expected digest differs from status: ${want.expected} != ${status.expected}`
            : undefined;
  if (problem !== undefined || status === undefined) {
    log?.info({ ref, path: dir.path, reason: problem }, 'cannot resume ingest, starting afresh');
    return undefined;
  }

  let fh: fsp.FileHandle | undefined;
  try {
    fh = await fsp.open(dir.data, fsc.O_RDWR);
    const st = await fh.stat();
    if (st.nlink > 1) {
      // Left by a commit interrupted after linking the data into blobs/: it is a blob now.
      log?.info({ ref, path: dir.path }, 'ingest data already committed, starting afresh');
      await fh.close();
      return undefined;
    }
    const digester = new Digester();
    const offset = await rehash(fh, digester, signal, ref);
    if (want.total > 0 && status.total === 0) await dir.writeTotal(want.total);
    if (want.expected && !status.expected) await dir.writeExpected(want.expected);
    return {
      fh,
      offset,
      digester,
      startedAt: status.startedAt,
      updatedAt: status.updatedAt,
      total: want.total > 0 ? want.total : status.total,
      expected: want.expected ?? status.expected,
      resumed: true,
    };
  } catch (err) {
    await fh?.close().catch(() => undefined);
    if (isENOENT(err)) return undefined;
    throw err;
  }
}

/** Feeds the whole file to the digester; returns its length. */
async function rehash(
  fh: fsp.FileHandle,
  digester: Digester,
  signal: AbortSignal | undefined,
  ref: string,
): Promise<number> {
  const buf = Buffer.allocUnsafe(REHASH_CHUNK);
  let pos = 0;
  for (;;) {
    throwIfAborted(signal, `resuming ingest ${JSON.stringify(ref)}`);
    const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
    if (bytesRead === 0) return pos;
    digester.update(buf.subarray(0, bytesRead));
    pos += bytesRead;
  }
}

/** Re-reads the first `length` bytes of the data file into a fresh digester (for truncate). */
export async function hashPrefix(fh: fsp.FileHandle, length: number): Promise<Digester> {
  const digester = new Digester();
  const buf = Buffer.allocUnsafe(Math.min(REHASH_CHUNK, Math.max(length, 1)));
  let pos = 0;
  while (pos < length) {
    const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, length - pos), pos);
    if (bytesRead === 0) throw new BerthError('Internal', `ingest data shorter than ${length} bytes`);
    digester.update(buf.subarray(0, bytesRead));
    pos += bytesRead;
  }
  return digester;
}
