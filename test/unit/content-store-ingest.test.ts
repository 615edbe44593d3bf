// The local content store: ingests — resume (after close and after SIGKILL), locks, offsets,
// statuses, abort and expiry.
import { fork } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ContentStore, EMPTY_DIGEST, RefLocks, digestOf } from '../../content-store';
import { BerthError } from '../../services/errdefs';

const STORE_MODULE = path.resolve(__dirname, '..', '..', 'content-store', 'index.js');

function pattern(offset: number, length: number): Buffer {
  const b = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) {
    const x = offset + i;
    b[i] = (x * 131 + (x >>> 8) * 7 + (x >>> 16)) & 0xff;
  }
  return b;
}

async function rejection(p: Promise<unknown>): Promise<BerthError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(BerthError);
    return err as BerthError;
  }
  throw new Error('expected a rejection');
}

const ingestDirOf = (root: string, ref: string) =>
  path.join(root, 'ingest', createHash('sha256').update(ref).digest('hex'));

/** Makes an ingest look idle since `at`: its updatedat file, the data's and directory's mtimes. */
function age(root: string, ref: string, at: Date): void {
  const dir = ingestDirOf(root, ref);
  fs.writeFileSync(path.join(dir, 'updatedat'), at.toISOString());
  fs.utimesSync(path.join(dir, 'data'), at, at);
  fs.utimesSync(dir, at, at);
}

describe('content store: ingests', () => {
  let root: string;
  let store: ContentStore;

  beforeEach(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-cs-ingest-'));
    store = new ContentStore(root, { lockRetries: 1 });
  });
  afterEach(() => {
    store.close();
    fs.rmSync(root, { recursive: true, force: true });
  });

  test('an ingest shows its state on disk as containerd lays it out', async () => {
    const w = await store.writer('manifest-sha256:abc', { total: 12, expected: digestOf('hello world!') });
    await w.write(Buffer.from('hello '));
    await w.close();
    const dir = ingestDirOf(root, 'manifest-sha256:abc');
    expect(fs.readdirSync(dir).sort()).toEqual(['data', 'expected', 'ref', 'startedat', 'total', 'updatedat']);
    expect(fs.readFileSync(path.join(dir, 'ref'), 'utf8')).toBe('manifest-sha256:abc');
    expect(fs.readFileSync(path.join(dir, 'total'), 'utf8')).toBe('12');
    expect(fs.readFileSync(path.join(dir, 'expected'), 'utf8')).toBe(digestOf('hello world!'));
    expect(fs.readFileSync(path.join(dir, 'data'), 'utf8')).toBe('hello ');
    const started = new Date(fs.readFileSync(path.join(dir, 'startedat'), 'utf8'));
    expect(Math.abs(started.getTime() - Date.now())).toBeLessThan(60_000);

    const st = await store.status('manifest-sha256:abc');
    expect(st).toMatchObject({ ref: 'manifest-sha256:abc', offset: 6, total: 12, expected: digestOf('hello world!') });
    expect(st.startedAt.getTime()).toBe(started.getTime());
    expect(st.updatedAt.getTime()).toBeGreaterThanOrEqual(st.startedAt.getTime());
  });

  test('a closed ingest resumes where it stopped, with the running digest rebuilt', async () => {
    const data = pattern(0, 10 * 1024 * 1024 + 333);
    const half = 6 * 1024 * 1024 + 7;
    const w = await store.writer('resume-me', { total: data.length });
    await w.write(data.subarray(0, half));
    await w.close();
    await w.close(); // twice is fine

    expect((await store.status('resume-me')).offset).toBe(half);
    const w2 = await store.writer('resume-me');
    expect(w2.status()).toMatchObject({ offset: half, total: data.length });
    expect(w2.digest()).toBe(digestOf(data.subarray(0, half)));
    // Writing at the wrong offset is refused; at the current one, accepted.
    const err = await rejection(w2.write(data.subarray(half), half + 1));
    expect(err.kind).toBe('OutOfRange');
    expect(err.message).toBe(`write @${half + 1} must occur at current offset ${half}: out of range`);
    expect(await w2.write(data.subarray(half), half)).toBe(data.length);
    const info = await w2.commit({ size: data.length, expected: digestOf(data) });
    expect(info.digest).toBe(digestOf(data));
    expect(fs.readFileSync(store.blobPath(info.digest)).equals(data)).toBe(true);
  });

  test('a different total or expected digest starts the ingest over', async () => {
    const w = await store.writer('changing', { total: 5 });
    await w.write(Buffer.from('abc'));
    await w.close();
    const w2 = await store.writer('changing', { total: 6 });
    expect(w2.status().offset).toBe(0);
    await w2.write(Buffer.from('abc'));
    await w2.close();
    // No total given: keeps the recorded one.
    const w3 = await store.writer('changing', { expected: digestOf('abcdef') });
    expect(w3.status()).toMatchObject({ offset: 3, total: 6, expected: digestOf('abcdef') });
    await w3.close();
    const w4 = await store.writer('changing', { expected: digestOf('other') });
    expect(w4.status().offset).toBe(0);
    await w4.close();
  });

  test('offset 0 with data present starts over; truncate rewinds the digest', async () => {
    const w = await store.writer('rewind');
    await w.write(Buffer.from('first attempt'));
    expect(await w.write(Buffer.from('second'), 0)).toBe(6);
    expect(w.digest()).toBe(digestOf('second'));
    await w.write(Buffer.from(' try'));
    await w.truncate(3);
    expect(w.status().offset).toBe(3);
    expect(w.digest()).toBe(digestOf('sec'));
    expect((await rejection(w.truncate(10))).kind).toBe('OutOfRange');
    await w.truncate(0);
    expect(w.digest()).toBe(EMPTY_DIGEST);
    await w.write(Buffer.from('final'));
    expect((await w.commit({ expected: digestOf('final') })).size).toBe(5);
  });

  test('a second writer on a ref is Unavailable until the first closes', async () => {
    const w = await store.writer('busy');
    await w.write(Buffer.from('x'));
    const err = await rejection(store.writer('busy'));
    expect(err.kind).toBe('Unavailable');
    expect(err.message).toMatch(/^ref busy locked for [0-9.]+(ns|µs|ms|s) \(since \d{4}-\d\d-\d\dT[0-9:.]+Z\): unavailable$/);
    // Other refs are independent.
    await (await store.writer('other')).close();
    await w.close();
    const w2 = await store.writer('busy');
    expect(w2.status().offset).toBe(1);
    await w2.commit();
    // Committing releases the ref too.
    await (await store.writer('busy')).close();
  });

  test('with retries (containerd\'s default), a writer waits for a lock released meanwhile', async () => {
    const patient = new ContentStore(root, { locks: new RefLocks() });
    const w = await patient.writer('handover');
    setTimeout(() => void w.close(), 30);
    const w2 = await patient.writer('handover');
    await w2.close();
    // Cancelling the wait.
    const w3 = await patient.writer('handover');
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 5);
    const kind = (await rejection(patient.writer('handover', { signal: ac.signal }))).kind;
    expect(['Canceled', 'Unavailable']).toContain(kind);
    await w3.close();
  });

  test('stores sharing a lock table exclude each other', async () => {
    const locks = new RefLocks();
    const a = new ContentStore(root, { locks, lockRetries: 1 });
    const b = new ContentStore(root, { locks, lockRetries: 1 });
    const w = await a.writer('shared');
    expect((await rejection(b.writer('shared'))).kind).toBe('Unavailable');
    await w.close();
    await (await b.writer('shared')).close();
  });

  test('listStatuses reports open and closed ingests, live offsets, and skips broken ones', async () => {
    const open = await store.writer('open-one', { total: 100 });
    await open.write(Buffer.alloc(10));
    const closed = await store.writer('closed-one');
    await closed.write(Buffer.alloc(20));
    await closed.close();
    // A directory without data (a writer killed while creating it) is not an ingest.
    fs.mkdirSync(path.join(root, 'ingest', 'a'.repeat(64)));
    fs.writeFileSync(path.join(root, 'ingest', 'a'.repeat(64), 'ref'), 'half-made');

    const list = (await store.listStatuses()).sort((x, y) => x.ref.localeCompare(y.ref));
    expect(list.map((s) => [s.ref, s.offset, s.total])).toEqual([
      ['closed-one', 20, 0],
      ['open-one', 10, 100],
    ]);
    expect((await store.status('open-one')).offset).toBe(10);
    expect((await rejection(store.status('half-made'))).kind).toBe('NotFound');
    expect((await rejection(store.status('nothing'))).message).toBe('ingest ref "nothing": not found');
    await open.close();
  });

  test('abort removes an ingest, stopping a writer that holds it; NotFound if none', async () => {
    const err = await rejection(store.abort('none'));
    expect(err.kind).toBe('NotFound');
    expect(err.message).toBe('ingest ref "none": not found');

    const w = await store.writer('closed');
    await w.write(Buffer.from('abc'));
    await w.close();
    await store.abort('closed');
    expect(fs.existsSync(ingestDirOf(root, 'closed'))).toBe(false);
    expect((await rejection(store.status('closed'))).kind).toBe('NotFound');

    const live = await store.writer('live');
    await live.write(pattern(0, 5 * 1024 * 1024));
    await store.abort('live');
    expect(fs.existsSync(ingestDirOf(root, 'live'))).toBe(false);
    const late = await rejection(live.write(Buffer.from('more')));
    expect(late.kind).toBe('FailedPrecondition');
    expect(late.message).toBe('writer for ref "live" is aborted: failed precondition');
    expect((await rejection(live.commit())).kind).toBe('FailedPrecondition');
    await live.close();
    // The ref is free and starts empty.
    const again = await store.writer('live');
    expect(again.status().offset).toBe(0);
    await again.close();
    expect(fs.readdirSync(path.join(root, 'blobs', 'sha256'))).toEqual([]);
  });

  test('expireIngests removes idle ingests older than the age, keeps fresh and held ones', async () => {
    const day = 24 * 60 * 60 * 1000;
    for (const ref of ['old', 'fresh', 'held']) {
      const w = await store.writer(ref);
      await w.write(Buffer.from(ref));
      await w.close();
    }
    age(root, 'old', new Date(Date.now() - day - 60_000));
    age(root, 'held', new Date(Date.now() - 2 * day));
    age(root, 'fresh', new Date(Date.now() - day + 60_000));
    const held = await store.writer('held');
    // An incomplete directory left long ago goes too.
    const broken = path.join(root, 'ingest', 'b'.repeat(64));
    fs.mkdirSync(broken);
    const longAgo = new Date(Date.now() - 3 * day);
    fs.utimesSync(broken, longAgo, longAgo);

    // The default age is containerd's 24 hours.
    const removed = await store.expireIngests();
    expect(removed.map((r) => r.ref ?? path.basename(r.path)).sort()).toEqual(['b'.repeat(64), 'old']);
    expect(removed.find((r) => r.ref === 'old')).toMatchObject({ offset: 3, path: ingestDirOf(root, 'old') });
    expect((await store.listStatuses()).map((s) => s.ref).sort()).toEqual(['fresh', 'held']);
    expect(fs.existsSync(broken)).toBe(false);

    // A shorter age (ms) catches the fresh one; the held one survives while held.
    expect((await store.expireIngests(60 * 60 * 1000)).map((r) => r.ref)).toEqual(['fresh']);
    await held.close();
    // Opening and closing a writer is activity, so it is no longer idle.
    expect(await store.expireIngests(60 * 60 * 1000)).toEqual([]);
    expect((await store.expireIngests(0)).map((r) => r.ref)).toEqual(['held']);
  });

  test('the expiry option removes stale ingests on a timer', async () => {
    const w = await store.writer('stale');
    await w.write(Buffer.from('zzz'));
    await w.close();
    age(root, 'stale', new Date(Date.now() - 10_000));
    const timed = new ContentStore(root, { ingestExpiry: 5_000, expireInterval: 20 });
    try {
      for (let i = 0; i < 100 && fs.existsSync(ingestDirOf(root, 'stale')); i++) {
        await new Promise((r) => setTimeout(r, 20));
      }
      expect(fs.existsSync(ingestDirOf(root, 'stale'))).toBe(false);
    } finally {
      timed.close();
    }
  });

  test('an ingest written by containerd (Go timestamps) is read and resumed', async () => {
    const ref = 'layer-sha256:go';
    const dir = ingestDirOf(root, ref);
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'ref'), ref);
    fs.writeFileSync(path.join(dir, 'startedat'), '2024-01-02T03:04:05.123456789+01:00');
    fs.writeFileSync(path.join(dir, 'updatedat'), '2024-01-02T03:04:06.5Z');
    fs.writeFileSync(path.join(dir, 'total'), '11');
    fs.writeFileSync(path.join(dir, 'data'), 'hello');
    const st = await store.status(ref);
    expect(st).toMatchObject({ ref, offset: 5, total: 11 });
    expect(st.startedAt.toISOString()).toBe('2024-01-02T02:04:05.123Z');
    const w = await store.writer(ref);
    expect(w.digest()).toBe(digestOf('hello'));
    await w.write(Buffer.from(' world'));
    expect((await w.commit()).digest).toBe(digestOf('hello world'));
  });

  test('an ingest left behind by a commit that died after linking its blob starts over', async () => {
    const w = await store.writer('linked');
    await w.write(Buffer.from('committed bytes'));
    await w.close();
    const dir = ingestDirOf(root, 'linked');
    const blob = store.blobPath(digestOf('committed bytes'));
    fs.mkdirSync(path.dirname(blob), { recursive: true });
    fs.linkSync(path.join(dir, 'data'), blob); // as if the process died right after link(2)

    const w2 = await store.writer('linked');
    expect(w2.status().offset).toBe(0);
    await w2.write(Buffer.from('new'));
    await w2.close();
    expect(fs.readFileSync(blob, 'utf8')).toBe('committed bytes');
  });
});

describe('content store: crash recovery', () => {
  let root: string;

  beforeEach(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-cs-crash-'));
  });
  afterEach(() => {
    fs.rmSync(root, { recursive: true, force: true });
  });

  /**
   * Runs a writer in a child process that writes pattern bytes of the ingest and reports its
   * offset; the test SIGKILLs it once `killAt` bytes are reported (stop=true: the child then
   * idles; false: it keeps writing while being killed).
   */
  async function crashWriter(ref: string, total: number, killAt: number, stop: boolean): Promise<number> {
    const script = path.join(root, 'crash-writer.js');
    fs.writeFileSync(
      script,
      `'use strict';
const { ContentStore } = require(${JSON.stringify(STORE_MODULE)});
${pattern.toString()}
const [root, ref, total, killAt, stop] = process.argv.slice(2);
(async () => {
  const store = new ContentStore(root);
  const w = await store.writer(ref, { total: Number(total) });
  let off = w.status().offset;
  const end = stop === 'true' ? Number(killAt) : Number(total) - 1;
  while (off < end) {
    const n = Math.min(123457, end - off);
    off = await w.write(pattern(off, n));
    if (off >= Number(killAt)) process.send({ offset: off });
  }
  setInterval(() => {}, 1000);
})().catch((err) => { console.error(err); process.exit(3); });
`,
    );
    const child = fork(script, [root, ref, String(total), String(killAt), String(stop)], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      execArgv: [],
    });
    const reported = await new Promise<number>((resolve, reject) => {
      child.once('message', (m) => resolve((m as { offset: number }).offset));
      child.once('exit', (code) => reject(new Error(`crash writer exited early with ${code}`)));
    });
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
    return reported;
  }

  async function resumeAndCommit(store: ContentStore, ref: string, total: number, reported: number): Promise<number> {
    const st = await store.status(ref);
    expect(st).toMatchObject({ ref, total });
    // What reached the file before the kill is a prefix of what was written.
    expect(st.offset).toBeGreaterThan(0);
    expect(st.offset).toBeLessThanOrEqual(total);
    const w = await store.writer(ref, { total });
    const off = w.status().offset;
    expect(off).toBe(st.offset);
    expect(w.digest()).toBe(digestOf(pattern(0, off)));
    for (let p = off; p < total; p += 1 << 20) await w.write(pattern(p, Math.min(1 << 20, total - p)), p);
    const info = await w.commit({ expected: digestOf(pattern(0, total)) });
    expect(info.size).toBe(total);
    void reported;
    return off;
  }

  test('an ingest whose writer was SIGKILLed while idle resumes in a new process', async () => {
    const total = 24 * 1024 * 1024 + 5;
    const reported = await crashWriter('killed-idle', total, 13 * 1024 * 1024, true);
    expect(reported).toBeGreaterThanOrEqual(13 * 1024 * 1024);
    const store = new ContentStore(root);
    const off = await resumeAndCommit(store, 'killed-idle', total, reported);
    // At most one write buffer (4 MiB) was still in memory.
    expect(off).toBeGreaterThan(reported - 2 * 4 * 1024 * 1024);
    expect(off).toBeLessThanOrEqual(reported);
  });

  test('an ingest whose writer was SIGKILLed mid-write resumes in a new process', async () => {
    const total = 48 * 1024 * 1024;
    const reported = await crashWriter('killed-busy', total, 9 * 1024 * 1024, false);
    const store = new ContentStore(root);
    await resumeAndCommit(store, 'killed-busy', total, reported);
    expect(await store.listStatuses()).toEqual([]);
  });
});
