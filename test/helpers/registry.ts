// A real OCI registry for tests: Debian's docker-registry (Docker Distribution 2.8) on 127.0.0.1,
// optionally with TLS (and client certificates) or token authentication served by a small Node
// token server, plus a fault-injecting HTTP proxy that can answer 5xx, drop a connection
// mid-body, corrupt a byte or require basic auth. Everything is stopped by pid / closed, and its
// temporary directory removed, by `stop()`.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

export const REGISTRY_BIN = '/usr/bin/docker-registry';

export function tempDir(prefix = 'berth-registry-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

export interface TestCerts {
  dir: string;
  caCert: string;
  caKey: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
}

/** A CA, a server certificate for 127.0.0.1/localhost and a client certificate, all signed by it. */
export function makeCerts(dir: string): TestCerts {
  fs.mkdirSync(dir, { recursive: true });
  const p = (n: string) => path.join(dir, n);
  openssl(
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=berth-test-ca',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'],
    dir,
  );
  const sign = (name: string, cn: string, ext: string) => {
    openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`], dir);
    fs.writeFileSync(p(`${name}.ext`), ext);
    openssl(
      ['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.pem`, '-days', '2',
        '-extfile', `${name}.ext`],
      dir,
    );
  };
  sign('server', '127.0.0.1', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nkeyUsage=digitalSignature,keyEncipherment\n');
  sign('client', 'berth-test-client', 'extendedKeyUsage=clientAuth\nkeyUsage=digitalSignature,keyEncipherment\n');
  return {
    dir,
    caCert: p('ca.pem'),
    caKey: p('ca.key'),
    serverCert: p('server.pem'),
    serverKey: p('server.key'),
    clientCert: p('client.pem'),
    clientKey: p('client.key'),
  };
}

const B32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

function base32(buf: Buffer): string {
  let bits = 0;
  let value = 0;
  let out = '';
  for (const byte of buf) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += B32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += B32[(value << (5 - bits)) & 31];
  return out;
}

/**
 * The libtrust key id Docker Distribution uses to find a token's signing key (`kid`):
 * base32 of the first 240 bits of sha256(SubjectPublicKeyInfo DER), in groups of four.
 */
export function libtrustKeyID(certPem: string | Buffer): string {
  const der = new crypto.X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'der' });
  const b = base32(crypto.createHash('sha256').update(der).digest().subarray(0, 30));
  return b.match(/.{4}/g)!.join(':');
}

const b64url = (b: Buffer | string) => Buffer.from(b).toString('base64url');

export interface TokenRequestLog {
  user?: string;
  scopes: string[];
  granted: Array<{ type: string; name: string; actions: string[] }>;
  status: number;
}

export interface TokenAuthOptions {
  /** user → password; a request with other credentials is refused with 401. */
  users?: Record<string, string>;
  /** Anonymous requests get pull rights (else an empty grant). Default false. */
  anonymousPull?: boolean;
  /** Token lifetime in seconds (expires_in). Default 300. */
  lifetime?: number;
}

/** A Docker token server (GET /token) issuing RS256 JWTs the registry trusts. */
export class TokenServer {
  readonly requests: TokenRequestLog[] = [];
  private server: http.Server | undefined;
  port = 0;

  constructor(
    private readonly key: string,
    private readonly kid: string,
    readonly service: string,
    readonly issuer: string,
    private readonly options: TokenAuthOptions,
  ) {}

  get realm(): string {
    return `http://127.0.0.1:${this.port}/token`;
  }

  async start(): Promise<void> {
    this.server = http.createServer((req, res) => this.handle(req, res));
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as net.AddressInfo).port;
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://x');
    const scopes = url.searchParams.getAll('scope');
    const entry: TokenRequestLog = { scopes, granted: [], status: 200 };
    this.requests.push(entry);
    if (url.pathname !== '/token') {
      entry.status = 404;
      res.writeHead(404).end();
      return;
    }
    let user: string | undefined;
    const auth = req.headers.authorization;
    if (auth) {
      const m = /^Basic (.+)$/i.exec(auth);
      const text = m ? Buffer.from(m[1]!, 'base64').toString('utf8') : '';
      const i = text.indexOf(':');
      const name = i >= 0 ? text.slice(0, i) : '';
      const pass = i >= 0 ? text.slice(i + 1) : '';
      if (!m || this.options.users?.[name] === undefined || this.options.users[name] !== pass) {
        entry.status = 401;
        entry.user = name;
        res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ details: 'incorrect username or password' }));
        return;
      }
      user = name;
      entry.user = name;
    }
    for (const scope of scopes) {
      for (const one of scope.split(' ')) {
        const parts = one.split(':');
        if (parts.length < 3) continue;
        const type = parts[0]!;
        const actions = parts[parts.length - 1]!.split(',');
        const name = parts.slice(1, -1).join(':');
        const allowed = user !== undefined ? actions : this.options.anonymousPull ? actions.filter((a) => a === 'pull') : [];
        if (allowed.length > 0) entry.granted.push({ type, name, actions: allowed });
      }
    }
    const now = Math.floor(Date.now() / 1000);
    const lifetime = this.options.lifetime ?? 300;
    const head = { alg: 'RS256', typ: 'JWT', kid: this.kid };
    const claims = {
      iss: this.issuer,
      sub: user ?? '',
      aud: this.service,
      exp: now + lifetime,
      nbf: now - 10,
      iat: now,
      jti: crypto.randomBytes(8).toString('hex'),
      access: entry.granted,
    };
    const signingInput = `${b64url(JSON.stringify(head))}.${b64url(JSON.stringify(claims))}`;
    const signature = crypto.sign('sha256', Buffer.from(signingInput), this.key);
    const token = `${signingInput}.${b64url(signature)}`;
    res
      .writeHead(200, { 'content-type': 'application/json' })
      .end(JSON.stringify({ token, access_token: token, expires_in: lifetime, issued_at: new Date(now * 1000).toISOString() }));
  }
}

export interface RegistryOptions {
  /** Token authentication through a TokenServer the helper starts. */
  tokenAuth?: TokenAuthOptions;
  /** Serve HTTPS with a test CA; `clientCerts` also requires client certificates signed by it. */
  tls?: { clientCerts?: boolean };
}

export class TestRegistry {
  stderr = '';
  private exited: Promise<void>;

  constructor(
    readonly dir: string,
    readonly port: number,
    private readonly proc: ChildProcess,
    readonly token?: TokenServer,
    readonly certs?: TestCerts,
  ) {
    proc.stderr?.on('data', (d: Buffer) => {
      this.stderr += d.toString();
      if (this.stderr.length > 200_000) this.stderr = this.stderr.slice(-100_000);
    });
    proc.stdout?.on('data', () => {});
    this.exited = new Promise((resolve) => proc.once('exit', () => resolve()));
  }

  /** `127.0.0.1:<port>` */
  get host(): string {
    return `127.0.0.1:${this.port}`;
  }

  get pid(): number {
    return this.proc.pid!;
  }

  get running(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** Stops the registry by pid (TERM, then KILL), the token server, and removes the directory. */
  async stop(): Promise<void> {
    if (this.running) {
      try {
        process.kill(this.pid, 'SIGTERM');
      } catch {
        // already gone
      }
      let timer: NodeJS.Timeout | undefined;
      const killed = await Promise.race([
        this.exited.then(() => true),
        new Promise<boolean>((resolve) => {
          timer = setTimeout(() => resolve(false), 5000);
        }),
      ]);
      clearTimeout(timer);
      if (!killed && this.running) {
        try {
          process.kill(this.pid, 'SIGKILL');
        } catch {
          // gone
        }
        await this.exited;
      }
    }
    await this.token?.stop();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  /** Waits until /v2/ answers (200 or 401), or throws with the registry's output. */
  async waitReady(timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const scheme = this.certs ? https : http;
    for (;;) {
      if (!this.running) throw new Error(`docker-registry exited during start-up:\n${this.stderr}`);
      const status = await new Promise<number>((resolve) => {
        const opts: https.RequestOptions = { host: '127.0.0.1', port: this.port, path: '/v2/', method: 'GET', timeout: 1000 };
        if (this.certs) {
          opts.ca = fs.readFileSync(this.certs.caCert);
          opts.cert = fs.readFileSync(this.certs.clientCert);
          opts.key = fs.readFileSync(this.certs.clientKey);
        }
        const req = scheme.request(opts, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', () => resolve(0));
        req.on('timeout', () => req.destroy());
        req.end();
      });
      if (status === 200 || status === 401) return;
      if (Date.now() > deadline) throw new Error(`docker-registry not ready on ${this.host} after ${timeoutMs} ms:\n${this.stderr}`);
      await sleep(100);
    }
  }
}

/** Starts a registry in a fresh temporary directory. The caller must `stop()` it (in afterAll/finally). */
export async function startRegistry(options: RegistryOptions = {}): Promise<TestRegistry> {
  const dir = tempDir();
  let token: TokenServer | undefined;
  try {
    const port = await freePort();
    const lines = [
      'version: 0.1',
      'log:',
      '  level: error',
      '  accesslog:',
      '    disabled: true',
      'storage:',
      '  filesystem:',
      `    rootdirectory: ${path.join(dir, 'data')}`,
      '  delete:',
      '    enabled: true',
      '  maintenance:',
      '    uploadpurging:',
      '      enabled: false',
      'http:',
      `  addr: 127.0.0.1:${port}`,
      '  secret: berth-test-secret',
    ];
    let certs: TestCerts | undefined;
    if (options.tls) {
      certs = makeCerts(path.join(dir, 'certs'));
      lines.push('  tls:', `    certificate: ${certs.serverCert}`, `    key: ${certs.serverKey}`);
      if (options.tls.clientCerts) lines.push('    clientcas:', `      - ${certs.caCert}`);
    }
    if (options.tokenAuth) {
      const auth = path.join(dir, 'auth');
      fs.mkdirSync(auth);
      openssl(
        ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'token.key', '-out', 'token.pem', '-days', '2', '-subj', '/CN=berth-token-issuer'],
        auth,
      );
      const certPem = fs.readFileSync(path.join(auth, 'token.pem'), 'utf8');
      const keyPem = fs.readFileSync(path.join(auth, 'token.key'), 'utf8');
      token = new TokenServer(keyPem, libtrustKeyID(certPem), 'berth-test-registry', 'berth-test-issuer', options.tokenAuth);
      await token.start();
      lines.push(
        'auth:',
        '  token:',
        `    realm: ${token.realm}`,
        `    service: ${token.service}`,
        `    issuer: ${token.issuer}`,
        `    rootcertbundle: ${path.join(auth, 'token.pem')}`,
      );
    }
    const config = path.join(dir, 'config.yml');
    fs.writeFileSync(config, `${lines.join('\n')}\n`);
    const proc = spawn(REGISTRY_BIN, ['serve', config], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, OTEL_TRACES_EXPORTER: 'none' } });
    const reg = new TestRegistry(dir, port, proc, token, certs);
    try {
      await reg.waitReady();
    } catch (err) {
      await reg.stop();
      throw err;
    }
    return reg;
  } catch (err) {
    await token?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

export type FaultKind = 'status' | 'drop' | 'stall' | 'corrupt' | 'reset' | 'respond';

export interface Fault {
  kind: FaultKind;
  /** Only requests with this method (default: any). */
  method?: string;
  /** Only requests whose path matches (default: any). */
  path?: RegExp;
  /** How many matching requests it applies to (default: all). */
  times?: number;
  /** `status`/`respond`: the status to answer (default 500 / 200), with optional headers. */
  status?: number;
  headers?: Record<string, string>;
  /** `respond`: the body sent (for HEAD only its length is announced). */
  body?: Buffer | string;
  /** `drop`/`stall`: bytes of the body passed before the connection is cut / goes silent (default: half). */
  afterBytes?: number;
  /** `corrupt`: position of the byte flipped (default: the middle). */
  at?: number;
}

export interface ProxyLogEntry {
  method: string;
  url: string;
  range?: string;
  authorization?: string;
  status?: number;
  fault?: FaultKind;
}

/**
 * An HTTP proxy in front of a registry that injects faults into matching requests. Keeps the
 * client's Host header, so the registry's upload Locations point back through the proxy.
 */
export class FaultProxy {
  readonly log: ProxyLogEntry[] = [];
  private faults: Array<Fault & { left: number }> = [];
  private server: http.Server | undefined;
  /** When set, requests without this basic user:password get 401 with a Basic challenge. */
  requireBasic: { user: string; password: string } | undefined;
  port = 0;

  constructor(private readonly targetPort: number) {}

  get host(): string {
    return `127.0.0.1:${this.port}`;
  }

  add(fault: Fault): void {
    this.faults.push({ ...fault, left: fault.times ?? Number.POSITIVE_INFINITY });
  }

  clear(): void {
    this.faults = [];
    this.log.length = 0;
  }

  async start(): Promise<void> {
    this.server = http.createServer((req, res) => this.handle(req, res));
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as net.AddressInfo).port;
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  private take(req: http.IncomingMessage): Fault | undefined {
    const p = (req.url ?? '').split('?')[0]!;
    for (const f of this.faults) {
      if (f.left <= 0) continue;
      if (f.method && f.method !== req.method) continue;
      if (f.path && !f.path.test(p)) continue;
      f.left--;
      return f;
    }
    return undefined;
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const entry: ProxyLogEntry = { method: req.method ?? '', url: req.url ?? '' };
    if (req.headers.range) entry.range = req.headers.range;
    if (req.headers.authorization) entry.authorization = req.headers.authorization;
    this.log.push(entry);
    if (this.requireBasic) {
      const want = `Basic ${Buffer.from(`${this.requireBasic.user}:${this.requireBasic.password}`).toString('base64')}`;
      if (req.headers.authorization !== want) {
        entry.status = 401;
        req.resume();
        res
          .writeHead(401, { 'www-authenticate': 'Basic realm="berth-test"', 'content-type': 'application/json' })
          .end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] }));
        return;
      }
    }
    const fault = this.take(req);
    if (fault) entry.fault = fault.kind;
    if (fault?.kind === 'status') {
      entry.status = fault.status ?? 500;
      req.resume();
      res
        .writeHead(entry.status, { 'content-type': 'application/json', ...fault.headers })
        .end(JSON.stringify({ errors: [{ code: 'UNKNOWN', message: 'injected failure' }] }));
      return;
    }
    if (fault?.kind === 'respond') {
      const body = Buffer.from(fault.body ?? '');
      entry.status = fault.status ?? 200;
      req.resume();
      res.writeHead(entry.status, { 'content-length': String(body.length), ...fault.headers });
      res.end(req.method === 'HEAD' ? undefined : body);
      return;
    }
    if (fault?.kind === 'reset') {
      req.socket.destroy();
      return;
    }
    const headers = { ...req.headers };
    const up = http.request(
      { host: '127.0.0.1', port: this.targetPort, method: req.method, path: req.url, headers },
      (ur) => {
        entry.status = ur.statusCode;
        const length = Number(ur.headers['content-length'] ?? '0');
        res.writeHead(ur.statusCode ?? 502, ur.statusMessage, ur.headers);
        if (fault?.kind === 'stall' && req.method !== 'HEAD' && length > 0) {
          const limit = fault.afterBytes ?? Math.floor(length / 2);
          let sent = 0;
          ur.on('data', (chunk: Buffer) => {
            if (sent >= limit) return;
            const part = chunk.subarray(0, Math.max(0, limit - sent));
            sent += part.length;
            if (sent >= limit) ur.destroy(); // and never write again: the connection stays open, silent
            res.write(part);
          });
          return;
        }
        if (fault?.kind === 'drop' && req.method !== 'HEAD' && length > 0) {
          const limit = fault.afterBytes ?? Math.floor(length / 2);
          let sent = 0;
          ur.on('data', (chunk: Buffer) => {
            if (sent >= limit) return;
            const part = chunk.subarray(0, Math.max(0, limit - sent));
            sent += part.length;
            const cut = sent >= limit;
            if (cut) ur.destroy();
            res.write(part, () => {
              if (cut) setTimeout(() => res.socket?.destroy(), 20);
            });
          });
          return;
        }
        if (fault?.kind === 'corrupt' && req.method !== 'HEAD' && length > 0) {
          const at = Math.min(fault.at ?? Math.floor(length / 2), length - 1);
          let pos = 0;
          ur.on('data', (chunk: Buffer) => {
            if (at >= pos && at < pos + chunk.length) {
              chunk = Buffer.from(chunk);
              chunk[at - pos] ^= 0x20;
            }
            pos += chunk.length;
            res.write(chunk);
          });
          ur.on('end', () => res.end());
          return;
        }
        ur.pipe(res);
      },
    );
    up.on('error', () => {
      if (!res.headersSent) res.writeHead(502).end();
      else res.destroy();
    });
    req.pipe(up);
  }
}

export async function startFaultProxy(targetPort: number): Promise<FaultProxy> {
  const p = new FaultProxy(targetPort);
  await p.start();
  return p;
}
