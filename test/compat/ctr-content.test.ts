// containerd's `ctr` against berthd: content and leases, including ingests interrupted by a
// SIGKILL of the client and of the daemon, resumed from their offset.
import { execFile, spawn } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { cleanup, startDaemon, tempDir, waitFor, type TestDaemon } from '../helpers/daemon';

const run = promisify(execFile);
const CTR = process.env.CTR ?? '/usr/bin/ctr';

function sha256(buf: Buffer): string {
  return `sha256:${crypto.createHash('sha256').update(buf).digest('hex')}`;
}

describe('ctr against berthd: content and leases', () => {
  let daemon: TestDaemon;
  let dir: string;
  const ctr = (...args: string[]) => run(CTR, ['--address', daemon.address, ...args], { timeout: 30_000, maxBuffer: 64 << 20, encoding: 'buffer' as any }) as unknown as Promise<{ stdout: Buffer; stderr: Buffer }>;
  const ctrText = async (...args: string[]) => (await ctr(...args)).stdout.toString();
  /** ctr with stdin from a file (a seekable stdin, as ctr needs to resume). */
  const ctrWithInput = (file: string, ...args: string[]) =>
    new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const fd = fs.openSync(file, 'r');
      const p = spawn(CTR, ['--address', daemon.address, ...args], { stdio: [fd, 'ignore', 'pipe'] });
      let stderr = '';
      p.stderr!.on('data', (d) => (stderr += d));
      p.on('exit', (code) => {
        fs.closeSync(fd);
        resolve({ code, stderr });
      });
    });

  beforeAll(async () => {
    dir = tempDir('berth-ctr-content-');
    daemon = await startDaemon();
  });
  afterAll(async () => {
    await cleanup(daemon);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('ingest, ls, get (bytes identical), label, active, rm', async () => {
    const data = crypto.randomBytes(300_000); // several of ctr's 32 KiB reads
    const file = path.join(dir, 'blob');
    fs.writeFileSync(file, data);
    const digest = sha256(data);
    const r = await ctrWithInput(file, 'content', 'ingest', '--expected-size', String(data.length), '--expected-digest', digest, 'ref-a');
    expect(r).toEqual({ code: 0, stderr: '' });

    const ls = await ctrText('content', 'ls');
    expect(ls).toContain(digest);
    expect((await ctr('content', 'get', digest)).stdout.equals(data)).toBe(true);

    // The same content again: AlreadyExists, which ctr treats as success.
    expect((await ctrWithInput(file, 'content', 'ingest', '--expected-size', String(data.length), '--expected-digest', digest, 'ref-b')).code).toBe(0);

    await ctr('content', 'label', digest, 'foo=bar');
    const labelled = (await ctrText('content', 'ls')).split('\n').find((l) => l.startsWith(digest))!;
    expect(labelled).toMatch(/foo=bar$/);

    expect((await ctrText('content', 'active')).trim()).toBe('REF\tSIZE\tAGE');

    await ctr('content', 'rm', digest);
    expect(await ctrText('content', 'ls')).not.toContain(digest);
    const gone = await ctr('content', 'get', digest).then(
      () => '',
      (e) => String(e.stderr),
    );
    expect(gone).toContain(`content digest ${digest}: not found`);
  });

  test('a wrong expected digest fails and commits nothing', async () => {
    const file = path.join(dir, 'small');
    fs.writeFileSync(file, 'hello world\n');
    const wrong = `sha256:${'0'.repeat(64)}`;
    const r = await ctrWithInput(file, 'content', 'ingest', '--expected-digest', wrong, 'ref-wrong');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/unexpected commit digest sha256:a948904f\w+, expected sha256:0{64}: failed precondition/);
    expect(await ctrText('content', 'ls')).not.toContain('sha256:a948904f');
  });

  test('leases create, ls, rm', async () => {
    await ctr('leases', 'create', '--id', 'mylease', '--expires', '0', 'foo=bar');
    const generated = (await ctrText('leases', 'create')).trim();
    expect(generated).toMatch(/^\d+-[A-Za-z0-9_-]{4}$/);
    const ls = await ctrText('leases', 'ls');
    expect(ls).toMatch(/mylease\s+\S+\s+foo=bar/);
    expect(ls).toMatch(new RegExp(`${generated}\\s+\\S+\\s+containerd.io/gc.expire=`));
    const dup = await ctr('leases', 'create', '--id', 'mylease').then(
      () => '',
      (e) => String(e.stderr),
    );
    expect(dup).toContain('lease "mylease": already exists');
    await ctr('leases', 'rm', 'mylease', generated);
    expect(await ctrText('leases', 'ls')).not.toContain('mylease');
    const missing = await ctr('leases', 'rm', '--sync', 'nonexist').then(
      () => '',
      (e) => String(e.stderr),
    );
    expect(missing).toContain('lease "nonexist": not found');
  });

  describe('interrupted ingests resume from their offset', () => {
    const size = 24 << 20;
    let data: Buffer;
    let file: string;
    let digest: string;

    beforeAll(() => {
      data = crypto.randomBytes(size);
      file = path.join(dir, 'large');
      fs.writeFileSync(file, data);
      digest = sha256(data);
    });

    /** Starts ctr ingest fed through a pipe, sends `bytes`, and waits until the daemon has some of them on disk. */
    async function partialIngest(ref: string, bytes: number) {
      const p = spawn(CTR, ['--address', daemon.address, 'content', 'ingest', '--expected-size', String(size), '--expected-digest', digest, ref], {
        stdio: ['pipe', 'ignore', 'pipe'],
      });
      p.stdin.on('error', () => undefined);
      // Listen for the exit now: ctr may exit before the test gets to wait for it.
      const exited = new Promise((r) => p.once('exit', r));
      p.stdin.write(data.subarray(0, bytes));
      const client = daemon.client();
      try {
        await waitFor('the ingest to reach the disk', async () => {
          const { statuses } = await client.unary('content', 'ListStatuses', {});
          return statuses.find((s: any) => s.ref === ref && s.offset >= 4 << 20);
        }, 20_000);
      } finally {
        client.close();
      }
      return { p, exited };
    }

    async function offsetOf(ref: string): Promise<number> {
      const c = daemon.client();
      try {
        return (await c.unary('content', 'Status', { ref })).status.offset;
      } finally {
        c.close();
      }
    }

    test('after SIGKILL of the client', async () => {
      const { p, exited } = await partialIngest('resume-client', 12 << 20);
      p.kill('SIGKILL');
      await exited;
      const offset = await waitFor('the writer to be released', async () => {
        const o = await offsetOf('resume-client');
        return o >= 4 << 20 ? o : undefined;
      });
      expect(offset).toBeLessThanOrEqual(12 << 20);
      const r = await ctrWithInput(file, 'content', 'ingest', '--expected-size', String(size), '--expected-digest', digest, 'resume-client');
      expect(r).toEqual({ code: 0, stderr: '' });
      expect(sha256((await ctr('content', 'get', digest)).stdout)).toBe(digest);
      await ctr('content', 'rm', digest);
    });

    test('after SIGKILL of berthd', async () => {
      const { p, exited } = await partialIngest('resume-daemon', 12 << 20);
      await daemon.kill();
      // ctr may sit waiting on its stdin and not notice the daemon went: the client dies too.
      p.kill('SIGKILL');
      await exited;
      await daemon.start();
      const offset = await offsetOf('resume-daemon');
      expect(offset).toBeGreaterThan(0);
      expect(offset % 1).toBe(0);
      const r = await ctrWithInput(file, 'content', 'ingest', '--expected-size', String(size), '--expected-digest', digest, 'resume-daemon');
      expect(r).toEqual({ code: 0, stderr: '' });
      expect(sha256((await ctr('content', 'get', digest)).stdout)).toBe(digest);
    });
  });
});
