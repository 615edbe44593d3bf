// Pushes done by berthd (berth.services.transfer.v1.Transfer/Push) to a real docker-registry:
// an image pulled into the daemon, pushed under another repository name (and a platform of an
// index), checked with skopeo and by pulling it back into a fresh namespace.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { Client } from '../../cli/client';
import { BERTH, cleanup, startDaemon, type TestDaemon } from '../helpers/daemon';
import { buildImage, otherPlatform, pushImage, skopeoInspectRaw, type TestImage } from '../helpers/images';
import { startFaultProxy, startRegistry, type FaultProxy, type TestRegistry } from '../helpers/registry';
import { RegistryClient, hostPlatform } from '../../services/remotes';

const run = promisify(execFile);

describe('images push (daemon-side)', () => {
  let registry: TestRegistry;
  let proxy: FaultProxy;
  let daemon: TestDaemon;
  let client: Client;
  const built: TestImage[] = [];
  let multi: TestImage;
  let platforms: TestImage;

  const berth = (...args: string[]) => run(process.execPath, [BERTH, '--address', daemon.address, ...args], { timeout: 60_000 });

  beforeAll(async () => {
    registry = await startRegistry();
    proxy = await startFaultProxy(registry.port);
    const rc = new RegistryClient({ plainHttp: true });
    try {
      multi = await buildImage({ tag: 'three', layers: 3, bigLayerBytes: 1 << 20 });
      platforms = await buildImage({ tag: 'multi', platforms: [hostPlatform(), otherPlatform()] });
      built.push(multi, platforms);
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

  test('push a pulled image under another name; skopeo sees the same manifest; it pulls back', async () => {
    const src = `${registry.host}/test/layers:three`;
    await berth('images', 'pull', '--plain-http', src);
    const dest = `${registry.host}/test/copy:pushed`;
    await berth('images', 'tag', src, dest);
    const m = multi.manifests[0]!;
    const { stdout } = await berth('images', 'push', '--plain-http', dest);
    expect(stdout).toContain(`${dest}: pushed (${m.descriptor.digest})`);
    expect(stdout).toContain(`layer-${m.layers[2]!.digest}`);
    // Same registry, blobs labelled with their source repository: mounted, not uploaded.
    expect(stdout).toMatch(/mounted|exists/);
    expect(await skopeoInspectRaw(dest)).toEqual(m.bytes);

    // Pull it back into a fresh namespace: same digest, unpacked.
    const { stdout: pulled } = await run(process.execPath, [BERTH, '--address', daemon.address, '-n', 'pushback', 'images', 'pull', '--plain-http', dest], { timeout: 60_000 });
    expect(pulled).toContain(`${dest}: done (${m.descriptor.digest})`);
    const check = (await run(process.execPath, [BERTH, '--address', daemon.address, '-n', 'pushback', '--json', 'images', 'check'])).stdout;
    expect(JSON.parse(check)).toEqual([expect.objectContaining({ name: dest, complete: true, unpacked: true })]);
  }, 120_000);

  test('push REF LOCAL sends missing blobs (through a proxy: HEAD, then mount or upload) and pushing again sends nothing', async () => {
    const local = `${registry.host}/test/layers:three`;
    const dest = `${proxy.host}/other/repo:v1`;
    proxy.clear();
    await berth('images', 'push', '--plain-http', dest, local);
    const m = multi.manifests[0]!;
    const puts = proxy.log.filter((e) => e.method === 'PUT');
    // Three layers and the config: the proxy has the registry's host name (127.0.0.1), so the
    // blobs' distribution.source label offers test/layers to mount from; each is mounted or uploaded.
    const mounts = proxy.log.filter((e) => e.method === 'POST' && /mount=/.test(e.url));
    const uploads = puts.filter((e) => /\/blobs\/uploads\//.test(e.url));
    expect(mounts.length).toBe(4);
    expect(uploads).toEqual([]);
    expect(proxy.log.filter((e) => e.method === 'HEAD' && /\/blobs\//.test(e.url))).toHaveLength(4);
    expect(puts.some((e) => e.url.endsWith('/other/repo/manifests/v1'))).toBe(true);
    expect(await skopeoInspectRaw(`${registry.host}/other/repo:v1`)).toEqual(m.bytes);

    proxy.clear();
    const again = (await berth('images', 'push', '--plain-http', dest, local)).stdout;
    expect(again).not.toMatch(/uploading\s/);
    expect(again).toMatch(/exists/);
    expect(proxy.log.filter((e) => e.method === 'PUT' && /\/blobs\//.test(e.url))).toEqual([]);
  }, 120_000);

  test('an index with a missing platform is refused unless one platform is pushed', async () => {
    const src = `${registry.host}/test/multi:latest`;
    await berth('images', 'pull', '--plain-http', src);
    const dest = `${registry.host}/test/multicopy:latest`;
    const err = await berth('images', 'push', '--plain-http', dest, src).then(() => undefined, (e) => e as { stderr: string });
    expect(err?.stderr).toMatch(/manifests are not in the store.*\(failed precondition\)/s);
    await berth('images', 'push', '--plain-http', '--platform', 'linux/' + hostPlatform().architecture, dest, src);
    expect(await skopeoInspectRaw(dest)).toEqual(platforms.manifests[0]!.bytes);

    // With every platform fetched, the whole index goes.
    await berth('images', 'pull', '--plain-http', '--all-platforms', src);
    const whole = `${registry.host}/test/multiall:latest`;
    const { stdout } = await berth('images', 'push', '--plain-http', whole, src);
    expect(stdout).toContain(`pushed (${platforms.root.digest})`);
    expect(await skopeoInspectRaw(whole)).toEqual(platforms.rootBytes);
  }, 120_000);

  test('pushing an unknown image fails with not found', async () => {
    const err = await berth('images', 'push', '--plain-http', `${registry.host}/test/none:1`).then(() => undefined, (e) => e as { stderr: string });
    expect(err?.stderr).toMatch(/not found/);
  });
});
