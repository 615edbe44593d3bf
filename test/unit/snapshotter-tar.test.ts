// The tar parser and encoder (snapshotter/tar.ts) and compression detection
// (snapshotter/compression.ts), against archives written by node-tar and GNU tar.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import * as zlib from 'node:zlib';
import * as tar from 'tar';
import { isKind } from '../../services/errdefs';
import { decompress, detectCompression } from '../../snapshotter/compression';
import { BLOCK, encodeHeader, END_OF_ARCHIVE, padding, TarParser, type TarHeader } from '../../snapshotter/tar';

let tmp: string;
beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-snapshot-tar-'));
});
afterEach(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

interface Parsed {
  h: TarHeader;
  body: Buffer;
}

function parse(data: Buffer, chunk = data.length): Parsed[] {
  const out: Parsed[] = [];
  let parts: Buffer[] = [];
  const p = new TarParser({
    entry: () => {
      parts = [];
    },
    data: (c) => parts.push(Buffer.from(c)),
    end: (h) => out.push({ h, body: Buffer.concat(parts) }),
  });
  for (let i = 0; i < data.length; i += chunk) p.write(data.subarray(i, i + chunk));
  p.finish();
  return out;
}

async function collect(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

function expectKind(fn: () => unknown, kind: 'InvalidArgument'): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(isKind(err, kind)).toBe(true);
}

test('parses node-tar archives: long names through PAX, symlinks, directories, contents', async () => {
  const src = path.join(tmp, 'src');
  const long = 'd'.repeat(60) + '/' + 'f'.repeat(80);
  fs.mkdirSync(path.join(src, 'd'.repeat(60)), { recursive: true });
  fs.writeFileSync(path.join(src, long), 'long name');
  fs.writeFileSync(path.join(src, 'small'), 'x'.repeat(1000));
  fs.symlinkSync('t'.repeat(150), path.join(src, 'link'));
  fs.chmodSync(path.join(src, 'small'), 0o4755);
  // (an explicit mtime: under jest, Dates from fs.Stats fail node-tar's `instanceof Date`)
  const data = await collect(tar.c({ cwd: src, portable: true, mtime: new Date(1_600_000_000_000) }, ['.']) as unknown as NodeJS.ReadableStream);
  for (const chunk of [data.length, 1, 7, 511, 513]) {
    const entries = parse(data, chunk);
    const byName = new Map(entries.map((e) => [e.h.name, e]));
    expect(byName.get(`./${long}`)?.body.toString()).toBe('long name');
    expect(byName.get('./small')?.body.toString()).toBe('x'.repeat(1000));
    expect(byName.get('./small')?.h.mode).toBe(0o4755);
    expect(byName.get('./link')?.h).toMatchObject({ type: '2', linkname: 't'.repeat(150) });
    expect(byName.get(`./${'d'.repeat(60)}/`)?.h.type).toBe('5');
  }
});

test('parses GNU tar: long names and links (L/K records), base-256 ids, hard links', () => {
  const src = path.join(tmp, 'src');
  const long = 'n'.repeat(120);
  fs.mkdirSync(src);
  fs.writeFileSync(path.join(src, long), 'gnu');
  fs.symlinkSync('l'.repeat(130), path.join(src, 's'));
  fs.linkSync(path.join(src, long), path.join(src, 'hard'));
  const file = path.join(tmp, 'gnu.tar');
  execFileSync('tar', ['--format=gnu', '--owner=:3000000', '--group=:4000000', '-cf', file, '-C', src, '.']);
  const entries = parse(fs.readFileSync(file), 100);
  const byName = new Map(entries.map((e) => [e.h.name, e]));
  const f = byName.get(`./${long}`) ?? byName.get('./hard');
  expect(f).toBeDefined();
  expect(f!.h.uid).toBe(3000000);
  expect(f!.h.gid).toBe(4000000);
  expect(byName.get('./s')?.h.linkname).toBe('l'.repeat(130));
  const links = entries.filter((e) => e.h.type === '1');
  expect(links).toHaveLength(1);
  expect([`./${long}`, './hard']).toContain(links[0].h.linkname);
});

test('encodes and parses back: PAX for long, non-ASCII and binary values; xattrs; devices; large ids', () => {
  const name = 'dir/\xe9t\xe9-' + 'x'.repeat(120); // a latin1 byte string: not UTF-8
  const xattrs = new Map([
    ['security.capability', Buffer.from([1, 0, 0, 2, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])],
    ['user.empty', Buffer.alloc(0)],
  ]);
  const body = Buffer.from('hello');
  const data = Buffer.concat([
    encodeHeader({ name, type: '0', mode: 0o6755, uid: 5_000_000, gid: 7, size: body.length, mtime: 1_700_000_000, xattrs }),
    body,
    padding(body.length),
    encodeHeader({ name: 'dev', type: '3', mode: 0o600, uid: 0, gid: 0, size: 0, mtime: 1, devmajor: 1, devminor: 3 }),
    encodeHeader({ name: 'ln', type: '2', mode: 0o777, uid: 0, gid: 0, size: 0, mtime: 1, linkname: 'y'.repeat(200) }),
    END_OF_ARCHIVE,
    Buffer.alloc(BLOCK * 3, 0), // trailing zeros are ignored
  ]);
  const entries = parse(data, 33);
  expect(entries).toHaveLength(3);
  expect(entries[0].h).toMatchObject({ name, type: '0', mode: 0o6755, uid: 5_000_000, gid: 7, size: 5, mtime: { sec: 1_700_000_000, nsec: 0 } });
  expect(entries[0].h.xattrs).toEqual(xattrs);
  expect(entries[0].body.toString()).toBe('hello');
  expect(entries[1].h).toMatchObject({ type: '3', devmajor: 1, devminor: 3 });
  expect(entries[2].h.linkname).toBe('y'.repeat(200));
  // node-tar agrees on the PAX records we write
  const seen: string[] = [];
  const p = new tar.Parser({ onReadEntry: (e: tar.ReadEntry) => { seen.push(e.path); e.resume(); } } as never);
  p.end(data);
  expect(seen[2]).toBe('ln');
});

test('PAX fractional and negative times', () => {
  const pax = (records: string) => {
    const rec = records
      .split('\n')
      .filter(Boolean)
      .map((kv) => {
        let len = kv.length + 3;
        while (String(len).length + kv.length + 2 !== len) len = String(len).length + kv.length + 2;
        return `${len} ${kv}\n`;
      })
      .join('');
    const b = Buffer.from(rec);
    return Buffer.concat([encodeHeader({ name: 'pax', type: 'x', mode: 0, uid: 0, gid: 0, size: b.length, mtime: 0 }), b, padding(b.length)]);
  };
  const data = Buffer.concat([
    pax('mtime=1700000000.123456789\natime=-1.5'),
    encodeHeader({ name: 'f', type: '0', mode: 0o644, uid: 0, gid: 0, size: 0, mtime: 0 }),
    END_OF_ARCHIVE,
  ]);
  const [e] = parse(data);
  expect(e.h.mtime).toEqual({ sec: 1_700_000_000, nsec: 123_456_789 });
  expect(e.h.atime).toEqual({ sec: -2, nsec: 500_000_000 });
});

test('malformed archives fail with InvalidArgument', () => {
  const good = encodeHeader({ name: 'f', type: '0', mode: 0o644, uid: 0, gid: 0, size: 10, mtime: 0 });
  const bad = Buffer.from(good);
  bad[0] ^= 1; // checksum no longer matches
  expectKind(() => parse(Buffer.concat([bad, Buffer.alloc(512), END_OF_ARCHIVE])), 'InvalidArgument');
  // truncated inside the body
  expectKind(() => parse(Buffer.concat([good, Buffer.from('abc')])), 'InvalidArgument');
  // truncated inside a header
  expectKind(() => parse(good.subarray(0, 300)), 'InvalidArgument');
  // sparse files
  const sparse = encodeHeader({ name: 's', type: 'S', mode: 0o644, uid: 0, gid: 0, size: 0, mtime: 0 });
  expectKind(() => parse(Buffer.concat([sparse, END_OF_ARCHIVE])), 'InvalidArgument');
  // a malformed PAX record
  const body = Buffer.from('99 path=x\n');
  const paxHdr = encodeHeader({ name: 'p', type: 'x', mode: 0, uid: 0, gid: 0, size: body.length, mtime: 0 });
  expectKind(() => parse(Buffer.concat([paxHdr, body, padding(body.length), good, Buffer.alloc(512), END_OF_ARCHIVE])), 'InvalidArgument');
  // a stream that ends cleanly between entries without the end marker is accepted (as Go does)
  expect(parse(Buffer.concat([good, Buffer.alloc(512)]))).toHaveLength(1);
});

test('compression is detected from magic bytes; corrupt and truncated streams fail clearly', async () => {
  const raw = Buffer.concat([encodeHeader({ name: 'f', type: '0', mode: 0o644, uid: 0, gid: 0, size: 0, mtime: 0 }), END_OF_ARCHIVE]);
  const gz = zlib.gzipSync(raw);
  const rawFile = path.join(tmp, 'raw.tar');
  fs.writeFileSync(rawFile, raw);
  execFileSync('zstd', ['-q', '-f', rawFile, '-o', `${rawFile}.zst`]);
  const zst = fs.readFileSync(`${rawFile}.zst`);
  expect(detectCompression(gz)).toBe('gzip');
  expect(detectCompression(zst)).toBe('zstd');
  expect(detectCompression(raw)).toBe('none');
  let err: unknown;
  try {
    detectCompression(Buffer.from('BZh91AY'));
  } catch (e) {
    err = e;
  }
  expect(isKind(err, 'NotImplemented')).toBe(true);

  const run = async (input: Buffer, chunk = 5) => {
    const parts: Buffer[] = [];
    const chunks: Buffer[] = [];
    for (let i = 0; i < input.length; i += chunk) chunks.push(input.subarray(i, i + chunk));
    for await (const c of decompress(Readable.from(chunks))) parts.push(c);
    return Buffer.concat(parts);
  };
  expect(await run(gz)).toEqual(raw);
  expect(await run(zst)).toEqual(raw);
  expect(await run(raw)).toEqual(raw);
  expect(await run(Buffer.alloc(0))).toEqual(Buffer.alloc(0));
  for (const broken of [gz.subarray(0, gz.length - 10), zst.subarray(0, zst.length - 4)]) {
    let e2: unknown;
    try {
      await run(broken);
    } catch (e) {
      e2 = e;
    }
    expect(isKind(e2, 'InvalidArgument')).toBe(true);
  }
});
