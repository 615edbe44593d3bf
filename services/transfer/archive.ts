// Minimal tar reading and writing for image archives (export/import): ustar headers, with pax
// (`x`) and GNU long-name (`L`) records read for long paths. Names are checked: an absolute name
// or one with a `..` component is refused, never resolved.
import { BerthError } from '../errdefs';

const BLOCK = 512;

function octal(buf: Buffer, off: number, len: number, value: number): void {
  const s = value.toString(8).padStart(len - 1, '0');
  buf.write(s, off, len - 1, 'ascii');
  buf[off + len - 1] = 0;
}

/** One ustar header for a regular file (`0`) or directory (`5`). Names longer than 100 bytes use a pax record. */
export function tarHeader(name: string, size: number, type: '0' | '5' = '0'): Buffer {
  const parts: Buffer[] = [];
  let short = name;
  if (Buffer.byteLength(name) > 100) {
    const rec = (len: number) => `${len} path=${name}\n`;
    let len = Buffer.byteLength(rec(0));
    while (Buffer.byteLength(rec(len)) !== len) len = Buffer.byteLength(rec(len));
    const body = Buffer.from(rec(len));
    parts.push(rawHeader(`PaxHeaders/${name.slice(-80)}`, body.length, 'x'), body, Buffer.alloc(padding(body.length)));
    short = name.slice(-100);
  }
  parts.push(rawHeader(short, size, type));
  return Buffer.concat(parts);
}

function rawHeader(name: string, size: number, type: string): Buffer {
  const h = Buffer.alloc(BLOCK);
  h.write(name, 0, 100, 'utf8');
  octal(h, 100, 8, type === '5' ? 0o755 : 0o644);
  octal(h, 108, 8, 0);
  octal(h, 116, 8, 0);
  octal(h, 124, 12, size);
  octal(h, 136, 12, 0);
  h.write(type, 156, 1, 'ascii');
  h.write('ustar\x0000', 257, 8, 'binary');
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\x00 ', 148, 8, 'binary');
  return h;
}

export function padding(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}

/** The end of an archive: two zero blocks. */
export const TAR_END = Buffer.alloc(BLOCK * 2);

/** Pulls exact byte counts out of an async iterable of chunks. */
export class ByteReader {
  private buf = Buffer.alloc(0);
  private done = false;
  private readonly it: AsyncIterator<Uint8Array>;

  constructor(source: AsyncIterable<Uint8Array>) {
    this.it = source[Symbol.asyncIterator]();
  }

  private async fill(): Promise<boolean> {
    if (this.done) return false;
    const next = await this.it.next();
    if (next.done) {
      this.done = true;
      return false;
    }
    this.buf = this.buf.length ? Buffer.concat([this.buf, Buffer.from(next.value)]) : Buffer.from(next.value);
    return true;
  }

  /** Exactly `n` bytes, or undefined at a clean end (no bytes at all); a short read is an error. */
  async read(n: number): Promise<Buffer | undefined> {
    while (this.buf.length < n) {
      if (!(await this.fill())) {
        if (this.buf.length === 0) return undefined;
        throw new BerthError('InvalidArgument', 'archive is truncated');
      }
    }
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }

  /** `n` bytes as they come. */
  async *chunks(n: number): AsyncGenerator<Buffer> {
    let left = n;
    while (left > 0) {
      if (this.buf.length === 0 && !(await this.fill())) throw new BerthError('InvalidArgument', 'archive is truncated');
      const take = Math.min(left, this.buf.length);
      const out = this.buf.subarray(0, take);
      this.buf = this.buf.subarray(take);
      left -= take;
      yield out;
    }
  }

  async skip(n: number): Promise<void> {
    for await (const _ of this.chunks(n)) void _;
  }
}

export interface TarEntry {
  /** Normalised name: no leading `./`, no trailing `/`. */
  name: string;
  type: 'file' | 'dir' | 'symlink' | 'link' | 'other';
  size: number;
  linkname: string;
  /** The entry's content (files); must be consumed (or `skip`ped) before the next entry. */
  body: AsyncGenerator<Buffer>;
}

function cstring(buf: Buffer, off: number, len: number): string {
  const s = buf.subarray(off, off + len);
  const z = s.indexOf(0);
  return (z >= 0 ? s.subarray(0, z) : s).toString('utf8');
}

function parseNumber(buf: Buffer, off: number, len: number): number {
  const f = buf.subarray(off, off + len);
  if (f[0]! & 0x80) {
    let v = 0;
    for (let i = 1; i < f.length; i++) v = v * 256 + f[i]!;
    return v;
  }
  const s = cstring(buf, off, len).trim();
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s)) throw new BerthError('InvalidArgument', 'not a tar archive (bad numeric field)');
  return parseInt(s, 8);
}

/**
 * An archive member name made safe: `./` and trailing slashes dropped; absolute names and `..`
 * components refused (InvalidArgument naming the entry).
 */
export function safeName(raw: string): string {
  let n = raw.replace(/\\/g, '/');
  if (n.startsWith('/')) throw new BerthError('InvalidArgument', `archive entry ${JSON.stringify(raw)}: absolute names are not allowed`);
  const parts = n.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw new BerthError('InvalidArgument', `archive entry ${JSON.stringify(raw)}: ".." is not allowed in names`);
  n = parts.join('/');
  return n;
}

function parsePax(body: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let i = 0;
  while (i < body.length) {
    const sp = body.indexOf(0x20, i);
    if (sp < 0) break;
    const len = parseInt(body.subarray(i, sp).toString('ascii'), 10);
    if (!(len > 0)) break;
    const rec = body.subarray(sp + 1, i + len - 1).toString('utf8');
    const eq = rec.indexOf('=');
    if (eq > 0) out[rec.slice(0, eq)] = rec.slice(eq + 1);
    i += len;
  }
  return out;
}

const MAX_META = 1 << 20;

/** The entries of a tar stream, in order. Each entry's body must be consumed before asking for the next. */
export async function* readTar(source: AsyncIterable<Uint8Array>): AsyncGenerator<TarEntry> {
  const r = new ByteReader(source);
  let pax: Record<string, string> = {};
  let longName: string | undefined;
  let sawAny = false;
  for (;;) {
    let h: Buffer | undefined;
    try {
      h = await r.read(BLOCK);
    } catch (err) {
      if (!sawAny) throw new BerthError('InvalidArgument', 'not a tar archive (shorter than one header)');
      throw err;
    }
    if (!sawAny && h && h[0] === 0x1f && h[1] === 0x8b) throw new BerthError('InvalidArgument', 'not a tar archive (gzip-compressed data: decompress it first)');
    if (!h) {
      if (!sawAny) throw new BerthError('InvalidArgument', 'archive is empty');
      return;
    }
    if (h.every((b) => b === 0)) return;
    let sum = 0;
    for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i]!;
    if (parseNumber(h, 148, 8) !== sum) throw new BerthError('InvalidArgument', 'not a tar archive (header checksum mismatch)');
    sawAny = true;
    const typeflag = String.fromCharCode(h[156]!);
    let size = parseNumber(h, 124, 12);
    if (typeflag === 'x' || typeflag === 'g' || typeflag === 'L' || typeflag === 'K') {
      if (size > MAX_META) throw new BerthError('InvalidArgument', 'archive header record too large');
      const body = size ? (await r.read(size))! : Buffer.alloc(0);
      await r.skip(padding(size));
      if (typeflag === 'x') pax = { ...pax, ...parsePax(body) };
      else if (typeflag === 'L') longName = cstring(body, 0, body.length);
      continue;
    }
    let name = cstring(h, 0, 100);
    const magic = h.subarray(257, 262).toString('ascii');
    if (magic === 'ustar') {
      const prefix = cstring(h, 345, 155);
      if (prefix) name = `${prefix}/${name}`;
    }
    if (longName !== undefined) name = longName;
    if (pax.path !== undefined) name = pax.path;
    if (pax.size !== undefined) size = Number(pax.size);
    let linkname = pax.linkpath ?? cstring(h, 157, 100);
    pax = {};
    longName = undefined;
    const type: TarEntry['type'] =
      typeflag === '0' || typeflag === '\0' || typeflag === '7' ? 'file' : typeflag === '5' ? 'dir' : typeflag === '2' ? 'symlink' : typeflag === '1' ? 'link' : 'other';
    const safe = safeName(name);
    if (type === 'link') linkname = safeName(linkname);
    const bodySize = type === 'file' ? size : type === 'other' ? size : 0;
    let got = 0;
    const body = (async function* () {
      for await (const c of r.chunks(bodySize)) {
        got += c.length;
        yield c;
      }
    })();
    yield { name: safe, type, size: bodySize, linkname, body };
    // Whatever the consumer left of the body.
    await body.return(undefined);
    await r.skip(bodySize - got);
    await r.skip(padding(bodySize));
  }
}
