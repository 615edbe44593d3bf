// berth images export / import (berth.services.transfer.v1.Transfer Export, Import) on a real
// daemon: a round trip into another namespace, archives made by skopeo (docker-archive) and by
// tar (OCI layout), hostile archives refused with nothing recorded, and an imported image pushed
// to a real registry.
import { execFile } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import * as zlib from 'node:zlib';
import type { Client } from '../../cli/client';
import { BERTH, cleanup, startDaemon, tempDir, type TestDaemon } from '../helpers/daemon';
import { buildImage, otherPlatform, pushImage, skopeoInspectRaw, type TestImage } from '../helpers/images';
import { startRegistry, type TestRegistry } from '../helpers/registry';
import { RegistryClient, hostPlatform } from '../../services/remotes';
import { TAR_END, padding, tarHeader } from '../../services/transfer/archive';

const run = promisify(execFile);
const CTR = process.env.CTR ?? '/usr/bin/ctr';
const haveCtr = fs.existsSync(CTR);

function tarOf(entries: Array<{ name: string; data: Buffer }>): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) parts.push(tarHeader(e.name, e.data.length), e.data, Buffer.alloc(padding(e.data.length)));
  parts.push(TAR_END);
  return Buffer.concat(parts);
}

describe('images export / import (daemon-side)', () => {
  let registry: TestRegistry;
  let daemon: TestDaemon;
  let client: Client;
  let dir: string;
  const built: TestImage[] = [];
  let multi: TestImage;
  let platforms: TestImage;

  const berthNs = (ns: string, ...args: string[]) =>
    run(process.execPath, [BERTH, '--address', daemon.address, '-n', ns, ...args], { timeout: 60_000, maxBuffer: 64 << 20 });
  const berth = (...args: string[]) => berthNs('default', ...args);
  const fails = (p: Promise<unknown>) => p.then(() => undefined, (e) => e as { code: number; stderr: string });
  const check = async (ns: string) => JSON.parse((await berthNs(ns, '--json', 'images', 'check')).stdout) as any[];
  const names = async (ns: string) => (await berthNs(ns, 'images', 'ls', '-q')).stdout.split('\n').filter(Boolean);

  beforeAll(async () => {
    dir = tempDir('berth-archives-');
    registry = await startRegistry();
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
    await berth('images', 'pull', '--plain-http', `${registry.host}/test/layers:three`);
    await berth('images', 'pull', '--plain-http', `${registry.host}/test/multi:latest`);
  }, 120_000);

  afterAll(async () => {
    client?.close();
    await cleanup(daemon);
    await registry?.stop();
    for (const b of built) b.remove();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  test('export writes an OCI layout with docker\'s manifest.json; import into another namespace gives the same images, unpacked', async () => {
    const a = `${registry.host}/test/layers:three`;
    const b = `${registry.host}/test/multi:latest`;
    const file = path.join(dir, 'out.tar');
    await berth('images', 'export', file, a, b);
    const listing = (await run('tar', ['-tf', file])).stdout.split('\n');
    expect(listing).toEqual(expect.arrayContaining(['oci-layout', 'index.json', 'manifest.json', `blobs/sha256/${multi.manifests[0]!.layers[2]!.digest.slice(7)}`]));
    const index = JSON.parse((await run('tar', ['-xOf', file, 'index.json'])).stdout);
    expect(index.manifests.map((m: any) => [m.digest, m.annotations['io.containerd.image.name'], m.annotations['org.opencontainers.image.ref.name']])).toEqual([
      [multi.root.digest, a, 'three'],
      [platforms.root.digest, b, 'latest'],
    ]);
    const docker = JSON.parse((await run('tar', ['-xOf', file, 'manifest.json'])).stdout);
    expect(docker[0]).toEqual({
      Config: `blobs/sha256/${multi.manifests[0]!.config.digest.slice(7)}`,
      RepoTags: [`${registry.host}/test/layers:three`],
      Layers: multi.manifests[0]!.layers.map((l) => `blobs/sha256/${l.digest.slice(7)}`),
    });
    // Other tools read it: skopeo as an OCI archive and as a docker archive.
    const raw = (await run('skopeo', ['inspect', '--raw', `oci-archive:${file}:three`])).stdout;
    expect(Buffer.from(raw)).toEqual(multi.manifests[0]!.bytes);
    const inspected = JSON.parse((await run('skopeo', ['inspect', `docker-archive:${file}:${a}`])).stdout);
    expect(inspected.Layers).toHaveLength(3);

    // Streaming through stdout / stdin works too.
    const viaStdout = (await run('sh', ['-c', `node ${BERTH} --address ${daemon.address} images export - ${a} ${b} | cmp - ${file} && echo same`])).stdout;
    expect(viaStdout).toBe('same\n');

    const { stdout } = await run('sh', ['-c', `node ${BERTH} --address ${daemon.address} -n roundtrip images import - < ${file}`], { timeout: 60_000 });
    expect(stdout).toContain(`${a}: imported (${multi.root.digest})`);
    expect(stdout).toContain(`${b}: imported (${platforms.root.digest})`);
    const rt = daemon.client('roundtrip');
    try {
      const imgs = (await rt.unary('images', 'List', {})).images as any[];
      expect(imgs.map((i) => [i.name, i.target.digest]).sort()).toEqual([[a, multi.root.digest], [b, platforms.root.digest]].sort());
      // GC labels as a pull leaves them; the lease is gone; no ingest left.
      const info = (await rt.unary('content', 'Info', { digest: multi.root.digest })).info;
      expect(info.labels['containerd.io/gc.ref.content.config']).toBe(multi.manifests[0]!.config.digest);
      expect((await rt.unary('leases', 'List', {})).leases ?? []).toEqual([]);
      expect((await rt.unary('content', 'ListStatuses', {})).statuses ?? []).toEqual([]);
    } finally {
      rt.close();
    }
    expect(await check('roundtrip')).toEqual(
      expect.arrayContaining([expect.objectContaining({ name: a, complete: true, unpacked: true }), expect.objectContaining({ name: b, unpacked: true })]),
    );
    if (haveCtr) {
      const out = (await run(CTR, ['--address', daemon.address, '-n', 'roundtrip', 'images', 'check'])).stdout;
      expect(out).toMatch(/layers:three.*complete \(4\/4\).*true/);
    }
  }, 120_000);

  test('a docker save archive made by skopeo (docker-archive, uncompressed layers) imports and unpacks', async () => {
    const file = path.join(dir, 'docker.tar');
    await run('skopeo', ['--insecure-policy', 'copy', '--quiet', `oci:${multi.dir}:${multi.tag}`, `docker-archive:${file}:example.com/app/three:v1`], { timeout: 60_000 });
    const { stdout } = await berthNs('dockerarch', 'images', 'import', file);
    const name = 'example.com/app/three:v1';
    expect(stdout).toContain(`${name}: imported (sha256:`);
    const dc = daemon.client('dockerarch');
    try {
      const { image } = await dc.unary('images', 'Get', { name });
      expect(image.target.media_type).toBe('application/vnd.docker.distribution.manifest.v2+json');
      const chunks: Buffer[] = [];
      for await (const m of dc.stream('content', 'Read', { digest: image.target.digest })) chunks.push(Buffer.from(m.data ?? []));
      const manifest = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      expect(manifest.layers).toHaveLength(3);
      // Layers were decompressed by skopeo: uncompressed media type, digest = diff ID.
      for (const [i, l] of manifest.layers.entries()) {
        expect(l.mediaType).toBe('application/vnd.docker.image.rootfs.diff.tar');
        expect(l.digest).toBe(multi.manifests[0]!.diffIDs[i]);
      }
    } finally {
      dc.close();
    }
    expect(await check('dockerarch')).toEqual([expect.objectContaining({ name, complete: true, unpacked: true })]);
  }, 120_000);

  test('an OCI layout tarred with tar -C imports under --base-name', async () => {
    const file = path.join(dir, 'layout.tar');
    await run('tar', ['-C', multi.dir, '-cf', file, '.']);
    const { stdout } = await berthNs('ocitar', 'images', 'import', '--base-name', 'example.org/layout', file);
    expect(stdout).toContain(`example.org/layout:three: imported (${multi.root.digest})`);
    expect(await check('ocitar')).toEqual([expect.objectContaining({ name: 'example.org/layout:three', complete: true, unpacked: true })]);
  }, 60_000);

  test('hostile archives are refused with a clear error and record nothing', async () => {
    const good = Buffer.from('{"imageLayoutVersion":"1.0.0"}');
    const fake = Buffer.from('not what the name says');
    const wrongName = `blobs/sha256/${crypto.createHash('sha256').update('something else').digest('hex')}`;
    const bad1 = path.join(dir, 'badblob.tar');
    fs.writeFileSync(bad1, tarOf([{ name: 'oci-layout', data: good }, { name: wrongName, data: fake }, { name: 'index.json', data: Buffer.from('{"schemaVersion":2,"manifests":[]}') }]));
    const e1 = await fails(berthNs('hostile', 'images', 'import', bad1));
    expect(e1?.stderr).toMatch(/archive entry blobs\/sha256\/[0-9a-f]{64}: content hashes to sha256:[0-9a-f]{64}, not sha256:[0-9a-f]{64}.*\(failed precondition\)/s);

    const bad2 = path.join(dir, 'dotdot.tar');
    fs.writeFileSync(bad2, tarOf([{ name: 'oci-layout', data: good }, { name: '../../etc/evil', data: fake }]));
    const e2 = await fails(berthNs('hostile', 'images', 'import', bad2));
    expect(e2?.stderr).toMatch(/archive entry "..\/..\/etc\/evil": ".." is not allowed in names.*\(invalid argument\)/s);

    const bad3 = path.join(dir, 'absolute.tar');
    fs.writeFileSync(bad3, tarOf([{ name: '/etc/evil', data: fake }]));
    expect((await fails(berthNs('hostile', 'images', 'import', bad3)))?.stderr).toMatch(/absolute names are not allowed/);

    // A layout whose layer was swapped for other bytes under the right name's neighbour: the
    // manifest names a blob that the archive does not hold.
    const m = multi.manifests[0]!;
    const entries = [...multi.blobs.entries()].filter(([d]) => d !== m.layers[1]!.digest).map(([d, data]) => ({ name: `blobs/sha256/${d.slice(7)}`, data }));
    const bad4 = path.join(dir, 'missing.tar');
    fs.writeFileSync(bad4, tarOf([...entries, { name: 'index.json', data: fs.readFileSync(path.join(multi.dir, 'index.json')) }]));
    expect((await fails(berthNs('hostile', 'images', 'import', bad4)))?.stderr).toMatch(new RegExp(`blob ${m.layers[1]!.digest} .*is not in the archive`));

    const garbage = path.join(dir, 'garbage.tar');
    fs.writeFileSync(garbage, zlib.gzipSync(crypto.randomBytes(4096)));
    expect((await fails(berthNs('hostile', 'images', 'import', garbage)))?.stderr).toMatch(/not a tar archive \(gzip/);
    fs.writeFileSync(garbage, Buffer.alloc(4096, 7));
    expect((await fails(berthNs('hostile', 'images', 'import', garbage)))?.stderr).toMatch(/not a tar archive \((header checksum|bad numeric)/);

    expect(await names('hostile')).toEqual([]);
    const hc = daemon.client('hostile');
    try {
      expect((await hc.unary('content', 'ListStatuses', {})).statuses ?? []).toEqual([]);
      expect((await hc.unary('leases', 'List', {})).leases ?? []).toEqual([]);
      // What was stored under the import's lease goes with the next collection.
      await hc.unary('images', 'Delete', { name: 'nothing', sync: true }).catch(() => undefined);
      const left: string[] = [];
      for await (const msg of hc.stream('content', 'List', {})) for (const i of msg.info ?? []) left.push(i.digest);
      expect(left).toEqual([]);
    } finally {
      hc.close();
    }
  }, 60_000);

  test('an imported image (no registry source labels) pushes to a real registry by upload', async () => {
    const file = path.join(dir, 'out.tar');
    const name = `${registry.host}/test/layers:three`;
    const dest = `${registry.host}/imported/again:v2`;
    const { stdout } = await berthNs('roundtrip', 'images', 'push', '--plain-http', dest, name);
    expect(stdout).toContain(`${dest}: pushed (${multi.root.digest})`);
    expect(await skopeoInspectRaw(dest)).toEqual(multi.manifests[0]!.bytes);
    expect(fs.existsSync(file)).toBe(true);
  }, 60_000);
});
