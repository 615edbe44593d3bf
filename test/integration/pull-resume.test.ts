// A pull killed halfway — the client (SIGKILL of the CLI) or berthd itself (SIGKILL) — is resumed
// by the next pull without downloading the layers it had already completed: those were committed
// under the pull's lease, which outlives the interruption, and the partial big layer is resumed
// from the bytes on disk. Driven through a fault proxy that logs every request the daemon makes.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import { promisify } from 'node:util';
import type { Client } from '../../cli/client';
import { BERTH, cleanup, sleep, startDaemon, waitFor, type TestDaemon } from '../helpers/daemon';
import { buildImage, pushImage, type TestImage } from '../helpers/images';
import { startFaultProxy, startRegistry, type FaultProxy, type TestRegistry } from '../helpers/registry';
import { RegistryClient } from '../../services/remotes';

const run = promisify(execFile);
const CTR = process.env.CTR ?? '/usr/bin/ctr';
const haveCtr = fs.existsSync(CTR);

const BIG = 40 << 20;
const STALL_AFTER = 4 << 20;

describe('an interrupted pull resumes without fetching completed layers again', () => {
  let registry: TestRegistry;
  let proxy: FaultProxy;
  const built: TestImage[] = [];
  const daemons: TestDaemon[] = [];
  const clients: Client[] = [];
  const procs: ChildProcess[] = [];

  beforeAll(async () => {
    registry = await startRegistry();
    proxy = await startFaultProxy(registry.port);
  }, 60_000);

  afterAll(async () => {
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    for (const c of clients) c.close();
    await cleanup(...daemons);
    await proxy?.stop();
    await registry?.stop();
    for (const b of built) b.remove();
  });

  const berth = (d: TestDaemon, ...args: string[]) => run(process.execPath, [BERTH, '--address', d.address, ...args], { timeout: 90_000 });
  const has = async (c: Client, digest: string) =>
    c.unary('content', 'Info', { digest }).then(
      () => true,
      (e) => {
        if (e?.code === 5) return false;
        throw e;
      },
    );
  const blobGets = (digest: string) => proxy.log.filter((e) => e.method === 'GET' && e.url.split('?')[0]!.endsWith(`/blobs/${digest}`));

  /** Builds and pushes a 3-layer image (busybox, a small file layer, a 40 MiB random layer). */
  const prepare = async (name: string) => {
    const img = await buildImage({ tag: name, layers: 3, bigLayerBytes: BIG });
    built.push(img);
    const rc = new RegistryClient({ plainHttp: true });
    await pushImage(rc, img, `${registry.host}/test/${name}:latest`).finally(() => rc.close());
    const m = img.manifests[0]!;
    return { img, m, big: m.layers[2]!, small: [m.config, m.layers[0]!, m.layers[1]!], ref: `${proxy.host}/test/${name}:latest` };
  };

  /**
   * Starts a pull through the proxy with the big layer's body stalled after STALL_AFTER bytes and
   * waits until the small blobs are committed and the big one's ingest holds the stalled bytes.
   */
  const startStalledPull = async (d: TestDaemon, c: Client, p: Awaited<ReturnType<typeof prepare>>) => {
    proxy.clear();
    proxy.add({ kind: 'stall', method: 'GET', path: new RegExp(`/blobs/${p.big.digest}$`), afterBytes: STALL_AFTER });
    const cli = spawn(process.execPath, [BERTH, '--address', d.address, 'images', 'pull', '--plain-http', p.ref], { stdio: ['ignore', 'pipe', 'pipe'] });
    procs.push(cli);
    let out = '';
    cli.stdout!.on('data', (b) => (out += b.toString()));
    cli.stderr!.on('data', (b) => (out += b.toString()));
    const exited = new Promise<void>((resolve) => cli.once('exit', () => resolve()));
    await waitFor(
      'the small blobs to be committed and the big layer to stall',
      async () => {
        if (cli.exitCode !== null) throw new Error(`pull ended early (${cli.exitCode}): ${out}`);
        for (const s of p.small) if (!(await has(c, s.digest))) return undefined;
        const statuses = ((await c.unary('content', 'ListStatuses', {})).statuses ?? []) as any[];
        const st = statuses.find((s) => s.ref === `layer-${p.big.digest}`);
        return st && Number(st.offset) >= STALL_AFTER ? true : undefined;
      },
      60_000,
    );
    expect(blobGets(p.big.digest)).toHaveLength(1);
    for (const s of p.small) expect(blobGets(s.digest)).toHaveLength(1);
    return { cli, exited, output: () => out };
  };

  /** The second pull: no fault; completed blobs must not be fetched, the big one resumed. */
  const resumeAndCheck = async (d: TestDaemon, c: Client, p: Awaited<ReturnType<typeof prepare>>, offset: number) => {
    proxy.clear();
    const { stdout } = await berth(d, 'images', 'pull', '--plain-http', p.ref);
    expect(stdout).toContain(`${p.ref}: done (${p.m.descriptor.digest})`);
    for (const s of p.small) expect(blobGets(s.digest)).toEqual([]);
    const gets = blobGets(p.big.digest);
    expect(gets.length).toBeGreaterThan(0);
    if (offset > 0) expect(gets[0]!.range).toBe(`bytes=${offset}-`);
    expect((await c.unary('content', 'Info', { digest: p.big.digest })).info.size).toBe(p.big.size);
    expect(((await c.unary('content', 'ListStatuses', {})).statuses ?? []).filter((s: any) => s.ref.includes(p.big.digest))).toEqual([]);
    expect((await berth(d, 'images', 'ls', '-q')).stdout.split('\n')).toContain(p.ref);
    const re = new RegExp(`${p.ref.replace(/[.]/g, '\\.')}\\s+.*complete \\(4/4\\)\\s+.*true`);
    expect((await berth(d, 'images', 'check')).stdout).toMatch(re);
    if (haveCtr) expect((await run(CTR, ['--address', d.address, 'images', 'check'], { timeout: 30_000 })).stdout).toMatch(re);
  };

  const ingestOffset = async (c: Client, digest: string) => {
    const statuses = ((await c.unary('content', 'ListStatuses', {})).statuses ?? []) as any[];
    return Number(statuses.find((s) => s.ref === `layer-${digest}`)?.offset ?? 0);
  };

  test('the client SIGKILLed mid-pull', async () => {
    const p = await prepare('client-kill');
    const d = await startDaemon();
    daemons.push(d);
    const c = d.client('default');
    clients.push(c);

    const { cli, exited } = await startStalledPull(d, c, p);
    cli.kill('SIGKILL');
    await exited;
    // Let berthd see the cancellation, end the pull and run any GC it schedules.
    await sleep(1500);
    for (const s of p.small) expect(await has(c, s.digest)).toBe(true);
    const offset = await ingestOffset(c, p.big.digest);
    expect(offset).toBeGreaterThanOrEqual(STALL_AFTER);
    expect(offset).toBeLessThan(p.big.size);

    await resumeAndCheck(d, c, p, offset);
  }, 180_000);

  test('berthd SIGKILLed mid-pull and restarted on the same root', async () => {
    const p = await prepare('daemon-kill');
    const d = await startDaemon();
    daemons.push(d);
    let c = d.client('default');
    clients.push(c);

    const { exited } = await startStalledPull(d, c, p);
    await d.kill();
    await exited; // the CLI fails once its daemon is gone
    c.close();
    await d.start();
    c = d.client('default');
    clients.push(c);
    await sleep(500); // a GC pass at start-up, if any
    // The pull's lease survived the crash and still holds the completed blobs.
    expect(((await c.unary('leases', 'List', {})).leases ?? []).length).toBeGreaterThan(0);
    for (const s of p.small) expect(await has(c, s.digest)).toBe(true);
    // The partial big layer is still on disk: the next pull resumes it with a Range request.
    const offset = await ingestOffset(c, p.big.digest);
    expect(offset).toBeGreaterThan(0);
    expect(offset).toBeLessThan(p.big.size);

    await resumeAndCheck(d, c, p, offset);
  }, 180_000);
});
