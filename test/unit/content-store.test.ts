// The local content store: committing, reading, validating, deleting and walking blobs.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import {
  ContentStore,
  EMPTY_DIGEST,
  digestOf,
  formatDuration,
  validateDigest,
  type Digest,
} from '../../content-store';
import { BerthError } from '../../services/errdefs';

/** Deterministic, non-repeating-looking bytes for [offset, offset+length). */
function pattern(offset: number, length: number): Buffer {
  const b = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) {
    const x = offset + i;
    b[i] = (x * 131 + (x >>> 8) * 7 + (x >>> 16)) & 0xff;
  }
  return b;
}

async function collect(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}

/** Resolves to the BerthError a promise rejects with (fails the test if it resolves). */
async function rejection(p: Promise<unknown>): Promise<BerthError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(BerthError);
    return err as BerthError;
  }
  throw new Error('expected a rejection');
}

describe('content store: blobs', () => {
  let root: string;
  let store: ContentStore;

  beforeEach(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-cs-'));
    store = new ContentStore(root, { lockRetries: 1 });
  });
  afterEach(() => {
    store.close();
    fs.rmSync(root, { recursive: true, force: true });
  });

  async function put(data: Buffer, ref = `ref-${digestOf(data)}`): Promise<Digest> {
    const w = await store.writer(ref);
    await w.write(data);
    return (await w.commit()).digest;
  }

  test('write, commit and read back the same bytes, laid out like containerd', async () => {
    const data = pattern(0, 3 * 1024 * 1024 + 17);
    const w = await store.writer('layer-1', { total: data.length, expected: digestOf(data) });
    expect(w.digest()).toBe(EMPTY_DIGEST);
    for (let off = 0; off < data.length; off += 100_000) await w.write(data.subarray(off, off + 100_000));
    expect(w.digest()).toBe(digestOf(data));
    expect(w.status()).toMatchObject({ ref: 'layer-1', offset: data.length, total: data.length });

    const info = await w.commit();
    expect(info).toMatchObject({ digest: digestOf(data), size: data.length });

    const hex = digestOf(data).slice('sha256:'.length);
    const blob = path.join(root, 'blobs', 'sha256', hex);
    expect(fs.statSync(blob).mode & 0o777).toBe(0o444);
    expect(fs.readFileSync(blob).equals(data)).toBe(true);
    expect(fs.readdirSync(path.join(root, 'ingest'))).toEqual([]);
    expect(store.blobPath(info.digest)).toBe(blob);

    expect((await collect(await store.createReadStream(info.digest))).equals(data)).toBe(true);
    expect(await store.info(info.digest)).toMatchObject({ digest: info.digest, size: data.length });
    expect(await store.exists(info.digest)).toBe(true);

    // The writer is finished.
    const err = await rejection(w.write(Buffer.from('x')));
    expect(err.kind).toBe('FailedPrecondition');
    await w.close();
  });

  test('an empty blob commits to the digest of nothing', async () => {
    const w = await store.writer('empty');
    const info = await w.commit();
    expect(info).toMatchObject({ digest: EMPTY_DIGEST, size: 0 });
    expect((await collect(await store.createReadStream(EMPTY_DIGEST))).length).toBe(0);
  });

  test('writes issued without waiting are applied in order', async () => {
    const data = pattern(7, 9 * 1024 * 1024);
    const w = await store.writer('unawaited');
    const pending: Promise<number>[] = [];
    for (let off = 0; off < data.length; off += 65536) pending.push(w.write(data.subarray(off, off + 65536)));
    const offsets = await Promise.all(pending);
    expect(offsets[offsets.length - 1]).toBe(data.length);
    expect((await w.commit({ expected: digestOf(data) })).size).toBe(data.length);
  });

  test('writeBlob writes a whole source and commits it', async () => {
    const chunks = [pattern(0, 1000), pattern(1000, 5000)];
    const info = await store.writeBlob('whole', chunks, { expected: digestOf(Buffer.concat(chunks)) });
    expect(info.size).toBe(6000);
    expect((await store.listStatuses()).length).toBe(0);
  });

  test('a size mismatch fails the commit with containerd\'s message and commits nothing', async () => {
    const w = await store.writer('sized', { total: 10 });
    await w.write(Buffer.from('hello'));
    const err = await rejection(w.commit());
    expect(err.kind).toBe('FailedPrecondition');
    expect(err.message).toBe('"sized" failed size validation: 5 != 10: failed precondition');
    expect(fs.readdirSync(path.join(root, 'blobs', 'sha256'))).toEqual([]);
    expect(await store.exists(digestOf('hello'))).toBe(false);
    // The ingest stays to be resumed or aborted; the writer is closed and the ref released.
    expect((await store.status('sized')).offset).toBe(5);
    expect((await rejection(w.write(Buffer.from('!')))).kind).toBe('FailedPrecondition');

    const w2 = await store.writer('sized');
    const err2 = await rejection(w2.commit({ size: 4 }));
    expect(err2.message).toBe('"sized" failed size validation: 5 != 4: failed precondition');
  });

  test('a digest mismatch fails the commit and commits nothing', async () => {
    const w = await store.writer('digested');
    await w.write(Buffer.from('hello'));
    const wrong = digestOf('world');
    const err = await rejection(w.commit({ expected: wrong }));
    expect(err.kind).toBe('FailedPrecondition');
    expect(err.message).toBe(
      `unexpected commit digest ${digestOf('hello')}, expected ${wrong}: failed precondition`,
    );
    expect(await store.exists(digestOf('hello'))).toBe(false);
    expect(fs.readdirSync(path.join(root, 'blobs', 'sha256'))).toEqual([]);

    // The expected digest given when opening is checked too.
    const w2 = await store.writer('digested-2', { expected: wrong });
    await w2.write(Buffer.from('hello'));
    expect((await rejection(w2.commit())).kind).toBe('FailedPrecondition');
  });

  test('committing content that exists is AlreadyExists and removes the ingest', async () => {
    const d = await put(Buffer.from('same'), 'first');
    const w = await store.writer('second');
    await w.write(Buffer.from('same'));
    const err = await rejection(w.commit());
    expect(err.kind).toBe('AlreadyExists');
    expect(err.message).toBe(`content ${d}: already exists`);
    expect((await rejection(store.status('second'))).kind).toBe('NotFound');
    expect(fs.readdirSync(path.join(root, 'ingest'))).toEqual([]);
    expect(fs.readFileSync(store.blobPath(d), 'utf8')).toBe('same');
  });

  test('opening a writer for an expected digest that exists is AlreadyExists', async () => {
    const d = await put(Buffer.from('there'));
    const err = await rejection(store.writer('again', { expected: d }));
    expect(err.kind).toBe('AlreadyExists');
    expect(err.message).toBe(`content ${d}: already exists`);
    expect(fs.readdirSync(path.join(root, 'ingest'))).toEqual([]);
    // The ref was not left locked.
    await (await store.writer('again')).close();
  });

  test('malformed digests are InvalidArgument, other algorithms unsupported', async () => {
    const bad = [
      '',
      'sha256',
      'sha256:',
      'sha256:abc',
      `sha256:${'A'.repeat(64)}`,
      `sha256:${'g'.repeat(64)}`,
      `SHA256:${'a'.repeat(64)}`,
      `:${'a'.repeat(64)}`,
      `sha256:${'a'.repeat(64)}/../x`,
    ];
    for (const d of bad) {
      const err = await rejection(store.info(d));
      expect(err.kind).toBe('InvalidArgument');
    }
    const sha512 = `sha512:${'a'.repeat(128)}`;
    for (const p of [store.info(sha512), store.delete(sha512), store.createReadStream(sha512)]) {
      const err = await rejection(p);
      expect(err.kind).toBe('InvalidArgument');
      expect(err.message).toBe(`invalid digest "${sha512}": unsupported digest algorithm: invalid argument`);
    }
    expect((await rejection(store.writer('x', { expected: 'sha256:nope' }))).kind).toBe('InvalidArgument');
    const w = await store.writer('x');
    await w.write(Buffer.from('x'));
    expect((await rejection(w.commit({ expected: 'md5:abc' }))).kind).toBe('InvalidArgument');
    // A bad expected digest does not finish the writer.
    expect((await w.commit()).digest).toBe(digestOf('x'));
    expect(() => validateDigest(digestOf('ok'))).not.toThrow();
    expect((await rejection(store.writer(''))).kind).toBe('InvalidArgument');
  });

  test('missing blobs are NotFound with containerd\'s message', async () => {
    const d = digestOf('absent');
    for (const p of [store.info(d), store.readerAt(d), store.createReadStream(d), store.delete(d)]) {
      const err = await rejection(p);
      expect(err.kind).toBe('NotFound');
      expect(err.message).toBe(`content digest ${d}: not found`);
    }
    expect(await store.exists(d)).toBe(false);
  });

  test('ranged reads: streams, positional reads, and past-the-end rules', async () => {
    const data = pattern(0, 1_000_000);
    const d = await put(data);

    const part = await collect(await store.createReadStream(d, { offset: 1000, length: 5000 }));
    expect(part.equals(data.subarray(1000, 6000))).toBe(true);
    // Length past the end, or 0, reads to the end; offset == size reads nothing.
    expect((await collect(await store.createReadStream(d, { offset: 999_000, length: 10_000 }))).equals(data.subarray(999_000))).toBe(true);
    expect((await collect(await store.createReadStream(d, { offset: 10, length: 0 }))).length).toBe(data.length - 10);
    expect((await collect(await store.createReadStream(d, { offset: data.length }))).length).toBe(0);
    const err = await rejection(store.createReadStream(d, { offset: data.length + 1 }));
    expect(err.kind).toBe('OutOfRange');
    expect(err.message).toBe(`read past object length ${data.length} bytes: out of range`);

    // Bounded chunks.
    const sizes: number[] = [];
    for await (const chunk of await store.createReadStream(d, { chunkSize: 64 * 1024 })) {
      sizes.push((chunk as Buffer).length);
    }
    expect(Math.max(...sizes)).toBeLessThanOrEqual(64 * 1024);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(data.length);

    const r = await store.readerAt(d);
    try {
      expect(r.size).toBe(data.length);
      expect((await r.read(123_456, 1000)).equals(data.subarray(123_456, 124_456))).toBe(true);
      const buf = Buffer.alloc(100);
      expect(await r.readAt(buf, data.length - 40)).toBe(40);
      expect(buf.subarray(0, 40).equals(data.subarray(data.length - 40))).toBe(true);
      expect(await r.readAt(buf, data.length + 5)).toBe(0);
      expect((await r.read(data.length, 10)).length).toBe(0);
      // Reads keep working after the blob is deleted.
      await store.delete(d);
      expect((await r.read(0, 10)).equals(data.subarray(0, 10))).toBe(true);
    } finally {
      await r.close();
    }
  });

  test('a read stream can be cancelled', async () => {
    const d = await put(pattern(0, 4 * 1024 * 1024));
    const ac = new AbortController();
    const stream = await store.createReadStream(d, { chunkSize: 65536, signal: ac.signal });
    let n = 0;
    await expect(
      (async () => {
        for await (const chunk of stream) {
          n += (chunk as Buffer).length;
          ac.abort();
        }
      })(),
    ).rejects.toThrow();
    expect(n).toBeLessThan(4 * 1024 * 1024);
    const pre = new AbortController();
    pre.abort();
    expect((await rejection(store.createReadStream(d, { signal: pre.signal }))).kind).toBe('Canceled');
  });

  test('delete removes a blob; deleting again is NotFound', async () => {
    const d = await put(Buffer.from('bye'));
    await store.delete(d);
    expect(await store.exists(d)).toBe(false);
    expect((await rejection(store.info(d))).kind).toBe('NotFound');
    expect((await rejection(store.delete(d))).message).toBe(`content digest ${d}: not found`);
    // Deleted content can be written again.
    expect(await put(Buffer.from('bye'), 'again')).toBe(d);
  });

  test('walk lists every committed blob and ignores strangers', async () => {
    expect(await arrayOf(store.walk())).toEqual([]);
    const datas = [Buffer.from('a'), Buffer.from('bb'), pattern(0, 70_000)];
    const digests = [];
    for (const data of datas) digests.push(await put(data));
    fs.writeFileSync(path.join(root, 'blobs', 'sha256', 'not-a-digest'), 'x');
    fs.mkdirSync(path.join(root, 'blobs', 'sha256', 'f'.repeat(64)));
    const infos = await arrayOf(store.walk());
    expect(infos.map((i) => i.digest).sort()).toEqual([...digests].sort());
    for (const info of infos) {
      expect(info.size).toBe(datas[digests.indexOf(info.digest)].length);
      // (Dates from fs.Stats come from another realm under jest: compare times.)
      expect(Math.abs(info.createdAt.getTime() - Date.now())).toBeLessThan(60_000);
    }
    // An aborted walk stops.
    const ac = new AbortController();
    ac.abort();
    expect((await rejection(arrayOf(store.walk({ signal: ac.signal })))).kind).toBe('Canceled');
  });

  test('a fresh root without any directories reads as empty', async () => {
    const fresh = new ContentStore(path.join(root, 'not-yet'));
    expect(await arrayOf(fresh.walk())).toEqual([]);
    expect(await fresh.listStatuses()).toEqual([]);
    expect(await fresh.expireIngests(0)).toEqual([]);
    expect((await rejection(fresh.status('r'))).kind).toBe('NotFound');
  });
});

describe('content store: helpers', () => {
  test('durations print like Go', () => {
    expect(formatDuration(0)).toBe('0s');
    expect(formatDuration(1500)).toBe('1.5µs');
    expect(formatDuration(12_345_000)).toBe('12.345ms');
    expect(formatDuration(1_500_000_000)).toBe('1.5s');
    expect(formatDuration(62_000_000_000)).toBe('1m2s');
    expect(formatDuration(3_600_000_000_000)).toBe('1h0m0s');
    expect(formatDuration(999)).toBe('999ns');
  });
});

async function arrayOf<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}
