// Pulls done by berthd (berth.services.transfer.v1.Transfer) from a real docker-registry on
// loopback, driven by the berth CLI and checked with the real ctr: content labels as ctr writes
// them, the image record, snapshots keyed by chain ID, no re-download, corrupt layers refused.
import { execFile } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import type { Client } from '../../cli/client';
import { BERTH, cleanup, startDaemon, type TestDaemon } from '../helpers/daemon';
import { buildImage, otherPlatform, pushImage, type TestImage } from '../helpers/images';
import { startFaultProxy, startRegistry, type FaultProxy, type TestRegistry } from '../helpers/registry';
import { RegistryClient, hostPlatform, formatPlatform } from '../../services/remotes';

const run = promisify(execFile);
const CTR = process.env.CTR ?? '/usr/bin/ctr';
const haveCtr = fs.existsSync(CTR);

function chainIDs(diffIDs: string[]): string[] {
  const out: string[] = [];
  for (const d of diffIDs) {
    const prev = out[out.length - 1];
    out.push(prev ? `sha256:${crypto.createHash('sha256').update(`${prev} ${d}`).digest('hex')}` : d);
  }
  return out;
}

describe('images pull (daemon-side)', () => {
  let registry: TestRegistry;
  let proxy: FaultProxy;
  let daemon: TestDaemon;
  let client: Client;
  const built: TestImage[] = [];
  let single: TestImage;
  let multi: TestImage;
  let platforms: TestImage;

  const berth = (...args: string[]) => run(process.execPath, [BERTH, '--address', daemon.address, ...args], { timeout: 60_000 });
  const ctr = async (...args: string[]) => (await run(CTR, ['--address', daemon.address, ...args], { timeout: 30_000 })).stdout;

  beforeAll(async () => {
    registry = await startRegistry();
    proxy = await startFaultProxy(registry.port);
    const rc = new RegistryClient({ plainHttp: true });
    try {
      single = await buildImage({ tag: 'one' });
      multi = await buildImage({ tag: 'three', layers: 3, bigLayerBytes: 1 << 20 });
      platforms = await buildImage({ tag: 'multi', platforms: [hostPlatform(), otherPlatform()] });
      built.push(single, multi, platforms);
      await pushImage(rc, single, `${registry.host}/test/busybox:one`);
      await pushImage(rc, multi, `${registry.host}/test/layers:three`);
      await pushImage(rc, platforms, `${registry.host}/test/multi:latest`);
    } finally {
      rc.close();
    }
    daemon = await startDaemon();
    client = daemon.client('default');
  }, 120_000);

  afterAll(async () => {
    client?.close();
    await cleanup(daemon);
    await proxy?.stop();
    await registry?.stop();
    for (const b of built) b.remove();
  });

  const contentLabels = async (digest: string) => (await client.unary('content', 'Info', { digest })).info.labels as Record<string, string>;

  test('pull stores content with ctr\'s labels, records the image and unpacks by chain ID', async () => {
    const ref = `${registry.host}/test/busybox:one`;
    const { stdout } = await berth('images', 'pull', '--plain-http', ref);
    const m = single.manifests[0]!;
    expect(stdout).toContain(`layer-${m.layers[0]!.digest}`);
    expect(stdout).toMatch(/downloading|done/);
    expect(stdout).toContain(`${ref}: done (${m.descriptor.digest})`);

    const ls = (await berth('images', 'ls')).stdout;
    expect(ls).toMatch(/^REF\s+TYPE\s+DIGEST\s+SIZE\s+PLATFORMS/);
    expect(ls).toContain(ref);
    expect(ls).toContain(formatPlatform(hostPlatform()));
    expect((await berth('images', 'ls', '-q')).stdout).toBe(`${ref}\n`);

    // The store as ctr left it.
    const source = { 'containerd.io/distribution.source.127.0.0.1': 'test/busybox' };
    expect(await contentLabels(m.descriptor.digest)).toEqual({
      ...source,
      'containerd.io/gc.ref.content.config': m.config.digest,
      'containerd.io/gc.ref.content.l.0': m.layers[0]!.digest,
    });
    const chains = chainIDs(m.diffIDs);
    expect(await contentLabels(m.config.digest)).toEqual({ ...source, 'containerd.io/gc.ref.snapshot.overlayfs': chains[chains.length - 1] });
    expect(await contentLabels(m.layers[0]!.digest)).toEqual({ ...source, 'containerd.io/uncompressed': m.diffIDs[0] });
    const snap = await client.unary('snapshots', 'Stat', { snapshotter: 'overlayfs', key: chains[0] });
    expect(snap.info.kind).toBe('COMMITTED');
    // The lease is gone; nothing else is left behind.
    expect((await client.unary('leases', 'List', {})).leases ?? []).toEqual([]);
    expect((await client.unary('content', 'ListStatuses', {})).statuses ?? []).toEqual([]);

    const check = (await berth('images', 'check')).stdout;
    expect(check).toMatch(new RegExp(`${ref.replace(/[.]/g, '\\.')}\\s+\\S+\\s+sha256:\\S+\\s+complete \\(2/2\\)\\s+.*true`));

    if (haveCtr) {
      expect(await ctr('images', 'ls', '-q')).toContain(ref);
      const ctrCheck = await ctr('images', 'check');
      expect(ctrCheck).toMatch(new RegExp(`${ref.replace(/[.]/g, '\\.')}.*complete \\(2/2\\).*true`));
      const snaps = await ctr('snapshots', 'ls');
      expect(snaps).toContain(chains[0]);
    }
  });

  test('pulling again downloads nothing and updates the image', async () => {
    const ref = `${registry.host}/test/busybox:one`;
    proxy.clear();
    const { stdout } = await berth('images', 'pull', '--plain-http', ref.replace(registry.host, proxy.host));
    // Through the proxy only the resolve and the manifest may be asked for: no blob GETs.
    expect(proxy.log.filter((e) => e.method === 'GET' && /\/blobs\//.test(e.url))).toEqual([]);
    expect(stdout).toMatch(/exists/);
    expect(stdout).not.toMatch(/downloading/);
    // Same registry name: the re-pull of the original ref replaces the record (no duplicate).
    const again = await berth('images', 'pull', '--plain-http', ref);
    expect(again.stdout).not.toMatch(/downloading/);
    expect((await berth('images', 'ls', '-q')).stdout.split('\n').filter((l) => l === ref)).toHaveLength(1);
    await berth('images', 'rm', ref.replace(registry.host, proxy.host));
  });

  test('a multi-layer image unpacks onto a chain of snapshots', async () => {
    const ref = `${registry.host}/test/layers:three`;
    await berth('images', 'pull', '--plain-http', ref);
    const m = multi.manifests[0]!;
    const chains = chainIDs(m.diffIDs);
    expect(chains).toHaveLength(3);
    let parent = '';
    for (const [i, chain] of chains.entries()) {
      const { info } = await client.unary('snapshots', 'Stat', { snapshotter: 'overlayfs', key: chain });
      expect(info.parent).toBe(parent);
      expect(await contentLabels(m.layers[i]!.digest)).toMatchObject({ 'containerd.io/uncompressed': m.diffIDs[i] });
      parent = chain;
    }
    // The busybox layer is shared with the first image: same chain ID, already there.
    expect(chains[0]).toBe(chainIDs(single.manifests[0]!.diffIDs)[0]);
    const inspect = JSON.parse((await berth('images', 'inspect', ref)).stdout);
    expect(inspect.image.name).toBe(ref);
    expect(inspect.manifest.layers).toHaveLength(3);
    expect(inspect.config.rootfs.diff_ids).toEqual(m.diffIDs);
    if (haveCtr) expect(await ctr('images', 'check')).toMatch(/layers:three.*complete \(4\/4\).*true/);
  });

  test('an index: one platform by default, all with --all-platforms', async () => {
    const ref = `${registry.host}/test/multi:latest`;
    await berth('images', 'pull', '--plain-http', ref);
    const [host, other] = platforms.manifests;
    expect(await contentLabels(platforms.root.digest)).toMatchObject({
      'containerd.io/gc.ref.content.m.0': host!.descriptor.digest,
      'containerd.io/gc.ref.content.m.1': other!.descriptor.digest,
    });
    await expect(client.unary('content', 'Info', { digest: other!.descriptor.digest })).rejects.toMatchObject({ code: 5 });
    await berth('images', 'pull', '--plain-http', '--all-platforms', ref);
    expect(await contentLabels(other!.config.digest)).toMatchObject({ 'containerd.io/distribution.source.127.0.0.1': 'test/multi' });
    const ls = (await berth('images', 'ls')).stdout;
    expect(ls).toContain(formatPlatform(other!.platform));
    await berth('images', 'rm', '--sync', ref);
  });

  test('a corrupted layer fails the pull and records no image', async () => {
    const img = await buildImage({ tag: 'bad', layers: 2 });
    built.push(img);
    const rc = new RegistryClient({ plainHttp: true });
    await pushImage(rc, img, `${registry.host}/test/bad:latest`).finally(() => rc.close());
    const layer = img.manifests[0]!.layers[1]!;
    proxy.clear();
    proxy.add({ kind: 'corrupt', method: 'GET', path: new RegExp(`/blobs/${layer.digest}$`) });
    const before = (await berth('images', 'ls', '-q')).stdout;
    const ref = `${proxy.host}/test/bad:latest`;
    const err = await berth('images', 'pull', '--plain-http', ref).then(
      () => undefined,
      (e) => e as { code: number; stderr: string },
    );
    proxy.clear();
    expect(err).toBeDefined();
    expect(err!.code).toBe(1);
    expect(err!.stderr).toMatch(/^berth: .*(digest|size).*\(failed precondition\)\n$/s);
    expect((await berth('images', 'ls', '-q')).stdout).toBe(before);
    expect((await client.unary('images', 'List', {})).images.map((i: any) => i.name)).not.toContain(ref);
    // No partial ingest is kept for corrupt data.
    expect((await client.unary('content', 'ListStatuses', {})).statuses ?? []).toEqual([]);
  });

  test('an interrupted pull is resumed by the next one from the bytes already stored', async () => {
    const img = await buildImage({ tag: 'resume', layers: 3, bigLayerBytes: 2 << 20 });
    built.push(img);
    const rc = new RegistryClient({ plainHttp: true });
    await pushImage(rc, img, `${registry.host}/test/resume:latest`).finally(() => rc.close());
    const big = img.manifests[0]!.layers[2]!;
    const ref = `${proxy.host}/test/resume:latest`;
    proxy.clear();
    // Every attempt is cut after 256 KiB, more times than the client resumes by itself.
    proxy.add({ kind: 'drop', method: 'GET', path: new RegExp(`/blobs/${big.digest}$`), afterBytes: 256 << 10, times: 20 });
    const err = await berth('images', 'pull', '--plain-http', ref).then(() => undefined, (e) => e as { stderr: string });
    expect(err?.stderr).toMatch(/\(unavailable\)/);
    const statuses = (await client.unary('content', 'ListStatuses', {})).statuses as any[];
    const partial = statuses.find((st) => st.ref === `layer-${big.digest}`);
    expect(partial.offset).toBeGreaterThan(0);
    expect(partial.offset).toBeLessThan(big.size);
    expect((await client.unary('images', 'List', {})).images.map((i: any) => i.name)).not.toContain(ref);

    proxy.clear();
    await berth('images', 'pull', '--plain-http', ref);
    const gets = proxy.log.filter((e) => e.method === 'GET' && e.url.endsWith(`/blobs/${big.digest}`));
    expect(gets.length).toBeGreaterThan(0);
    expect(gets[0]!.range).toBe(`bytes=${partial.offset}-`);
    expect((await client.unary('content', 'Info', { digest: big.digest })).info.size).toBe(big.size);
    expect((await client.unary('content', 'ListStatuses', {})).statuses ?? []).toEqual([]);
    await berth('images', 'rm', '--sync', ref);
  }, 120_000);

  test('tag, rm --sync releases content and snapshots', async () => {
    const ref = `${registry.host}/test/layers:three`;
    const copy = 'berth.test/copy:1';
    expect((await berth('images', 'tag', ref, copy)).stdout).toBe(`${copy}\n`);
    expect((await berth('images', 'ls', '-q')).stdout).toContain(copy);
    await berth('images', 'rm', '--sync', ref);
    const big = multi.manifests[0]!.layers[2]!.digest;
    // Still referenced by the tag.
    expect((await client.unary('content', 'Info', { digest: big })).info.digest).toBe(big);
    await berth('images', 'rm', '--sync', copy);
    await expect(client.unary('content', 'Info', { digest: big })).rejects.toMatchObject({ code: 5 });
    const top = chainIDs(multi.manifests[0]!.diffIDs)[2];
    await expect(client.unary('snapshots', 'Stat', { snapshotter: 'overlayfs', key: top })).rejects.toMatchObject({ code: 5 });
    // The first image still holds the shared busybox layer and its snapshot.
    const base = chainIDs(single.manifests[0]!.diffIDs)[0];
    expect((await client.unary('snapshots', 'Stat', { snapshotter: 'overlayfs', key: base })).info.name).toBe(base);

    const missing = await berth('images', 'rm', 'berth.test/none:1').then(() => undefined, (e) => e as { code: number; stderr: string });
    expect(missing?.stderr).toContain('image "berth.test/none:1" not found');
  });

  test('the daemon\'s config_path (hosts.toml) maps a registry name to the local registry over plain HTTP', async () => {
    const hostsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-hosts-'));
    fs.mkdirSync(path.join(hostsDir, 'registry.berth.test'));
    // A name that resolves nowhere: only hosts.toml can send the pull to our registry.
    fs.writeFileSync(path.join(hostsDir, 'registry.berth.test', 'hosts.toml'), `server = "http://${registry.host}"\n`);
    const config = path.join(hostsDir, 'config.toml');
    fs.writeFileSync(config, `version = 2\n[plugins."io.containerd.grpc.v1.transfer"]\n  config_path = "${hostsDir}"\n`);
    const other = await startDaemon({ args: ['--config', config] });
    try {
      const ref = 'registry.berth.test/test/busybox:one';
      const { stdout } = await run(process.execPath, [BERTH, '--address', other.address, 'images', 'pull', ref], { timeout: 60_000 });
      expect(stdout).toContain(`${ref}: done (${single.manifests[0]!.descriptor.digest})`);
      const { stdout: ls } = await run(process.execPath, [BERTH, '--address', other.address, 'images', 'ls', '-q'], { timeout: 30_000 });
      expect(ls.trim()).toBe(ref);
    } finally {
      await cleanup(other);
      fs.rmSync(hostsDir, { recursive: true, force: true });
    }
  });
});
