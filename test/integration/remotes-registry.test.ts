// The registry client against a real Docker Distribution registry on 127.0.0.1, holding images
// this suite builds from busybox-static and pushes with skopeo (OCI, Docker schema 2, a
// multi-platform index) and with the client itself.
import { Digester, digestOf } from '../../content-store/digest';
import { BerthError } from '../../services/errdefs';
import {
  MediaType,
  RegistryClient,
  allPlatforms,
  children,
  configPlatform,
  formatPlatform,
  gcLabels,
  hostPlatform,
  mapLimit,
  normalizePlatform,
  parseImageConfig,
  parseIndex,
  parseManifest,
  platformMatcher,
  selectManifest,
  selectManifests,
  type Descriptor,
  type FetchStream,
} from '../../services/remotes';
import { buildImage, otherPlatform, pushImage, skopeoCopy, skopeoInspectRaw, type TestImage } from '../helpers/images';
import { startRegistry, type TestRegistry } from '../helpers/registry';
import { berthFailure as failure, readAll } from '../helpers/calls';


describe('registry client against docker-registry', () => {
  let reg: TestRegistry | undefined;
  let client: RegistryClient;
  const images: TestImage[] = [];
  let single: TestImage; // 2 layers, OCI
  let big: TestImage; // 3 layers incl. 3 MiB random
  let multi: TestImage; // index: host + fake platform
  let host: string;

  beforeAll(async () => {
    reg = await startRegistry();
    host = reg.host;
    single = await buildImage({ layers: 2, tag: 'v1' });
    big = await buildImage({ layers: 3, tag: 'v1' });
    multi = await buildImage({ tag: 'v1', platforms: [hostPlatform(), otherPlatform()] });
    images.push(single, big, multi);
    await skopeoCopy(single, `${host}/test/single:v1`);
    await skopeoCopy(big, `${host}/test/big:v1`);
    await skopeoCopy(multi, `${host}/test/multi:v1`);
    await skopeoCopy(single, `${host}/test/docker:v1`, { format: 'v2s2' });
    client = new RegistryClient({ plainHttp: true, retry: { baseDelayMs: 20, maxDelayMs: 100 } });
  });

  afterAll(async () => {
    client?.close();
    for (const i of images) i.remove();
    await reg?.stop();
  });

  test('resolve a tag: HEAD gives the manifest descriptor', async () => {
    const r = await client.resolve(`${host}/test/single:v1`);
    expect(r.name).toBe(`${host}/test/single:v1`);
    expect(r.ref).toEqual({ domain: host, path: 'test/single', tag: 'v1' });
    expect(r.descriptor).toEqual(single.root);
  });

  test('resolve by digest, and by tag@digest', async () => {
    const d = single.root.digest;
    expect((await client.resolve(`${host}/test/single@${d}`)).descriptor).toEqual(single.root);
    const both = await client.resolve(`${host}/test/single:v1@${d}`);
    expect(both.descriptor).toEqual(single.root);
    expect(both.name).toBe(`${host}/test/single:v1@${d}`);
  });

  test('missing tag, digest and repository are NotFound', async () => {
    const e1 = await failure(client.resolve(`${host}/test/single:nope`));
    expect(e1.kind).toBe('NotFound');
    expect(e1.message).toBe(`${host}/test/single:nope: not found`);
    expect((await failure(client.resolve(`${host}/test/single@sha256:${'0'.repeat(64)}`))).kind).toBe('NotFound');
    expect((await failure(client.resolve(`${host}/no/such:v1`))).kind).toBe('NotFound');
    const blob: Descriptor = { mediaType: MediaType.OciLayerGzip, digest: `sha256:${'1'.repeat(64)}`, size: 10 };
    const e2 = await failure(client.fetch(`${host}/test/single:v1`, blob));
    expect(e2.kind).toBe('NotFound');
    expect(e2.message).toContain(blob.digest);
    expect(await client.exists(`${host}/test/single:v1`, blob)).toBe(false);
    expect(await client.exists(`${host}/test/single:v1`, single.manifests[0]!.layers[0]!)).toBe(true);
  });

  test('fetch manifest, config and layers, each verified against its digest', async () => {
    const { ref, descriptor } = await client.resolve(`${host}/test/single:v1`);
    const manifestBytes = await client.fetchBytes(ref, descriptor);
    expect(digestOf(manifestBytes)).toBe(descriptor.digest);
    const kids = children(descriptor, manifestBytes);
    expect(kids.map((k) => k.mediaType)).toEqual([MediaType.OciConfig, MediaType.OciLayerGzip, MediaType.OciLayerGzip]);
    expect(gcLabels(descriptor, manifestBytes)).toEqual({
      'containerd.io/gc.ref.content.config': kids[0]!.digest,
      'containerd.io/gc.ref.content.l.0': kids[1]!.digest,
      'containerd.io/gc.ref.content.l.1': kids[2]!.digest,
    });
    const config = parseImageConfig(await client.fetchBytes(ref, kids[0]!));
    expect(config.rootfs.diff_ids).toEqual(single.manifests[0]!.diffIDs);
    expect(configPlatform(config)).toEqual(normalizePlatform(hostPlatform()));
    for (const layer of kids.slice(1)) {
      const stream = await client.fetch(ref, layer);
      expect(stream.verifiesDigest).toBe(true);
      const bytes = await readAll(stream);
      expect(bytes.length).toBe(layer.size);
      expect(bytes.equals(single.blobs.get(layer.digest)!)).toBe(true);
      expect(stream.position).toBe(layer.size);
    }
  });

  test('a multi-platform index: platform selection and the fake platform', async () => {
    const { ref, descriptor } = await client.resolve(`${host}/test/multi:v1`);
    expect(descriptor.mediaType).toBe(MediaType.OciIndex);
    expect(descriptor.digest).toBe(multi.root.digest);
    const bytes = await client.fetchBytes(ref, descriptor);
    const index = parseIndex(bytes, descriptor.mediaType);
    expect(gcLabels(descriptor, bytes)).toEqual({
      'containerd.io/gc.ref.content.m.0': multi.manifests[0]!.descriptor.digest,
      'containerd.io/gc.ref.content.m.1': multi.manifests[1]!.descriptor.digest,
    });
    expect(selectManifest(index).digest).toBe(multi.manifests[0]!.descriptor.digest);
    const fake = selectManifest(index, platformMatcher(formatPlatform(otherPlatform())));
    expect(fake.digest).toBe(multi.manifests[1]!.descriptor.digest);
    expect(selectManifests(index, allPlatforms)).toHaveLength(2);
    expect(() => selectManifest(index, platformMatcher('linux/s390x'))).toThrow(/no match for platform/);

    const fm = parseManifest(await client.fetchBytes(ref, fake), fake.mediaType);
    const fc = parseImageConfig(await client.fetchBytes(ref, fm.config));
    expect(configPlatform(fc)).toEqual(normalizePlatform(otherPlatform()));
    expect(fc.architecture).toBe(otherPlatform().architecture);
    const layer = await readAll(await client.fetch(ref, fm.layers[0]!));
    expect(digestOf(layer)).toBe(fm.layers[0]!.digest);
  });

  test('Docker schema 2 media types (skopeo --format v2s2)', async () => {
    const { ref, descriptor } = await client.resolve(`${host}/test/docker:v1`);
    expect(descriptor.mediaType).toBe(MediaType.DockerManifest);
    const bytes = await client.fetchBytes(ref, descriptor);
    const kids = children(descriptor, bytes);
    expect(kids[0]!.mediaType).toBe(MediaType.DockerConfig);
    expect(kids.slice(1).map((k) => k.mediaType)).toEqual([MediaType.DockerLayerGzip, MediaType.DockerLayerGzip]);
    const config = parseImageConfig(await client.fetchBytes(ref, kids[0]!));
    expect(config.rootfs.diff_ids).toEqual(single.manifests[0]!.diffIDs);
    for (const layer of kids.slice(1)) expect(digestOf(await readAll(await client.fetch(ref, layer)))).toBe(layer.digest);
  });

  test('layers fetched concurrently within the limit', async () => {
    const { ref, descriptor } = await client.resolve(`${host}/test/big:v1`);
    const layers = parseManifest(await client.fetchBytes(ref, descriptor)).layers;
    const limited = new RegistryClient({ plainHttp: true, concurrency: 2 });
    try {
      let active = 0;
      let peak = 0;
      const sizes = await Promise.all(
        layers.map((l) =>
          limited.limiter.run(async () => {
            active++;
            peak = Math.max(peak, active);
            const b = await readAll(await limited.fetch(ref, l));
            active--;
            return b.length;
          }),
        ),
      );
      expect(sizes).toEqual(layers.map((l) => l.size));
      expect(peak).toBeLessThanOrEqual(2);
      expect(await mapLimit(layers, 3, async (l) => digestOf(await readAll(await client.fetch(ref, l))))).toEqual(layers.map((l) => l.digest));
    } finally {
      limited.close();
    }
  });

  test('ranged resume: offset with the hash state verifies the whole digest', async () => {
    const ref = `${host}/test/big:v1`;
    const layer = big.manifests[0]!.layers[2]!; // the 3 MiB random layer
    const all = big.blobs.get(layer.digest)!;
    const offset = 1_234_567;
    const digester = new Digester().update(all.subarray(0, offset));
    const stream = await client.fetch(ref, layer, { offset, digester });
    expect(stream.verifiesDigest).toBe(true);
    const rest = await readAll(stream);
    expect(rest.equals(all.subarray(offset))).toBe(true);
    expect(digester.digest()).toBe(layer.digest);

    // Without the hash state only the size is checked (the caller re-hashes).
    const unverified = await client.fetch(ref, layer, { offset });
    expect(unverified.verifiesDigest).toBe(false);
    expect((await readAll(unverified)).length).toBe(all.length - offset);

    // A wrong hash state is caught at the end.
    const wrong = new Digester().update(Buffer.alloc(offset));
    const bad = await client.fetch(ref, layer, { offset, digester: wrong });
    const err = await failure(readAll(bad));
    expect(err.kind).toBe('FailedPrecondition');
    expect(err.message).toMatch(/the data is invalid/);

    expect((await failure(client.fetch(ref, layer, { offset: 10, digester: new Digester() }))).kind).toBe('InvalidArgument');
    expect((await failure(client.fetch(ref, layer, { offset: layer.size + 1 }))).kind).toBe('OutOfRange');
    // Resuming at the very end fetches nothing and still checks the digest.
    const done = await client.fetch(ref, layer, { offset: layer.size, digester: new Digester().update(all) });
    expect((await readAll(done)).length).toBe(0);
  });

  test('a descriptor with the wrong size is refused', async () => {
    const layer = single.manifests[0]!.layers[0]!;
    const err = await failure(client.fetch(`${host}/test/single:v1`, { ...layer, size: layer.size - 1 }));
    expect(err.kind).toBe('FailedPrecondition');
    expect(err.message).toContain(`sent ${layer.size} bytes, descriptor size is ${layer.size - 1}`);
  });

  test('push with our client (blobs, manifest, tag), fetch it back, skopeo reads it', async () => {
    const ref = `${host}/mine/single:v1`;
    await pushImage(client, single, ref);
    const r = await client.resolve(ref);
    expect(r.descriptor).toEqual(single.root);
    const bytes = await client.fetchBytes(r.ref, r.descriptor);
    expect(bytes.equals(single.rootBytes)).toBe(true);
    for (const l of single.manifests[0]!.layers) expect((await readAll(await client.fetch(ref, l))).equals(single.blobs.get(l.digest)!)).toBe(true);
    expect((await skopeoInspectRaw(ref)).equals(single.rootBytes)).toBe(true);

    // Pushing again sends nothing: everything exists.
    for (const d of [...single.manifests[0]!.layers, single.manifests[0]!.config, single.root]) {
      expect(await client.push(ref, d, () => single.blobs.get(d.digest)!)).toEqual({ digest: d.digest, status: 'exists' });
    }
  });

  test('cross-repository mount', async () => {
    const from = `${host}/mine/single:v1`;
    await pushImage(client, single, from);
    const to = `${host}/mine/mounted:v1`;
    const m = single.manifests[0]!;
    for (const d of [...m.layers, m.config]) {
      const res = await client.push(to, d, () => {
        throw new Error('must not read: the blob is mounted');
      }, { mountFrom: ['mine/single'] });
      expect(res.status).toBe('mounted');
    }
    await client.push(to, m.descriptor, () => m.bytes);
    await client.pushTag(to, m.descriptor, m.bytes);
    expect((await client.resolve(to)).descriptor).toEqual(m.descriptor);
    // Mounting from a repository that lacks the blob falls back to an upload.
    const other = await buildImage({ tag: 'x' });
    images.push(other);
    const l = other.manifests[0]!.layers[0]!;
    const res = await client.push(`${host}/mine/mount-fallback:x`, l, () => other.blobs.get(l.digest)!, { mountFrom: [`${host}/mine/empty`] });
    expect(res.status === 'uploaded' || res.status === 'exists').toBe(true);
  });

  test('push Docker schema 2 and a multi-platform index with our client', async () => {
    const docker = await buildImage({ tag: 'd1', mediaTypes: 'docker', platforms: [hostPlatform(), otherPlatform()] });
    images.push(docker);
    const ref = `${host}/mine/docker-multi:d1`;
    await pushImage(client, docker, ref);
    const r = await client.resolve(ref);
    expect(r.descriptor).toEqual(docker.root);
    expect(r.descriptor.mediaType).toBe(MediaType.DockerManifestList);
    const index = parseIndex(await client.fetchBytes(r.ref, r.descriptor), r.descriptor.mediaType);
    const chosen = selectManifest(index);
    expect(chosen.mediaType).toBe(MediaType.DockerManifest);
    const m = parseManifest(await client.fetchBytes(ref, chosen), chosen.mediaType);
    expect(m.config.mediaType).toBe(MediaType.DockerConfig);
  });

  test('pushTag without bytes re-tags a manifest already in the repository', async () => {
    const ref = `${host}/test/single:v1`;
    await client.pushTag(`${host}/test/single:retagged`, single.root);
    expect((await client.resolve(`${host}/test/single:retagged`)).descriptor).toEqual(single.root);
    expect((await failure(client.pushTag(`${host}/test/single@${single.root.digest}`, single.root))).kind).toBe('InvalidArgument');
    expect((await failure(client.pushTag(ref, single.manifests[0]!.config))).kind).toBe('InvalidArgument');
  });

  test('local content that does not match its descriptor is not pushed', async () => {
    const ref = `${host}/mine/bad:v1`;
    const layer = single.manifests[0]!.layers[1]!;
    const wrong = Buffer.from(single.blobs.get(layer.digest)!);
    wrong[wrong.length - 5] ^= 0xff;
    const e1 = await failure(client.push(ref, layer, () => wrong));
    expect(e1.kind).toBe('FailedPrecondition');
    expect(e1.message).toMatch(/local content .* has digest/);
    expect(await client.exists(ref, layer)).toBe(false);
    const e2 = await failure(client.push(ref, { ...layer, size: layer.size + 1 }, () => single.blobs.get(layer.digest)!));
    expect(e2.kind).toBe('FailedPrecondition');
    const m = single.manifests[0]!;
    const e3 = await failure(client.push(ref, m.descriptor, () => Buffer.concat([m.bytes, Buffer.from(' ')])));
    expect(e3.kind).toBe('FailedPrecondition');
    // A manifest whose blobs are missing is refused by the registry.
    const e4 = await failure(client.push(`${host}/mine/empty:v1`, m.descriptor, () => m.bytes));
    expect(e4.kind).toBe('FailedPrecondition');
    expect(e4.message).toMatch(/400 Bad Request.*MANIFEST_BLOB_UNKNOWN|blob unknown/);
  });

  test('a fetch stream destroyed early releases its connection', async () => {
    const layer = big.manifests[0]!.layers[2]!;
    const stream: FetchStream = await client.fetch(`${host}/test/big:v1`, layer);
    await new Promise<void>((resolve) => stream.once('data', () => resolve()));
    stream.destroy();
    await new Promise((r) => setTimeout(r, 50));
    // The client still works afterwards.
    expect((await client.resolve(`${host}/test/big:v1`)).descriptor).toEqual(big.root);
  });

  test('an aborted fetch is Canceled', async () => {
    const ac = new AbortController();
    const layer = big.manifests[0]!.layers[2]!;
    const stream = await client.fetch(`${host}/test/big:v1`, layer, { signal: ac.signal });
    ac.abort();
    const err = await readAll(stream).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeDefined();
    expect((await failure(client.resolve(`${host}/test/big:v1`, { signal: ac.signal }))).kind).toBe('Canceled');
  });
});
