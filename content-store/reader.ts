// Reading committed blobs: positional reads on an open handle, and bounded streams.
import type { FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import type { Digest } from './digest';
import { readPastEnd } from './errors';

const DEFAULT_CHUNK = 1 << 20;

/**
 * An open blob: read any range at any time. Keeps working if the blob is deleted meanwhile
 * (the inode lives until close). Reads at or past the end return 0 bytes, like pread(2);
 * containerd's ReaderAt reports io.EOF there.
 */
export class BlobReader {
  constructor(
    readonly digest: Digest,
    readonly size: number,
    /** The underlying read-only handle, for callers that want fs APIs directly. */
    readonly handle: FileHandle,
  ) {}

  /** Reads into `buffer` from `position`; resolves to the byte count (short only at the end). */
  async readAt(buffer: Uint8Array, position: number, length = buffer.byteLength): Promise<number> {
    let done = 0;
    while (done < length && position + done < this.size) {
      const { bytesRead } = await this.handle.read(buffer, done, length - done, position + done);
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    return done;
  }

  /** Up to `length` bytes from `position` as a new buffer (shorter at the end of the blob). */
  async read(position: number, length: number): Promise<Buffer> {
    const n = Math.max(0, Math.min(length, this.size - position));
    const buf = Buffer.allocUnsafe(n);
    const got = await this.readAt(buf, position, n);
    return got === n ? buf : buf.subarray(0, got);
  }

  close(): Promise<void> {
    return this.handle.close();
  }
}

/**
 * The byte range a read covers, with containerd's Content/Read rules: a negative offset reads
 * from 0, an offset past the size is OutOfRange, a length of 0 or past the end reads to the end.
 */
export function readRange(size: number, offset = 0, length = 0): { start: number; length: number } {
  const start = Math.max(0, offset);
  if (start > size) throw readPastEnd(size);
  const rest = size - start;
  return { start, length: length > 0 && length < rest ? length : rest };
}

/** A stream of `length` bytes from `start` in chunks of `chunkSize`, closing the handle at the end. */
export function rangeStream(
  handle: FileHandle,
  start: number,
  length: number,
  chunkSize = DEFAULT_CHUNK,
  signal?: AbortSignal,
): Readable {
  if (length === 0) {
    void handle.close();
    return Readable.from([], { objectMode: false });
  }
  return handle.createReadStream({
    start,
    end: start + length - 1,
    highWaterMark: chunkSize,
    autoClose: true,
    signal,
  });
}
