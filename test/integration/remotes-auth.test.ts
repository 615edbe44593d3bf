// Token authentication against a real registry configured with `auth.token`, whose realm is a
// Node token server issuing RS256 JWTs (with the libtrust `kid` Distribution expects).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { digestOf } from '../../content-store/digest';
import { BerthError } from '../../services/errdefs';
import { RegistryClient, parseManifest, type RegistryClientOptions } from '../../services/remotes';
import { buildImage, pushImage, skopeoCopy, skopeoInspectRaw, type TestImage } from '../helpers/images';
import { startRegistry, type TestRegistry } from '../helpers/registry';
import { berthFailure as failure, readAll } from '../helpers/calls';


describe('token authentication', () => {
  let reg: TestRegistry | undefined;
  let open: TestRegistry | undefined;
  let image: TestImage | undefined;
  let tmp: string;
  const clients: RegistryClient[] = [];
  const alice = { username: 'alice', secret: 's3cret' };

  const newClient = (extra: RegistryClientOptions = {}) => {
    const c = new RegistryClient({ plainHttp: true, retry: { baseDelayMs: 10, maxDelayMs: 50 }, ...extra });
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-auth-'));
    reg = await startRegistry({ tokenAuth: { users: { alice: alice.secret } } });
    open = await startRegistry({ tokenAuth: { users: { alice: alice.secret }, anonymousPull: true } });
    image = await buildImage({ layers: 2, tag: 'v1' });
    await pushImage(newClient({ credentials: alice }), image, `${reg.host}/private/app:v1`);
    await skopeoCopy(image, `${open.host}/public/app:v1`, { creds: `alice:${alice.secret}` });
  });

  afterAll(async () => {
    for (const c of clients) c.close();
    image?.remove();
    await reg?.stop();
    await open?.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  test('with credentials: resolve and fetch, one token per scope set', async () => {
    const c = newClient({ credentials: alice });
    const before = reg!.token!.requests.length;
    const r = await c.resolve(`${reg!.host}/private/app:v1`);
    expect(r.descriptor).toEqual(image!.root);
    const m = parseManifest(await c.fetchBytes(r.ref, r.descriptor));
    for (const l of [m.config, ...m.layers]) expect(digestOf(await readAll(await c.fetch(r.ref, l)))).toBe(l.digest);
    const asked = reg!.token!.requests.slice(before);
    expect(asked).toEqual([{ user: 'alice', scopes: ['repository:private/app:pull'], granted: [{ type: 'repository', name: 'private/app', actions: ['pull'] }], status: 200 }]);
    expect(c.authorizer.tokenRequests).toBe(1);
  });

  test('skopeo reads what our client pushed', async () => {
    expect((await skopeoInspectRaw(`${reg!.host}/private/app:v1`, `alice:${alice.secret}`)).equals(image!.rootBytes)).toBe(true);
  });

  test('without credentials: PermissionDenied naming the registry', async () => {
    const err = await failure(newClient().resolve(`${reg!.host}/private/app:v1`));
    expect(err.kind).toBe('PermissionDenied');
    expect(err.message).toBe(
      `resolving ${reg!.host}/private/app:v1: registry ${reg!.host} refused access (401 Unauthorized); ` +
        `no credentials are configured for ${reg!.host}: permission denied`,
    );
    // The anonymous token was asked for and granted nothing.
    const last = reg!.token!.requests.at(-1)!;
    expect(last.user).toBeUndefined();
    expect(last.granted).toEqual([]);
    expect(last.status).toBe(200);
  });

  test('wrong password: the token server refuses, PermissionDenied', async () => {
    const err = await failure(newClient({ credentials: { username: 'alice', secret: 'wrong' } }).resolve(`${reg!.host}/private/app:v1`));
    expect(err.kind).toBe('PermissionDenied');
    expect(err.message).toMatch(new RegExp(`authorization with ${reg!.host.replace(/\./g, '\\.')} failed: token server http://127.0.0.1:\\d+/token answered 401 Unauthorized: credentials for user "alice" were refused`));
  });

  test('credentials from a Docker config.json', async () => {
    const config = path.join(tmp, 'config.json');
    fs.writeFileSync(config, JSON.stringify({ auths: { [reg!.host]: { auth: Buffer.from(`alice:${alice.secret}`).toString('base64') } } }));
    const c = newClient({ dockerConfig: config });
    const r = await c.resolve(`${reg!.host}/private/app:v1`);
    const l = image!.manifests[0]!.layers[0]!;
    expect(digestOf(await readAll(await c.fetch(r.ref, l)))).toBe(l.digest);
    fs.writeFileSync(config, JSON.stringify({ auths: { [reg!.host]: { username: 'alice', password: alice.secret } } }));
    expect((await newClient({ dockerConfig: config }).resolve(`${reg!.host}/private/app:v1`)).descriptor).toEqual(image!.root);
  });

  test('push and cross-repository mount need push and pull scopes', async () => {
    const c = newClient({ credentials: alice });
    const before = reg!.token!.requests.length;
    const l = image!.manifests[0]!.layers[0]!;
    const res = await c.push(`${reg!.host}/private/copy:v1`, l, () => image!.blobs.get(l.digest)!, { mountFrom: ['private/app'] });
    expect(res.status).toBe('mounted');
    const scopes = reg!.token!.requests.slice(before).flatMap((r) => r.scopes);
    expect(scopes).toContain('repository:private/app:pull');
    expect(scopes).toContain('repository:private/copy:pull,push');
  });

  test('anonymous pull allowed, anonymous push refused', async () => {
    const anon = newClient();
    const r = await anon.resolve(`${open!.host}/public/app:v1`);
    expect(r.descriptor).toEqual(image!.root);
    const l = image!.manifests[0]!.layers[1]!;
    expect(digestOf(await readAll(await anon.fetch(r.ref, l)))).toBe(l.digest);
    const err = await failure(anon.push(`${open!.host}/public/other:v1`, l, () => image!.blobs.get(l.digest)!));
    expect(err.kind).toBe('PermissionDenied');
    expect(err.message).toContain(`no credentials are configured for ${open!.host}`);
    // With credentials, push works on the same registry.
    const res = await newClient({ credentials: alice }).push(`${open!.host}/public/other:v1`, l, () => image!.blobs.get(l.digest)!);
    expect(res.status).toBe('uploaded');
  });

  test('an expired cached token is replaced transparently', async () => {
    const short = await startRegistry({ tokenAuth: { users: { alice: alice.secret }, lifetime: 1 } });
    const c = newClient({ credentials: alice });
    try {
      const l = image!.manifests[0]!.layers[1]!;
      await c.push(`${short.host}/t/app:v1`, l, () => image!.blobs.get(l.digest)!);
      await new Promise((r) => setTimeout(r, 1200));
      expect(await c.exists(`${short.host}/t/app:v1`, l)).toBe(true);
      expect(c.authorizer.tokenRequests).toBeGreaterThanOrEqual(2);
    } finally {
      await short.stop();
    }
  });
});
