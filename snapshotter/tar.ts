// Tar, as OCI layers use it: a push parser (USTAR, PAX with SCHILY.xattr records, GNU long
// names, base-256 numbers; Go's archive/tar reading rules) and a header encoder (PAX where
// USTAR cannot hold a value). Names and link targets are byte strings (latin1: one char per
// byte), so names that are not UTF-8 pass through unchanged.
import { BerthError } from '../services/errdefs';
import type { Timespec } from './sys';

export const BLOCK = 512;

export const TypeFlag = {
  Reg: '0',
  Link: '1',
  Symlink: '2',
  Char: '3',
  Block: '4',
  Dir: '5',
  Fifo: '6',
} as const;

export interface TarHeader {
  /** Entry name as a byte string (PAX `path` / GNU long name applied). */
  name: string;
  /** Type flag; '\0' is reported as '0' (or '5' for names ending in '/'), '7' as '0'. */
  type: string;
  /** Permission and setuid/setgid/sticky bits. */
  mode: number;
  uid: number;
  gid: number;
  /** Body size in bytes (0 for header-only types). */
  size: number;
  mtime: Timespec;
  atime?: Timespec;
  linkname: string;
  uname: string;
  gname: string;
  devmajor: number;
  devminor: number;
  /** SCHILY.xattr.<name> PAX records. */
  xattrs?: Map<string, Buffer>;
  /** Offset of this entry's header in the uncompressed stream. */
  offset: number;
}

/** Receives a parsed archive: each entry, its body in pieces, and its end. */
export interface TarSink {
  entry(h: TarHeader): void;
  data(chunk: Buffer): void;
  end(h: TarHeader): void;
}

const MAX_META = 1 << 20; // Go's maxSpecialFileSize

function invalid(offset: number, why: string): BerthError {
  return new BerthError('InvalidArgument', `invalid tar archive: ${why} (header at offset ${offset})`);
}

function cstring(b: Buffer, off: number, len: number): string {
  let end = off;
  const max = off + len;
  while (end < max && b[end] !== 0) end++;
  return b.toString('latin1', off, end);
}

function parseNumeric(b: Buffer, off: number, len: number, field: string, at: number): number {
  if (b[off] & 0x80) {
    // base-256 (GNU): big-endian two's complement, the top bit of the first byte a marker
    const negative = b[off] === 0xff;
    let v = 0n;
    for (let i = 0; i < len; i++) {
      let byte = b[off + i];
      if (i === 0) byte &= 0x7f;
      if (negative) byte ^= 0xff;
      v = (v << 8n) | BigInt(byte);
    }
    if (negative) v = -(v + 1n);
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < -BigInt(Number.MAX_SAFE_INTEGER)) throw invalid(at, `${field} out of range`);
    return Number(v);
  }
  let i = off;
  const end = off + len;
  while (i < end && (b[i] === 0x20 || b[i] === 0)) i++;
  let v = 0;
  let digits = 0;
  for (; i < end; i++) {
    const ch = b[i];
    if (ch === 0 || ch === 0x20) break;
    if (ch < 0x30 || ch > 0x37) throw invalid(at, `bad octal digit in ${field}`);
    v = v * 8 + (ch - 0x30);
    digits++;
  }
  for (; i < end; i++) if (b[i] !== 0 && b[i] !== 0x20) throw invalid(at, `bad ${field} field`);
  return digits === 0 ? 0 : v;
}

function isZeroBlock(b: Buffer, off: number): boolean {
  for (let i = off; i < off + BLOCK; i += 8) {
    if (b.readBigUInt64LE(i) !== 0n) return false;
  }
  return true;
}

function checksumOk(b: Buffer, off: number, at: number): boolean {
  const want = parseNumeric(b, off + 148, 8, 'checksum', at);
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const v = i >= 148 && i < 156 ? 0x20 : b[off + i];
    unsigned += v;
    signed += v > 127 ? v - 256 : v;
  }
  return want === unsigned || want === signed;
}

/** Parses a PAX time ("1700000000.123456789", possibly negative) to seconds and nanoseconds. */
export function parsePaxTime(s: string): Timespec | undefined {
  const m = /^(-?)(\d+)(?:\.(\d*))?$/.exec(s);
  if (!m) return undefined;
  const frac = (m[3] ?? '').slice(0, 9).padEnd(9, '0');
  let sec = Number(m[2]);
  let nsec = Number(frac);
  if (m[1] === '-') {
    sec = -sec;
    if (nsec > 0) {
      sec -= 1;
      nsec = 1_000_000_000 - nsec;
    }
  }
  return { sec, nsec };
}

interface Pax {
  records: Map<string, string>;
  xattrs: Map<string, Buffer>;
}

function parsePax(body: Buffer, at: number): Pax {
  const records = new Map<string, string>();
  const xattrs = new Map<string, Buffer>();
  let i = 0;
  while (i < body.length) {
    // "<len> <key>=<value>\n"; len counts the whole record
    let sp = i;
    while (sp < body.length && body[sp] !== 0x20) sp++;
    const len = Number(body.toString('latin1', i, sp));
    if (body[i] === 0 && sp >= body.length) break; // NUL padding
    if (!Number.isInteger(len) || len <= sp - i + 1 || i + len > body.length || body[i + len - 1] !== 0x0a) {
      throw invalid(at, 'malformed PAX record');
    }
    const rec = body.subarray(sp + 1, i + len - 1);
    const eq = rec.indexOf(0x3d);
    if (eq <= 0) throw invalid(at, 'malformed PAX record');
    const key = rec.toString('utf8', 0, eq);
    if (key.startsWith('SCHILY.xattr.')) {
      xattrs.set(key.slice('SCHILY.xattr.'.length), Buffer.from(rec.subarray(eq + 1)));
    } else {
      records.set(key, rec.toString('latin1', eq + 1, rec.length));
    }
    i += len;
  }
  return { records, xattrs };
}

const enum State {
  Header,
  Body,
  Padding,
  Meta,
  Done,
}

/**
 * A push parser: `write` each chunk of the uncompressed stream, then `finish`. Calls the sink
 * synchronously; errors (malformed or truncated archives) are thrown as InvalidArgument.
 */
export class TarParser {
  private state = State.Header;
  private pending: Buffer | null = null; // a partial header block or meta body
  private need = BLOCK; // bytes wanted for the current header/meta/padding/body
  private offset = 0; // stream offset of the next byte to consume
  private headerAt = 0;
  private current: TarHeader | null = null;
  private metaType = '';
  private metaSize = 0;
  private longName: string | undefined;
  private longLink: string | undefined;
  private pax: Pax | undefined;

  constructor(private readonly sink: TarSink) {}

  /** True once the end-of-archive marker was read (later bytes are ignored). */
  get done(): boolean {
    return this.state === State.Done;
  }

  write(chunk: Buffer): void {
    let pos = 0;
    while (pos < chunk.length && this.state !== State.Done) {
      switch (this.state) {
        case State.Header:
        case State.Meta: {
          let block: Buffer;
          if (this.pending === null && chunk.length - pos >= this.need) {
            block = chunk.subarray(pos, pos + this.need);
            pos += this.need;
          } else {
            const take = Math.min(this.need - (this.pending?.length ?? 0), chunk.length - pos);
            const piece = chunk.subarray(pos, pos + take);
            this.pending = this.pending ? Buffer.concat([this.pending, piece]) : Buffer.from(piece);
            pos += take;
            if (this.pending.length < this.need) continue;
            block = this.pending;
            this.pending = null;
          }
          const at = this.offset;
          this.offset += block.length;
          if (this.state === State.Header) this.header(block, at);
          else this.meta(block);
          break;
        }
        case State.Body: {
          const take = Math.min(this.need, chunk.length - pos);
          if (take > 0) this.sink.data(chunk.subarray(pos, pos + take));
          pos += take;
          this.offset += take;
          this.need -= take;
          if (this.need === 0) this.endBody();
          break;
        }
        case State.Padding: {
          const take = Math.min(this.need, chunk.length - pos);
          pos += take;
          this.offset += take;
          this.need -= take;
          if (this.need === 0) this.toHeader();
          break;
        }
      }
    }
  }

  /** Checks the archive did not stop inside an entry. A missing end marker is accepted (as Go does). */
  finish(): void {
    if (this.state === State.Done) return;
    if (this.state === State.Header && this.pending === null && this.pax === undefined && this.longName === undefined && this.longLink === undefined) {
      return;
    }
    const where = this.current ? ` in ${JSON.stringify(this.current.name)}` : '';
    throw invalid(this.headerAt, `unexpected end of archive${where}`);
  }

  private toHeader(): void {
    this.state = State.Header;
    this.need = BLOCK;
  }

  private padAfter(size: number): void {
    const pad = (BLOCK - (size % BLOCK)) % BLOCK;
    if (pad === 0) this.toHeader();
    else {
      this.state = State.Padding;
      this.need = pad;
    }
  }

  private header(b: Buffer, at: number): void {
    this.headerAt = at;
    if (isZeroBlock(b, 0)) {
      this.state = State.Done;
      return;
    }
    if (!checksumOk(b, 0, at)) throw invalid(at, 'header checksum mismatch');
    const magic = b.toString('latin1', 257, 263);
    const posix = magic === 'ustar\0';
    let type = b[156] === 0 ? '\0' : String.fromCharCode(b[156]);
    const size = parseNumeric(b, 124, 12, 'size', at);
    if (size < 0) throw invalid(at, 'negative size');

    if (type === 'x' || type === 'g' || type === 'L' || type === 'K') {
      if (size > MAX_META) throw invalid(at, `${type} header of ${size} bytes is too large`);
      this.metaType = type;
      this.metaSize = size;
      if (size === 0) {
        this.meta(Buffer.alloc(0));
        return;
      }
      this.state = State.Meta;
      this.need = size;
      return;
    }

    let name = cstring(b, 0, 100);
    if (posix) {
      const prefix = cstring(b, 345, 155);
      if (prefix) name = `${prefix}/${name}`;
    }
    let linkname = cstring(b, 157, 100);
    let mtime: Timespec = { sec: parseNumeric(b, 136, 12, 'mtime', at), nsec: 0 };
    let atime: Timespec | undefined;
    let uid = parseNumeric(b, 108, 8, 'uid', at);
    let gid = parseNumeric(b, 116, 8, 'gid', at);
    let uname = cstring(b, 265, 32);
    let gname = cstring(b, 297, 32);
    let bodySize = size;
    let xattrs: Map<string, Buffer> | undefined;

    if (this.longName !== undefined) name = this.longName;
    if (this.longLink !== undefined) linkname = this.longLink;
    const pax = this.pax;
    if (pax) {
      const r = pax.records;
      for (const k of r.keys()) {
        if (k.startsWith('GNU.sparse.')) throw new BerthError('InvalidArgument', `invalid tar archive: sparse files are not supported (header at offset ${at})`);
      }
      const p = r.get('path');
      if (p !== undefined) name = p;
      const l = r.get('linkpath');
      if (l !== undefined) linkname = l;
      const num = (k: string): number | undefined => {
        const v = r.get(k);
        if (v === undefined) return undefined;
        const n = Number(v);
        if (!/^\d+$/.test(v) || !Number.isSafeInteger(n)) throw invalid(at, `bad PAX ${k} ${JSON.stringify(v)}`);
        return n;
      };
      bodySize = num('size') ?? bodySize;
      uid = num('uid') ?? uid;
      gid = num('gid') ?? gid;
      const mt = r.get('mtime');
      if (mt !== undefined) {
        const t = parsePaxTime(mt);
        if (!t) throw invalid(at, `bad PAX mtime ${JSON.stringify(mt)}`);
        mtime = t;
      }
      const atv = r.get('atime');
      if (atv !== undefined) atime = parsePaxTime(atv);
      uname = r.get('uname') ?? uname;
      gname = r.get('gname') ?? gname;
      if (pax.xattrs.size > 0) xattrs = pax.xattrs;
    } else if (magic === 'ustar ' && b[345] !== 0) {
      // old GNU format keeps atime where POSIX has the prefix
      const a = parseNumeric(b, 345, 12, 'atime', at);
      if (a) atime = { sec: a, nsec: 0 };
    }
    this.longName = this.longLink = this.pax = undefined;

    if (type === '\0') type = name.endsWith('/') ? TypeFlag.Dir : TypeFlag.Reg;
    else if (type === '7') type = TypeFlag.Reg;
    if (type === 'S') throw new BerthError('InvalidArgument', `invalid tar archive: sparse files are not supported (header at offset ${at})`);
    // Go's reader: these types carry no body whatever the size field says
    if (type === '1' || type === '2' || type === '3' || type === '4' || type === '5' || type === '6') bodySize = 0;

    const h: TarHeader = {
      name,
      type,
      mode: parseNumeric(b, 100, 8, 'mode', at) & 0o7777,
      uid,
      gid,
      size: bodySize,
      mtime,
      linkname,
      uname,
      gname,
      devmajor: type === '3' || type === '4' ? parseNumeric(b, 329, 8, 'devmajor', at) : 0,
      devminor: type === '3' || type === '4' ? parseNumeric(b, 337, 8, 'devminor', at) : 0,
      offset: at,
    };
    if (atime) h.atime = atime;
    if (xattrs) h.xattrs = xattrs;
    this.current = h;
    this.sink.entry(h);
    if (bodySize === 0) {
      this.endBody();
    } else {
      this.state = State.Body;
      this.need = bodySize;
    }
  }

  private endBody(): void {
    const h = this.current!;
    this.current = null;
    this.sink.end(h);
    this.padAfter(h.size);
  }

  private meta(body: Buffer): void {
    const at = this.headerAt;
    switch (this.metaType) {
      case 'x':
        this.pax = parsePax(body, at);
        break;
      case 'g':
        break; // global PAX headers are ignored, as containerd does
      case 'L':
        this.longName = cstring(body, 0, body.length);
        break;
      case 'K':
        this.longLink = cstring(body, 0, body.length);
        break;
    }
    this.padAfter(this.metaSize);
  }
}

// ---- writing -----------------------------------------------------------------------------------

export interface WriteHeader {
  name: string; // byte string
  type: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  /** Seconds (whole seconds are written, as containerd truncates). */
  mtime: number;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  xattrs?: Map<string, Buffer>;
}

function writeString(b: Buffer, off: number, len: number, s: string): void {
  b.write(s, off, len, 'latin1');
}

function fitsOctal(n: number, len: number): boolean {
  return Number.isInteger(n) && n >= 0 && n < 8 ** (len - 1);
}

function writeOctal(b: Buffer, off: number, len: number, n: number): void {
  const s = n.toString(8).padStart(len - 1, '0');
  b.write(s, off, len - 1, 'latin1');
  b[off + len - 1] = 0;
}

function paxRecord(key: string, value: Buffer): Buffer {
  const kv = Buffer.concat([Buffer.from(` ${key}=`, 'utf8'), value, Buffer.from('\n')]);
  let len = kv.length + 1;
  while (String(len).length + kv.length !== len) len = String(len).length + kv.length;
  return Buffer.concat([Buffer.from(String(len)), kv]);
}

function ustarBlock(h: WriteHeader, name: string, linkname: string, type: string, size: number): Buffer {
  const b = Buffer.alloc(BLOCK);
  writeString(b, 0, 100, name);
  writeOctal(b, 100, 8, h.mode & 0o7777);
  writeOctal(b, 108, 8, fitsOctal(h.uid, 8) ? h.uid : 0);
  writeOctal(b, 116, 8, fitsOctal(h.gid, 8) ? h.gid : 0);
  writeOctal(b, 124, 12, fitsOctal(size, 12) ? size : 0);
  writeOctal(b, 136, 12, fitsOctal(h.mtime, 12) ? Math.floor(h.mtime) : 0);
  b[156] = type.charCodeAt(0);
  writeString(b, 157, 100, linkname);
  b.write('ustar\0', 257, 6, 'latin1');
  b.write('00', 263, 2, 'latin1');
  writeOctal(b, 329, 8, h.devmajor ?? 0);
  writeOctal(b, 337, 8, h.devminor ?? 0);
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += b[i];
  writeOctal(b, 148, 7, sum);
  b[155] = 0x20;
  return b;
}

function ascii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return false;
  return true;
}

/** The header block(s) for one entry: a PAX header first when a value does not fit USTAR. */
export function encodeHeader(h: WriteHeader): Buffer {
  const linkname = h.linkname ?? '';
  const records: Buffer[] = [];
  let name = h.name;
  let link = linkname;
  if (Buffer.byteLength(name, 'latin1') > 100 || !ascii(name)) {
    records.push(paxRecord('path', Buffer.from(name, 'latin1')));
    name = name.slice(0, 99);
  }
  if (Buffer.byteLength(link, 'latin1') > 100 || !ascii(link)) {
    records.push(paxRecord('linkpath', Buffer.from(link, 'latin1')));
    link = link.slice(0, 99);
  }
  if (!fitsOctal(h.uid, 8)) records.push(paxRecord('uid', Buffer.from(String(h.uid))));
  if (!fitsOctal(h.gid, 8)) records.push(paxRecord('gid', Buffer.from(String(h.gid))));
  if (!fitsOctal(h.size, 12)) records.push(paxRecord('size', Buffer.from(String(h.size))));
  if (!fitsOctal(Math.floor(h.mtime), 12)) records.push(paxRecord('mtime', Buffer.from(String(Math.floor(h.mtime)))));
  if (h.xattrs) {
    for (const [k, v] of [...h.xattrs].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) records.push(paxRecord(`SCHILY.xattr.${k}`, v));
  }
  const main = ustarBlock(h, name, link, h.type, h.size);
  if (records.length === 0) return main;
  const body = Buffer.concat(records);
  const paxName = `PaxHeaders.0/${name.replace(/\/$/, '').split('/').pop() ?? ''}`.slice(0, 99);
  const paxHdr = ustarBlock({ ...h, uid: 0, gid: 0, mode: 0o644, mtime: 0 } as WriteHeader, paxName, '', 'x', body.length);
  const pad = (BLOCK - (body.length % BLOCK)) % BLOCK;
  return Buffer.concat([paxHdr, body, Buffer.alloc(pad), main]);
}

/** Zero padding after a body of `size` bytes. */
export function padding(size: number): Buffer {
  return Buffer.alloc((BLOCK - (size % BLOCK)) % BLOCK);
}

/** The end-of-archive marker: two zero blocks. */
export const END_OF_ARCHIVE = Buffer.alloc(BLOCK * 2);
