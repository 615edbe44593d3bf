// Layer compression, detected by magic bytes as containerd's compression.DecompressStream does:
// gzip (1f 8b), zstd (28 b5 2f fd), otherwise uncompressed. gzip uses Node's zlib (in the
// thread pool, so it runs ahead of the consumer); zstd uses fzstd (pure JavaScript).
import { Readable } from 'node:stream';
import * as zlib from 'node:zlib';
import { BerthError } from '../services/errdefs';

export type Compression = 'gzip' | 'zstd' | 'none';

const GZIP = [0x1f, 0x8b];
const ZSTD = [0x28, 0xb5, 0x2f, 0xfd];
const BZIP2 = [0x42, 0x5a, 0x68];
const XZ = [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00];

function startsWith(b: Buffer, magic: number[]): boolean {
  if (b.length < magic.length) return false;
  for (let i = 0; i < magic.length; i++) if (b[i] !== magic[i]) return false;
  return true;
}

export function detectCompression(head: Buffer): Compression {
  if (startsWith(head, GZIP)) return 'gzip';
  if (startsWith(head, ZSTD)) return 'zstd';
  if (startsWith(head, BZIP2)) throw new BerthError('NotImplemented', 'unsupported compression format bzip2');
  if (startsWith(head, XZ)) throw new BerthError('NotImplemented', 'unsupported compression format xz');
  return 'none';
}

function toBuffer(c: Uint8Array | string): Buffer {
  return Buffer.isBuffer(c) ? c : typeof c === 'string' ? Buffer.from(c) : Buffer.from(c.buffer, c.byteOffset, c.byteLength);
}

function corrupt(kind: Compression, err: unknown): BerthError {
  const msg = (err as Error)?.message ?? String(err);
  return new BerthError('InvalidArgument', `invalid ${kind} layer stream: ${msg}`, { cause: err });
}

export interface DecompressOptions {
  /** Size of the chunks zlib produces (default 256 KiB). */
  chunkSize?: number;
  signal?: AbortSignal;
}

/**
 * The uncompressed bytes of `input`, whatever its compression, as Buffers. `onCompression`
 * learns what was detected. Corrupt or truncated compressed data throws InvalidArgument.
 */
export async function* decompress(
  input: AsyncIterable<Uint8Array | string>,
  opts: DecompressOptions = {},
  onCompression?: (c: Compression) => void,
): AsyncGenerator<Buffer> {
  const it = input[Symbol.asyncIterator]();
  const headParts: Buffer[] = [];
  let headLen = 0;
  let ended = false;
  while (headLen < 6) {
    const r = await it.next();
    if (r.done) {
      ended = true;
      break;
    }
    const b = toBuffer(r.value);
    headParts.push(b);
    headLen += b.length;
  }
  const head = Buffer.concat(headParts);
  const kind = detectCompression(head);
  onCompression?.(kind);

  async function* rest(): AsyncGenerator<Buffer> {
    if (head.length) yield head;
    if (ended) return;
    for (;;) {
      const r = await it.next();
      if (r.done) return;
      yield toBuffer(r.value);
    }
  }

  try {
    if (kind === 'none') {
      yield* rest();
      return;
    }
    if (kind === 'gzip') {
      const gunzip = zlib.createGunzip({ chunkSize: opts.chunkSize ?? 256 * 1024 });
      const src = Readable.from(rest(), { objectMode: false });
      src.on('error', (err) => gunzip.destroy(err));
      src.pipe(gunzip);
      try {
        for await (const chunk of gunzip) {
          opts.signal?.throwIfAborted();
          yield chunk as Buffer;
        }
      } catch (err) {
        if (err instanceof BerthError || (err as { name?: string }).name === 'AbortError') throw err;
        if ((err as { code?: string }).code?.startsWith('Z_') || (err as { errno?: number }).errno !== undefined) throw corrupt('gzip', err);
        throw err;
      } finally {
        src.unpipe(gunzip);
        src.destroy();
        gunzip.destroy();
      }
      return;
    }
    // zstd
    const { Decompress } = await import('fzstd');
    let out: Buffer[] = [];
    const d = new Decompress((data) => {
      out.push(toBuffer(data));
    });
    for await (const chunk of rest()) {
      opts.signal?.throwIfAborted();
      try {
        d.push(chunk);
      } catch (err) {
        throw corrupt('zstd', err);
      }
      if (out.length) {
        const ready = out;
        out = [];
        yield* ready;
      }
    }
    try {
      d.push(new Uint8Array(0), true);
    } catch (err) {
      throw corrupt('zstd', err);
    }
    yield* out;
  } finally {
    await it.return?.();
  }
}
