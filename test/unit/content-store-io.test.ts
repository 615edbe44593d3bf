// The local content store under load: large blobs stream in bounded memory, and a full disk
// surfaces as an error without leaving anything in blobs/.
import { execFileSync, fork } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ContentStore } from '../../content-store';
import { BerthError } from '../../services/errdefs';

const MiB = 1024 * 1024;
const STORE_MODULE = path.resolve(__dirname, '..', '..', 'content-store', 'index.js');

describe('content store: large blobs and failures', () => {
  let root: string;

  beforeEach(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-cs-io-'));
  });
  afterEach(() => {
    fs.rmSync(root, { recursive: true, force: true });
  });

  test('a 64 MiB blob is written and read back as a stream without large memory growth', async () => {
    // Measured in a fresh process (no jest heap around it) that collects garbage every few
    // chunks, so what is counted is what the store holds, not what V8 has yet to free.
    const script = path.join(root, 'big-blob.js');
    fs.writeFileSync(
      script,
      `'use strict';
const { createHash } = require('node:crypto');
const { ContentStore } = require(${JSON.stringify(STORE_MODULE)});
const MiB = 1024 * 1024;
(async () => {
  const store = new ContentStore(process.argv[2]);
  const size = 64 * MiB;
  const chunk = Buffer.allocUnsafe(MiB); // one source buffer, refilled: the store copies what it keeps
  const expected = createHash('sha256');
  gc();
  const base = process.memoryUsage().rss;
  let peak = base;
  let n = 0;
  const sample = () => {
    if (++n % 4 === 0) gc();
    peak = Math.max(peak, process.memoryUsage().rss);
  };
  const w = await store.writer('big', { total: size });
  for (let off = 0; off < size; off += chunk.length) {
    chunk.fill(off / MiB);
    chunk.writeUInt32BE(off, 0);
    expected.update(chunk);
    await w.write(chunk);
    sample();
  }
  const digest = 'sha256:' + expected.digest('hex');
  const info = await w.commit({ expected: digest });
  const got = createHash('sha256');
  let read = 0;
  for await (const part of await store.createReadStream(digest)) {
    got.update(part);
    read += part.length;
    sample();
  }
  process.send({ size: info.size, read, same: 'sha256:' + got.digest('hex') === digest, growth: peak - base });
})().catch((err) => { console.error(err); process.exit(3); });
`,
    );
    const child = fork(script, [path.join(root, 'store')], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      execArgv: ['--expose-gc'],
    });
    const result = await new Promise<{ size: number; read: number; same: boolean; growth: number }>((resolve, reject) => {
      child.once('message', (m) => resolve(m as never));
      child.once('exit', (code) => reject(new Error(`big-blob child exited with ${code}`)));
    });
    child.kill();
    expect(result).toMatchObject({ size: 64 * MiB, read: 64 * MiB, same: true });
    // Holding the blob would cost 64 MiB or more; streaming costs a few buffers (2 x 4 MiB to
    // write, about two 1 MiB chunks to read).
    if (process.env.BERTH_TEST_VERBOSE) console.log(`rss growth ${(result.growth / MiB).toFixed(1)} MiB`);
    expect(result.growth).toBeLessThan(24 * MiB);
  });

  const canMount = process.getuid?.() === 0 && mountWorks();
  (canMount ? test : test.skip)('a full disk fails the write with ResourceExhausted and commits nothing', async () => {
    const mnt = path.join(root, 'small');
    fs.mkdirSync(mnt);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', mnt]);
    try {
      const store = new ContentStore(mnt, { writeBufferSize: 256 * 1024 });
      const w = await store.writer('too-big');
      let err: unknown;
      try {
        for (let i = 0; i < 16; i++) await w.write(Buffer.alloc(256 * 1024, i));
        await w.commit();
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(BerthError);
      expect((err as BerthError).kind).toBe('ResourceExhausted');
      expect((err as BerthError).message).toMatch(/ENOSPC|no space left/i);
      // Further calls keep failing; close releases the ref even though the disk is full.
      await expect(w.commit()).rejects.toThrow();
      await w.close().catch(() => undefined);
      expect(fs.readdirSync(path.join(mnt, 'blobs', 'sha256'))).toEqual([]);
      // Whatever reached the disk is a resumable ingest, which can be aborted to free space.
      const st = await store.status('too-big');
      expect(st.offset).toBeGreaterThan(0);
      await store.abort('too-big');
      const info = await store.writeBlob('small', [Buffer.from('fits now')]);
      expect(info.size).toBe(8);
    } finally {
      execFileSync('umount', [mnt]);
    }
  });
});

function mountWorks(): boolean {
  const probe = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-cs-mount-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', probe], { stdio: 'ignore' });
    execFileSync('umount', [probe], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  } finally {
    fs.rmSync(probe, { recursive: true, force: true });
  }
}
