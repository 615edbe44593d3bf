// Host configuration (hosts.toml, certs.d, code), credentials (Docker config.json, helpers),
// WWW-Authenticate parsing, token caching, backoff and the concurrency limiter.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Authorizer, mergeScopes, parseChallenges } from '../../services/remotes/auth';
import {
  credentialsFromDockerConfig,
  credentialsProvider,
  dockerConfigCredentials,
  normalizeAuthKey,
} from '../../services/remotes/credentials';
import { hostDirCandidates, parseHostsToml, registryEndpoints } from '../../services/remotes/hosts';
import { Limiter, mapLimit } from '../../services/remotes/limit';
import { backoffDelay, sleep } from '../../services/remotes/transport';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-remotes-unit-'));
});
afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('hosts.toml', () => {
  test('mirrors in file order, then the server; paths relative to the host directory', () => {
    const specs = parseHostsToml(
      `
server = "https://registry.example.com"
ca = "root-ca.pem"

[host."http://127.0.0.1:5001"]
  capabilities = ["pull", "resolve"]
  skip_verify = true
  [host."http://127.0.0.1:5001".header]
    x-custom = "one"
    x-list = ["a", "b"]

[host."https://mirror.example.com/base"]
  capabilities = ["pull"]
  ca = ["/abs/ca.pem", "rel/ca.pem"]
  client = [["client.cert", "/abs/client.key"]]

[host."mirror2.example.com:8443/custom/api"]
  override_path = true
  client = "both.pem"
`,
      '/etc/containerd/certs.d/example.com',
    );
    expect(specs.map((s) => `${s.scheme}://${s.host}${s.path}`)).toEqual([
      'http://127.0.0.1:5001/v2',
      'https://mirror.example.com/base/v2',
      'https://mirror2.example.com:8443/custom/api',
      'https://registry.example.com/v2',
    ]);
    expect(specs[0]!.capabilities).toEqual(['pull', 'resolve']);
    expect(specs[0]!.skipVerify).toBe(true);
    expect(specs[0]!.headers).toEqual({ 'x-custom': ['one'], 'x-list': ['a', 'b'] });
    expect(specs[1]!.ca).toEqual(['/abs/ca.pem', '/etc/containerd/certs.d/example.com/rel/ca.pem']);
    expect(specs[1]!.client).toEqual([{ cert: '/etc/containerd/certs.d/example.com/client.cert', key: '/abs/client.key' }]);
    expect(specs[2]!.client).toEqual([{ cert: '/etc/containerd/certs.d/example.com/both.pem' }]);
    expect(specs[3]!.capabilities).toEqual(['pull', 'resolve', 'push']);
    expect(specs[3]!.ca).toEqual(['/etc/containerd/certs.d/example.com/root-ca.pem']);
  });

  test('bad files are InvalidArgument', () => {
    expect(() => parseHostsToml('server = ', dir)).toThrow(/failed to parse TOML/);
    expect(() => parseHostsToml('[host."https://x"]\ncapabilities = ["fly"]', dir)).toThrow(/unknown capability "fly"/);
    expect(() => parseHostsToml('[host."https://x"]\nclient = [["a"]]', dir)).toThrow(/invalid pair/);
  });

  test('host directory names', () => {
    expect(hostDirCandidates('/d', '127.0.0.1:5000')).toEqual(['/d/127.0.0.1_5000_', '/d/127.0.0.1:5000', '/d/_default']);
    expect(hostDirCandidates('/d', 'docker.io')).toEqual(['/d/docker.io', '/d/_default']);
  });

  test('registryEndpoints: defaults, plain HTTP, hosts.toml, _default, certs.d, code', async () => {
    expect(await registryEndpoints('docker.io', {})).toEqual([
      expect.objectContaining({ scheme: 'https', host: 'registry-1.docker.io', path: '/v2', mirror: false }),
    ]);
    expect((await registryEndpoints('127.0.0.1:5000', { plainHttp: true }))[0]).toEqual(
      expect.objectContaining({ scheme: 'http', host: '127.0.0.1:5000', capabilities: ['pull', 'resolve', 'push'] }),
    );
    expect((await registryEndpoints('a.example', { plainHttp: ['b.example'] }))[0]!.scheme).toBe('https');
    expect((await registryEndpoints('b.example', { plainHttp: (h) => h === 'b.example' }))[0]!.scheme).toBe('http');

    fs.mkdirSync(path.join(dir, 'reg.example_5000_'));
    fs.writeFileSync(path.join(dir, 'ca.pem'), '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
    fs.writeFileSync(
      path.join(dir, 'reg.example_5000_', 'hosts.toml'),
      `[host."http://127.0.0.1:7000"]\ncapabilities = ["pull", "resolve"]\n[host."https://127.0.0.1:7001"]\nca = "${path.join(dir, 'ca.pem')}"\n`,
    );
    const eps = await registryEndpoints('reg.example:5000', { hostsDir: dir, plainHttp: true });
    expect(eps.map((e) => [e.scheme, e.host, e.mirror, e.capabilities.length])).toEqual([
      ['http', '127.0.0.1:7000', true, 2],
      ['https', '127.0.0.1:7001', true, 3],
      ['http', 'reg.example:5000', false, 3],
    ]);
    expect(eps[1]!.tls?.ca?.[0]!.toString()).toContain('BEGIN CERTIFICATE');

    fs.mkdirSync(path.join(dir, '_default'));
    fs.writeFileSync(path.join(dir, '_default', 'hosts.toml'), 'server = "http://127.0.0.1:7777"\n');
    expect((await registryEndpoints('other.example', { hostsDir: dir })).map((e) => `${e.scheme}://${e.host}`)).toEqual(['http://127.0.0.1:7777']);

    fs.mkdirSync(path.join(dir, 'certs.example'));
    fs.writeFileSync(path.join(dir, 'certs.example', 'ca.crt'), 'CA');
    fs.writeFileSync(path.join(dir, 'certs.example', 'client.cert'), 'CERT');
    fs.writeFileSync(path.join(dir, 'certs.example', 'client.key'), 'KEY');
    const [ce] = await registryEndpoints('certs.example', { hostsDir: dir });
    expect(ce!.host).toBe('certs.example');
    expect(ce!.tls?.ca?.map(String)).toEqual(['CA']);
    expect(ce!.tls?.certs.map((c) => [String(c.cert), String(c.key)])).toEqual([['CERT', 'KEY']]);

    const coded = await registryEndpoints('coded.example', {
      hostsDir: dir,
      hosts: { 'coded.example': { plainHttp: true, mirrors: ['http://127.0.0.1:9/v2', { url: '127.0.0.1:10', capabilities: ['pull'] }] } },
    });
    expect(coded.map((e) => `${e.scheme}://${e.host}${e.path} ${e.capabilities.join(',')}`)).toEqual([
      'http://127.0.0.1:9/v2 pull,resolve,push',
      'https://127.0.0.1:10/v2 pull',
      'http://coded.example/v2 pull,resolve,push',
    ]);
  });

  test('a certificate file that cannot be read is InvalidArgument', async () => {
    await expect(registryEndpoints('x.example', { hosts: { 'x.example': { ca: path.join(dir, 'missing.pem') } } })).rejects.toThrow(
      /unable to read CA certificate/,
    );
  });
});

describe('credentials', () => {
  const b64 = (s: string) => Buffer.from(s).toString('base64');

  test('auth keys match by host whatever the scheme or path', () => {
    expect(normalizeAuthKey('https://index.docker.io/v1/')).toBe('docker.io');
    expect(normalizeAuthKey('registry-1.docker.io')).toBe('docker.io');
    expect(normalizeAuthKey('http://127.0.0.1:5000/v2/')).toBe('127.0.0.1:5000');
    expect(normalizeAuthKey('Example.COM')).toBe('example.com');
  });

  test('config.json auths: base64 auth or username/password', () => {
    const config = {
      auths: {
        'https://index.docker.io/v1/': { auth: b64('hub:pw:with:colons') },
        '127.0.0.1:5000': { username: 'u', password: 'p' },
        'other.example': {},
      },
    };
    expect(credentialsFromDockerConfig(config, 'registry-1.docker.io')).toEqual({ username: 'hub', secret: 'pw:with:colons' });
    expect(credentialsFromDockerConfig(config, '127.0.0.1:5000')).toEqual({ username: 'u', secret: 'p' });
    expect(credentialsFromDockerConfig(config, 'other.example')).toBeUndefined();
    expect(credentialsFromDockerConfig(config, 'nowhere.example')).toBeUndefined();
    expect(() => credentialsFromDockerConfig({ auths: { x: { auth: b64('nocolon') } } }, 'x')).toThrow(/invalid "auth"/);
  });

  test('dockerConfigCredentials reads the file on each lookup; missing file = none; bad JSON = error', async () => {
    const file = path.join(dir, 'config.json');
    const provider = dockerConfigCredentials(file);
    expect(await provider('127.0.0.1:5000')).toBeUndefined();
    fs.writeFileSync(file, JSON.stringify({ auths: { '127.0.0.1:5000': { auth: b64('alice:secret') } } }));
    expect(await provider('127.0.0.1:5000')).toEqual({ username: 'alice', secret: 'secret' });
    fs.writeFileSync(file, '{');
    await expect(provider('127.0.0.1:5000')).rejects.toThrow(/not valid JSON/);
  });

  test('credential helpers (credHelpers, credsStore)', async () => {
    const bin = path.join(dir, 'bin');
    fs.mkdirSync(bin);
    fs.writeFileSync(
      path.join(bin, 'docker-credential-fake'),
      '#!/bin/sh\nread server\nif [ "$server" = "helped.example" ]; then echo \'{"ServerURL":"helped.example","Username":"h","Secret":"s"}\'; else echo "credentials not found in native keychain"; exit 1; fi\n',
      { mode: 0o755 },
    );
    const file = path.join(dir, 'config.json');
    fs.writeFileSync(file, JSON.stringify({ credHelpers: { 'helped.example': 'fake' }, credsStore: 'fake' }));
    const oldPath = process.env.PATH;
    process.env.PATH = `${bin}:${oldPath}`;
    try {
      const provider = dockerConfigCredentials(file);
      expect(await provider('helped.example')).toEqual({ username: 'h', secret: 's' });
      expect(await provider('unknown.example')).toBeUndefined();
    } finally {
      process.env.PATH = oldPath;
    }
  });

  test('explicit credentials: one pair, a map, a function', async () => {
    expect(await credentialsProvider({ username: 'a', secret: 'b' })!('any')).toEqual({ username: 'a', secret: 'b' });
    const byHost = credentialsProvider({ 'https://127.0.0.1:5000': { username: 'x', secret: 'y' } })!;
    expect(await byHost('127.0.0.1:5000')).toEqual({ username: 'x', secret: 'y' });
    expect(await byHost('127.0.0.1:5001')).toBeUndefined();
    expect(await credentialsProvider((h) => (h === 'q' ? { username: 'q', secret: 'q' } : undefined))!('q')).toEqual({ username: 'q', secret: 'q' });
  });
});

describe('authorization', () => {
  test('parseChallenges', () => {
    expect(parseChallenges('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull"')).toEqual([
      { scheme: 'bearer', params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/busybox:pull' } },
    ]);
    expect(parseChallenges('Basic realm="Registry Realm", Bearer realm="x", error="insufficient_scope"')).toEqual([
      { scheme: 'basic', params: { realm: 'Registry Realm' } },
      { scheme: 'bearer', params: { realm: 'x', error: 'insufficient_scope' } },
    ]);
    expect(parseChallenges(['Basic realm=plain', 'Bearer realm="a\\"b"'])).toEqual([
      { scheme: 'basic', params: { realm: 'plain' } },
      { scheme: 'bearer', params: { realm: 'a"b' } },
    ]);
    expect(parseChallenges(undefined)).toEqual([]);
  });

  test('mergeScopes', () => {
    expect(mergeScopes(['repository:a:pull', 'repository:a:push', 'repository:b:pull', 'registry:catalog:*'])).toEqual([
      'registry:catalog:*',
      'repository:a:pull,push',
      'repository:b:pull',
    ]);
  });

  test('tokens are fetched once per scope set and cached until they expire', async () => {
    let now = 1_000_000;
    const asked: string[] = [];
    const auth = new Authorizer(
      async () => ({ username: 'u', secret: 'p' }),
      async (url, headers) => {
        asked.push(`${url.searchParams.getAll('scope').join(' ')} ${headers.authorization}`);
        return { status: 200, statusText: 'OK', body: Buffer.from(JSON.stringify({ token: `t${asked.length}`, expires_in: 120 })) };
      },
      () => now,
    );
    expect(await auth.authorize('h', ['repository:a:pull'])).toEqual({});
    const www = 'Bearer realm="http://127.0.0.1:1/token",service="svc"';
    expect(await auth.challenged('h', www, {})).toBe(true);
    const a1 = await auth.authorize('h', ['repository:a:pull']);
    expect(a1).toEqual({ header: 'Bearer t1', cacheKey: expect.any(String), fresh: true });
    expect((await auth.authorize('h', ['repository:a:pull'])).header).toBe('Bearer t1');
    expect((await auth.authorize('h', ['repository:b:pull'])).header).toBe('Bearer t2');
    now += 115_000; // inside the safety margin: refetch
    expect((await auth.authorize('h', ['repository:a:pull'])).header).toBe('Bearer t3');
    expect(asked[0]).toBe(`repository:a:pull Basic ${Buffer.from('u:p').toString('base64')}`);
    expect(auth.tokenRequests).toBe(3);
    // A cached token refused: maybe stale, retry; a fresh one refused for the same scopes: give up.
    const a3 = await auth.authorize('h', ['repository:a:pull']);
    expect(a3.fresh).toBe(false);
    expect(await auth.challenged('h', www, a3)).toBe(true);
    const a3b = await auth.authorize('h', ['repository:a:pull']);
    expect(a3b.fresh).toBe(true);
    expect(await auth.challenged('h', www, a3b)).toBe(false);
    // The registry asks for more: retry.
    const a4 = await auth.authorize('h', ['repository:a:pull']);
    expect(await auth.challenged('h', `${www},scope="repository:a:pull,push"`, { ...a4, fresh: true })).toBe(true);
    expect(auth.challengeScopes('h')).toEqual(['repository:a:pull,push']);
  });

  test('token server refusal is PermissionDenied naming the registry', async () => {
    const auth = new Authorizer(
      async () => undefined,
      async () => ({ status: 401, statusText: 'Unauthorized', body: Buffer.alloc(0) }),
    );
    await auth.challenged('reg.example:5000', 'Bearer realm="http://127.0.0.1:1/token"', {});
    await expect(auth.authorize('reg.example:5000', ['repository:a:pull'])).rejects.toThrow(
      /authorization with reg.example:5000 failed: .*anonymous access was refused: permission denied/,
    );
  });

  test('basic: retried once with credentials, never when they were refused', async () => {
    const auth = new Authorizer(async (h) => (h === 'withcreds' ? { username: 'u', secret: 'p' } : undefined), async () => {
      throw new Error('no tokens here');
    });
    expect(await auth.challenged('withcreds', 'Basic realm="r"', {})).toBe(true);
    const a = await auth.authorize('withcreds', []);
    expect(a.header).toBe(`Basic ${Buffer.from('u:p').toString('base64')}`);
    expect(await auth.challenged('withcreds', 'Basic realm="r"', a)).toBe(false);
    expect(await auth.challenged('nocreds', 'Basic realm="r"', {})).toBe(false);
  });
});

describe('retry helpers', () => {
  test('backoff grows, is capped, and honours Retry-After within the cap', () => {
    const p = { attempts: 5, baseDelayMs: 100, maxDelayMs: 1000 };
    const d1 = backoffDelay(p, 1);
    const d3 = backoffDelay(p, 3);
    expect(d1).toBeGreaterThanOrEqual(75);
    expect(d1).toBeLessThanOrEqual(125);
    expect(d3).toBeGreaterThanOrEqual(300);
    expect(d3).toBeLessThanOrEqual(500);
    expect(backoffDelay(p, 10)).toBe(1000);
    expect(backoffDelay(p, 1, '0.5')).toBe(500);
    expect(backoffDelay(p, 1, '60')).toBe(1000);
  });

  test('sleep is cancelled by the signal', async () => {
    const ac = new AbortController();
    const p = sleep(10_000, ac.signal);
    ac.abort();
    await expect(p).rejects.toThrow(/context canceled/);
  });

  test('Limiter runs at most N at once, in order; mapLimit keeps order', async () => {
    const limiter = new Limiter(2);
    let active = 0;
    let peak = 0;
    const order: number[] = [];
    await Promise.all(
      [0, 1, 2, 3, 4].map((i) =>
        limiter.run(async () => {
          active++;
          peak = Math.max(peak, active);
          order.push(i);
          await new Promise((r) => setTimeout(r, 10));
          active--;
        }),
      ),
    );
    expect(peak).toBe(2);
    expect(order).toEqual([0, 1, 2, 3, 4]);
    expect(await mapLimit([3, 1, 2], 3, async (x) => x * 2)).toEqual([6, 2, 4]);
    expect(new Limiter().concurrency).toBe(3);
    expect(() => new Limiter(0)).toThrow(RangeError);
  });

  test('a queued task is cancelled by its signal', async () => {
    const limiter = new Limiter(1);
    let release!: () => void;
    const blocker = limiter.run(() => new Promise<void>((r) => (release = r)));
    const ac = new AbortController();
    const queued = limiter.run(async () => 'ran', ac.signal);
    expect(limiter.pending).toBe(1);
    ac.abort();
    await expect(queued).rejects.toThrow(/context canceled/);
    expect(limiter.pending).toBe(0);
    release();
    await blocker;
  });
});
