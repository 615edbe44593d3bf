// Failures between the client and a real registry, injected by a proxy: 5xx and 429 (retried,
// then a clear Unavailable), connection resets and refusals, a connection dropped mid-layer
// (resumed with a Range request, or surfaced with the offset to resume from), a corrupted byte
// (digest mismatch), unknown and schema 1 media types, HEAD not supported, basic auth, mirrors.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Digester, digestOf } from '../../content-store/digest';
import { BerthError } from '../../services/errdefs';
import { MediaType, RegistryClient, TransferInterruptedError, type RegistryClientOptions } from '../../services/remotes';
import { buildImage, skopeoCopy, type TestImage } from '../helpers/images';
import { freePort, startFaultProxy, startRegistry, type FaultProxy, type TestRegistry } from '../helpers/registry';
import { berthFailure as failure, readAll } from '../helpers/calls';


describe('registry client under injected faults', () => {
  let reg: TestRegistry | undefined;
  let proxy: FaultProxy | undefined;
  let image: TestImage | undefined;
  let tmp: string;
  const clients: RegistryClient[] = [];
  const quick = { attempts: 4, baseDelayMs: 10, maxDelayMs: 50 };

  const newClient = (extra: RegistryClientOptions = {}) => {
    const c = new RegistryClient({ plainHttp: true, retry: quick, ...extra });
    clients.push(c);
    return c;
  };
  const ref = () => `${proxy!.host}/test/big:v1`;
  const bigLayer = () => image!.manifests[0]!.layers[2]!;
  const manifestPath = /\/v2\/test\/big\/manifests\//;

  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-faults-'));
    reg = await startRegistry();
    proxy = await startFaultProxy(reg.port);
    image = await buildImage({ layers: 3, tag: 'v1', bigLayerBytes: 4 * 1024 * 1024 });
    await skopeoCopy(image, `${reg.host}/test/big:v1`);
  });

  afterAll(async () => {
    for (const c of clients) c.close();
    await proxy?.stop();
    image?.remove();
    await reg?.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  beforeEach(() => proxy!.clear());

  test('500 twice, then success: retried', async () => {
    proxy!.add({ kind: 'status', status: 500, method: 'HEAD', path: manifestPath, times: 2 });
    const r = await newClient().resolve(ref());
    expect(r.descriptor).toEqual(image!.root);
    expect(proxy!.log.filter((e) => e.method === 'HEAD').map((e) => e.status)).toEqual([500, 500, 200]);
  });

  test('persistent 500: a clear Unavailable after the configured attempts', async () => {
    proxy!.add({ kind: 'status', status: 500 });
    const err = await failure(newClient().resolve(ref()));
    expect(err.kind).toBe('Unavailable');
    expect(err.message).toBe(
      `resolving ${proxy!.host}/test/big:v1: registry ${proxy!.host} answered 500 Internal Server Error (after 4 attempts): unavailable`,
    );
    expect(proxy!.log).toHaveLength(4);
    // A GET carries the registry's error text.
    const e2 = await failure(newClient({ retry: { attempts: 2 } }).fetchBytes(ref(), image!.root));
    expect(e2.message).toContain(`registry ${proxy!.host} answered 500 Internal Server Error: injected failure (UNKNOWN) (after 2 attempts)`);
  });

  test('429 with Retry-After and 503 on a blob are retried', async () => {
    proxy!.add({ kind: 'status', status: 429, headers: { 'retry-after': '0' }, times: 1 });
    proxy!.add({ kind: 'status', status: 503, method: 'GET', path: /\/blobs\//, times: 1 });
    const c = newClient();
    const r = await c.resolve(ref());
    const layer = image!.manifests[0]!.layers[0]!;
    expect(digestOf(await readAll(await c.fetch(r.ref, layer)))).toBe(layer.digest);
    expect(proxy!.log.map((e) => e.status)).toEqual([429, 200, 503, 200]);
  });

  test('a connection reset before the answer is retried', async () => {
    proxy!.add({ kind: 'reset', method: 'HEAD', times: 1 });
    expect((await newClient().resolve(ref())).descriptor).toEqual(image!.root);
    expect(proxy!.log).toHaveLength(2);
  });

  test('nothing listening: Unavailable naming the host', async () => {
    const port = await freePort();
    const err = await failure(newClient().resolve(`127.0.0.1:${port}/test/big:v1`));
    expect(err.kind).toBe('Unavailable');
    expect(err.message).toMatch(new RegExp(`HEAD http://127.0.0.1:${port}/v2/test/big/manifests/v1 failed after 4 attempts: .*ECONNREFUSED`));
  });

  test('an abort during the backoff is Canceled at once', async () => {
    proxy!.add({ kind: 'status', status: 503 });
    const c = newClient({ retry: { attempts: 10, baseDelayMs: 5000, maxDelayMs: 5000 } });
    const ac = new AbortController();
    const started = Date.now();
    setTimeout(() => ac.abort(), 100);
    const err = await failure(c.resolve(ref(), { signal: ac.signal }));
    expect(err.kind).toBe('Canceled');
    expect(Date.now() - started).toBeLessThan(3000);
  });

  test('a connection dropped mid-layer is resumed with Range and the digest still verified', async () => {
    const layer = bigLayer();
    proxy!.add({ kind: 'drop', method: 'GET', path: /\/blobs\//, times: 1, afterBytes: 1_000_000 });
    const stream = await newClient().fetch(ref(), layer);
    const bytes = await readAll(stream);
    expect(bytes.length).toBe(layer.size);
    expect(digestOf(bytes)).toBe(layer.digest);
    expect(stream.resumes).toBe(1);
    const gets = proxy!.log.filter((e) => e.method === 'GET');
    expect(gets).toHaveLength(2);
    expect(gets[0]!.fault).toBe('drop');
    expect(gets[1]!.range).toMatch(/^bytes=\d+-$/);
    expect(Number(gets[1]!.range!.slice(6, -1))).toBeGreaterThanOrEqual(1);
    expect(gets[1]!.status).toBe(206);
  });

  test('a connection that goes silent mid-layer times out and is resumed', async () => {
    const layer = bigLayer();
    proxy!.add({ kind: 'stall', method: 'GET', path: /\/blobs\//, times: 1, afterBytes: 500_000 });
    const stream = await newClient({ timeoutMs: 300 }).fetch(ref(), layer);
    const bytes = await readAll(stream);
    expect(digestOf(bytes)).toBe(layer.digest);
    expect(stream.resumes).toBe(1);
    expect(proxy!.log.filter((e) => e.method === 'GET')[1]!.range).toMatch(/^bytes=\d+-$/);
  });

  test('a blob redirected to another origin is followed without the credentials', async () => {
    const layer = image!.manifests[0]!.layers[0]!;
    const blobPath = `/v2/test/big/blobs/${layer.digest}`;
    const storage = await startFaultProxy(reg!.port); // "blob storage" on another origin
    try {
      proxy!.add({ kind: 'respond', status: 307, method: 'GET', path: /\/blobs\//, headers: { location: `http://${storage.host}${blobPath}` } });
      proxy!.requireBasic = { user: 'u', password: 'p' };
      const c = newClient({ credentials: { username: 'u', secret: 'p' } });
      expect(digestOf(await readAll(await c.fetch(ref(), layer)))).toBe(layer.digest);
      expect(proxy!.log.map((e) => `${e.method} ${e.status}`)).toEqual(['GET 401', 'GET 307']);
      expect(proxy!.log[1]!.authorization).toMatch(/^Basic /);
      expect(storage.log).toHaveLength(1);
      expect(storage.log[0]!.authorization).toBeUndefined();
    } finally {
      proxy!.requireBasic = undefined;
      await storage.stop();
    }
  });

  test('a stream destroyed before it is read releases its response', async () => {
    const c = newClient();
    const stream = await c.fetch(ref(), bigLayer());
    stream.destroy();
    await new Promise((r) => setTimeout(r, 20));
    expect((await c.resolve(ref())).descriptor).toEqual(image!.root);
  });

  test('when resumes run out, the error carries the offset; the caller resumes from it', async () => {
    const layer = bigLayer();
    const all = image!.blobs.get(layer.digest)!;
    proxy!.add({ kind: 'drop', method: 'GET', path: /\/blobs\//, afterBytes: 700_000 });
    const c = newClient();
    const stream = await c.fetch(ref(), layer, { resumeAttempts: 0 });
    const parts: Buffer[] = [];
    let caught: unknown;
    try {
      for await (const chunk of stream) parts.push(chunk as Buffer);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(TransferInterruptedError);
    const interrupted = caught as TransferInterruptedError;
    expect(interrupted.kind).toBe('Unavailable');
    const got = Buffer.concat(parts);
    expect(interrupted.offset).toBe(got.length);
    expect(interrupted.offset).toBe(stream.position);
    expect(interrupted.offset).toBeGreaterThan(0);
    expect(interrupted.offset).toBeLessThan(layer.size);
    expect(interrupted.message).toMatch(new RegExp(`connection to ${proxy!.host.replace(/\./g, '\\.')} lost after ${got.length} of ${layer.size} bytes.*resume from offset ${got.length}`));
    expect(got.equals(all.subarray(0, got.length))).toBe(true);

    // The caller keeps the bytes and their hash state and resumes.
    proxy!.clear();
    const digester = new Digester().update(got);
    const rest = await readAll(await c.fetch(ref(), layer, { offset: interrupted.offset, digester }));
    expect(Buffer.concat([got, rest]).equals(all)).toBe(true);
    expect(proxy!.log[0]!.range).toBe(`bytes=${got.length}-`);
  });

  test('a corrupted byte in a layer: the stream fails at the end with a digest mismatch', async () => {
    const layer = bigLayer();
    proxy!.add({ kind: 'corrupt', method: 'GET', path: /\/blobs\// });
    const stream = await newClient().fetch(ref(), layer);
    let received = 0;
    stream.on('data', (c: Buffer) => (received += c.length));
    const err = await failure(readAll(stream));
    expect(err.kind).toBe('FailedPrecondition');
    expect(err.message).toMatch(/sent content with digest sha256:[0-9a-f]{64}, expected sha256:.* the data is invalid/);
    expect(received).toBe(layer.size);
  });

  test('a corrupted manifest is refused, by digest and when resolving over GET', async () => {
    const c = newClient();
    proxy!.add({ kind: 'corrupt', method: 'GET', path: manifestPath });
    const e1 = await failure(c.fetchBytes(ref(), image!.root));
    expect(e1.kind).toBe('FailedPrecondition');
    // No HEAD: resolve falls back to GET and hashes; the digest asked for does not match.
    proxy!.add({ kind: 'status', status: 405, method: 'HEAD' });
    const e2 = await failure(c.resolve(`${proxy!.host}/test/big@${image!.root.digest}`));
    expect(e2.kind).toBe('FailedPrecondition');
    expect(e2.message).toContain(`expected ${image!.root.digest}`);
    // A tag over GET: the registry's Docker-Content-Digest disagrees with the bytes.
    const e3 = await failure(c.resolve(ref()));
    expect(e3.kind).toBe('FailedPrecondition');
  });

  test('HEAD not supported: resolve falls back to GET and computes the digest', async () => {
    proxy!.add({ kind: 'status', status: 405, method: 'HEAD' });
    const r = await newClient().resolve(ref());
    expect(r.descriptor).toEqual(image!.root);
    expect(proxy!.log.map((e) => `${e.method} ${e.status}`)).toEqual(['HEAD 405', 'GET 200']);
  });

  test('a manifest whose digest does not match the digest asked for (HEAD)', async () => {
    const other = `sha256:${'7'.repeat(64)}`;
    proxy!.add({
      kind: 'respond',
      method: 'HEAD',
      headers: { 'content-type': MediaType.OciManifest, 'docker-content-digest': image!.root.digest },
      body: image!.manifests[0]!.bytes,
    });
    const err = await failure(newClient().resolve(`${proxy!.host}/test/big@${other}`));
    expect(err.kind).toBe('FailedPrecondition');
    expect(err.message).toContain(`returned content with digest ${image!.root.digest}, expected ${other}`);
  });

  test('unknown and schema 1 media types are refused clearly', async () => {
    const c = newClient();
    const weird = Buffer.from(JSON.stringify({ mediaType: 'application/vnd.example.thing+json', schemaVersion: 2 }));
    proxy!.add({ kind: 'respond', path: /\/manifests\/weird$/, headers: { 'content-type': 'application/vnd.example.thing+json' }, body: weird });
    const e1 = await failure(c.resolve(`${proxy!.host}/test/big:weird`));
    expect(e1.kind).toBe('NotImplemented');
    expect(e1.message).toContain('unsupported media type "application/vnd.example.thing+json"');

    const s1 = Buffer.from(JSON.stringify({ schemaVersion: 1, name: 'test/big', tag: 'old', fsLayers: [] }));
    proxy!.add({ kind: 'respond', path: /\/manifests\/old$/, headers: { 'content-type': MediaType.DockerSchema1SignedManifest }, body: s1 });
    const e2 = await failure(c.resolve(`${proxy!.host}/test/big:old`));
    expect(e2.kind).toBe('NotImplemented');
    expect(e2.message).toMatch(/schema 1/);

    // Without a content type, the body's shape decides.
    const m = image!.manifests[0]!.bytes;
    const bare = Buffer.from(JSON.stringify({ ...JSON.parse(m.toString()), mediaType: undefined }));
    proxy!.add({ kind: 'respond', path: /\/manifests\/bare$/, headers: { 'content-type': 'application/json' }, body: bare });
    const r = await c.resolve(`${proxy!.host}/test/big:bare`);
    expect(r.descriptor).toEqual({ mediaType: MediaType.OciManifest, digest: digestOf(bare), size: bare.length });
  });

  test('a blob upload that fails with 500 is restarted', async () => {
    const l = image!.manifests[0]!.layers[1]!;
    proxy!.add({ kind: 'status', status: 500, method: 'PUT', path: /\/blobs\/uploads\//, times: 1 });
    const res = await newClient().push(`${proxy!.host}/retry/upload:v1`, l, () => image!.blobs.get(l.digest)!);
    expect(res.status).toBe('uploaded');
    expect(proxy!.log.filter((e) => e.method === 'POST')).toHaveLength(2);
    expect(await newClient().exists(`${reg!.host}/retry/upload:v1`, l)).toBe(true);
  });

  test('basic auth: 401 without credentials names the registry; credentials (explicit or config.json) work', async () => {
    proxy!.requireBasic = { user: 'bob', password: 'hunter2' };
    try {
      const err = await failure(newClient().resolve(ref()));
      expect(err.kind).toBe('PermissionDenied');
      expect(err.message).toContain(`registry ${proxy!.host} refused access (401 Unauthorized`);
      expect(err.message).toContain(`no credentials are configured for ${proxy!.host}`);

      const wrong = await failure(newClient({ credentials: { username: 'bob', secret: 'nope' } }).resolve(ref()));
      expect(wrong.kind).toBe('PermissionDenied');
      expect(wrong.message).toMatch(/credentials were refused/);

      const c = newClient({ credentials: { [proxy!.host]: { username: 'bob', secret: 'hunter2' } } });
      expect((await c.resolve(ref())).descriptor).toEqual(image!.root);
      // Once the scheme is known, later requests send credentials up front.
      proxy!.log.length = 0;
      await c.fetchBytes(ref(), image!.root);
      expect(proxy!.log.map((e) => e.status)).toEqual([200]);

      const config = path.join(tmp, 'config.json');
      fs.writeFileSync(config, JSON.stringify({ auths: { [`http://${proxy!.host}`]: { auth: Buffer.from('bob:hunter2').toString('base64') } } }));
      expect((await newClient({ dockerConfig: config }).resolve(ref())).descriptor).toEqual(image!.root);
    } finally {
      proxy!.requireBasic = undefined;
    }
  });

  test('mirrors from hosts.toml: a dead mirror is skipped, a live one is used first', async () => {
    const dead = await freePort();
    const hostsDir = path.join(tmp, 'certs.d');
    fs.mkdirSync(path.join(hostsDir, 'mirrored.example'), { recursive: true });
    const write = (text: string) => fs.writeFileSync(path.join(hostsDir, 'mirrored.example', 'hosts.toml'), text);

    write(`server = "http://${proxy!.host}"\n\n[host."http://127.0.0.1:${dead}"]\n  capabilities = ["pull", "resolve"]\n`);
    const c = newClient({ hostsDir, retry: { attempts: 2, baseDelayMs: 5, maxDelayMs: 5 } });
    const r = await c.resolve('mirrored.example/test/big:v1');
    expect(r.name).toBe('mirrored.example/test/big:v1');
    expect(r.descriptor).toEqual(image!.root);
    expect(proxy!.log).toHaveLength(1);

    // A working mirror answers; the server (the proxy) is not asked. The file is re-read.
    write(`server = "http://127.0.0.1:${dead}"\n\n[host."http://${reg!.host}"]\n  capabilities = ["pull", "resolve"]\n`);
    proxy!.clear();
    const r2 = await c.resolve('mirrored.example/test/big:v1');
    expect(r2.descriptor).toEqual(image!.root);
    const l = image!.manifests[0]!.layers[1]!;
    expect(digestOf(await readAll(await c.fetch(r2.ref, l)))).toBe(l.digest);
    expect(proxy!.log).toHaveLength(0);

    // Push goes to the first endpoint with the push capability (the dead server here).
    const err = await failure(c.push('mirrored.example/test/big:v1', l, () => image!.blobs.get(l.digest)!));
    expect(err.kind).toBe('Unavailable');
    expect(err.message).toContain(`127.0.0.1:${dead}`);
  });
});
