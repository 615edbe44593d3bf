// RegistryClient: the OCI distribution client (the network half of pull and push).
//
//   resolve(ref)                → { name, ref, descriptor } of the manifest or index a tag/digest names
//   fetch(ref, desc, {offset})  → a Readable of the blob/manifest that checks size and digest as it
//                                 streams and fails at the end when they are wrong
//   push(ref, desc, open)       → uploads a blob (HEAD first, optional cross-repo mount, POST +
//                                 monolithic PUT) or a manifest (PUT by digest)
//   pushTag(ref, desc, bytes?)  → points a tag at a manifest
//
// Endpoints (mirrors, plain HTTP, TLS) come from hosts.ts; authorization from auth.ts. Every
// request is retried with exponential backoff on 5xx, 429 and connection failures (bounded,
// AbortSignal-aware); a download cut off mid-body is resumed with `Range: bytes=N-`.
import type { IncomingHttpHeaders } from 'node:http';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { BerthError } from '../errdefs';
import { Digester, digestOf } from '../../content-store/digest';
import { Authorizer, mergeScopes, repositoryScope } from './auth';
import {
  chainProviders,
  credentialsProvider,
  dockerConfigCredentials,
  defaultDockerConfigPath,
  type CredentialsOption,
} from './credentials';
import { RemoteError, TransferInterruptedError, describeRegistryErrors, kindForStatus, parseRegistryErrors } from './errors';
import { registryEndpoints, type Capability, type EndpointTls, type HostsOptions, type RegistryEndpoint } from './hosts';
import { MAX_MANIFEST_SIZE, detectManifestType, parseDescriptor, type Descriptor } from './images';
import { DEFAULT_CONCURRENCY, Limiter } from './limit';
import {
  MANIFEST_ACCEPT,
  baseMediaType,
  isManifestOrIndexType,
  isSchema1Type,
} from './media-types';
import { formatReference, repositoryName, toReference, type Reference } from './references';
import {
  DEFAULT_RETRY,
  Transport,
  backoffDelay,
  canceled,
  drain,
  isRetryableNetworkError,
  isRetryableStatus,
  readBody,
  sleep,
  throwIfAborted,
  type RawResponse,
  type RetryPolicy,
} from './transport';

/** pino-compatible; quiet when not given. */
export interface RemotesLogger {
  debug(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

export interface RegistryClientOptions extends HostsOptions {
  /** Explicit credentials: one pair for all hosts, a map by host, or a function of the host. */
  credentials?: CredentialsOption;
  /**
   * Read credentials from a Docker config.json: a path, or true for `$DOCKER_CONFIG/config.json`
   * (default `~/.docker/config.json`). Explicit credentials win. Default: not read.
   */
  dockerConfig?: string | boolean;
  retry?: Partial<RetryPolicy>;
  /** Times a download cut off mid-body is resumed before the error surfaces. Default 3. */
  resumeAttempts?: number;
  /** Idle socket timeout. Default 30 s. */
  timeoutMs?: number;
  userAgent?: string;
  /** Size of `limiter`, the slot pool for concurrent layer fetches. Default 3. */
  concurrency?: number;
  logger?: RemotesLogger;
}

export interface Resolved {
  /** The fully qualified reference that was resolved (`docker.io/library/busybox:latest`). */
  name: string;
  ref: Reference;
  descriptor: Descriptor;
}

export interface FetchOptions {
  signal?: AbortSignal;
  /** Start at this byte (a resumed download). Default 0. */
  offset?: number;
  /**
   * The hash state of bytes [0, offset) (e.g. content-store's hashPrefix of the partial ingest).
   * It is fed the rest, so the stream verifies the whole digest. Without it, a resumed stream
   * (offset > 0) can only check the total size, unless the registry ignores the Range and resends
   * everything (then the stream hashes from byte 0 itself): see `FetchStream.verifiesDigest`.
   */
  digester?: Digester;
  /** Resume transparently after a mid-body disconnect. Default `resumeAttempts` of the client; 0 = never. */
  resumeAttempts?: number;
}

/**
 * The bytes of one blob or manifest, from `offset` to the end. It errors (after the last chunk,
 * before 'end') when the total size or the digest is wrong: treat the data as invalid unless the
 * stream ended without error.
 */
export interface FetchStream extends Readable {
  /** Position in the blob of the next byte (offset + bytes delivered). */
  readonly position: number;
  /** Whether the digest is verified at the end (false: resumed at an offset without a digester). */
  readonly verifiesDigest: boolean;
  /** Mid-body reconnections made so far. */
  readonly resumes: number;
  /** The host serving the data. */
  readonly host: string;
}

export interface PushOptions {
  signal?: AbortSignal;
  /**
   * Repositories on the same registry that may already hold the blob (`library/busybox` or a full
   * reference): a cross-repository mount is tried from each before uploading.
   */
  mountFrom?: string[];
}

export interface PushResult {
  digest: string;
  /** `exists`: already there (nothing sent); `mounted`: linked from another repository. */
  status: 'exists' | 'mounted' | 'uploaded';
}

interface RequestSpec {
  method: string;
  /** Path under the endpoint's API root (`/test/busybox/manifests/latest`), or an absolute URL. */
  path?: string;
  url?: URL;
  headers?: Record<string, string>;
  scopes: string[];
  body?: () => Buffer | Readable;
  signal?: AbortSignal;
  /** Retry 5xx/429/connection failures; false for one-shot streamed bodies. Default true. */
  retry?: boolean;
  /** For messages: what is being done (`resolving docker.io/library/busybox:latest`). */
  what: string;
}

const NOOP_LOGGER: RemotesLogger = { debug() {}, warn() {} };
const ERROR_BODY_LIMIT = 64 * 1024;

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function contentLength(headers: IncomingHttpHeaders): number | undefined {
  const v = header(headers, 'content-length');
  if (v === undefined || !/^\d+$/.test(v)) return undefined;
  return Number(v);
}

async function errorBody(res: RawResponse): Promise<Buffer> {
  try {
    return await readBody(res.body, ERROR_BODY_LIMIT, 'error body');
  } catch {
    return Buffer.alloc(0);
  }
}

/** Counts and hashes what passes; errors if it is longer, shorter or different than `desc`. */
class VerifyOutgoing extends Transform {
  private readonly digester = new Digester();

  constructor(private readonly desc: Descriptor) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (this.digester.size + chunk.length > this.desc.size) {
      cb(new BerthError('FailedPrecondition', `local content for ${this.desc.digest} is larger than its descriptor size ${this.desc.size}`));
      return;
    }
    this.digester.update(chunk);
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    if (this.digester.size !== this.desc.size) {
      cb(new BerthError('FailedPrecondition', `local content for ${this.desc.digest} has ${this.digester.size} bytes, descriptor says ${this.desc.size}`));
      return;
    }
    const actual = this.digester.digest();
    if (actual !== this.desc.digest) {
      cb(new BerthError('FailedPrecondition', `local content for ${this.desc.digest} has digest ${actual}`));
      return;
    }
    cb();
  }
}

function parseContentRange(v: string | undefined): { start: number; end: number; total?: number } | undefined {
  if (!v) return undefined;
  const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(v.trim());
  if (!m) return undefined;
  const out: { start: number; end: number; total?: number } = { start: Number(m[1]), end: Number(m[2]) };
  if (m[3] !== '*') out.total = Number(m[3]);
  return out;
}

export class RegistryClient {
  /** Slots for concurrent layer transfers (`concurrency`, default 3); use with `limiter.run`. */
  readonly limiter: Limiter;
  readonly authorizer: Authorizer;
  private readonly transport: Transport;
  private readonly retry: RetryPolicy;
  private readonly resumeAttempts: number;
  private readonly log: RemotesLogger;
  private readonly tlsByHost = new Map<string, EndpointTls | undefined>();

  constructor(private readonly options: RegistryClientOptions = {}) {
    this.retry = { ...DEFAULT_RETRY, ...options.retry };
    if (!Number.isInteger(this.retry.attempts) || this.retry.attempts < 1) {
      throw new BerthError('InvalidArgument', `retry attempts must be a positive integer, got ${this.retry.attempts}`);
    }
    this.resumeAttempts = options.resumeAttempts ?? 3;
    this.log = options.logger ?? NOOP_LOGGER;
    this.limiter = new Limiter(options.concurrency ?? DEFAULT_CONCURRENCY);
    this.transport = new Transport({ timeoutMs: options.timeoutMs ?? 30_000, userAgent: options.userAgent ?? 'berth/0.1' });
    const dockerConfig =
      options.dockerConfig === true
        ? dockerConfigCredentials(defaultDockerConfigPath())
        : typeof options.dockerConfig === 'string'
          ? dockerConfigCredentials(options.dockerConfig)
          : undefined;
    const credentials = chainProviders(credentialsProvider(options.credentials), dockerConfig);
    this.authorizer = new Authorizer(credentials, (url, headers, signal, host) => this.tokenRequest(url, headers, signal, host));
  }

  /** GET on a token realm, with the TLS settings of the registry endpoint that sent us there. */
  private async tokenRequest(url: URL, headers: Record<string, string>, signal: AbortSignal | undefined, host: string) {
    const what = `fetching a token for ${host}`;
    for (let tries = 1; ; tries++) {
      throwIfAborted(signal, what);
      try {
        const req: Parameters<Transport['send']>[0] = { method: 'GET', url, headers };
        const t = this.tlsByHost.get(host);
        if (t) req.tls = t;
        if (signal) req.signal = signal;
        const res = await this.transport.send(req);
        if (isRetryableStatus(res.status) && tries < this.retry.attempts) {
          drain(res.body);
          await sleep(backoffDelay(this.retry, tries, res.headers['retry-after']), signal, what);
          continue;
        }
        const body = await readBody(res.body, 1 << 20, `token from ${url.host}`);
        return { status: res.status, statusText: res.statusText, body };
      } catch (err) {
        if (signal?.aborted) throw canceled(signal, what);
        if (err instanceof BerthError) throw err;
        if (isRetryableNetworkError(err) && tries < this.retry.attempts) {
          await sleep(backoffDelay(this.retry, tries), signal, what);
          continue;
        }
        throw new RemoteError('Unavailable', `${what}: GET ${url.origin}${url.pathname} failed: ${(err as Error).message}`, {
          host: url.host,
          transient: isRetryableNetworkError(err),
          cause: err,
        });
      }
    }
  }

  /** Closes idle connections. The client can still be used afterwards (new agents are made). */
  close(): void {
    this.transport.close();
  }

  /** The endpoints of `registry` (mirrors first), optionally only those with a capability. */
  async endpoints(registry: string, capability?: Capability): Promise<RegistryEndpoint[]> {
    const all = await registryEndpoints(registry, this.options);
    return capability ? all.filter((e) => e.capabilities.includes(capability)) : all;
  }

  private async endpointsFor(r: Reference, capability: Capability): Promise<RegistryEndpoint[]> {
    const eps = await this.endpoints(r.domain, capability);
    if (eps.length === 0) {
      throw new BerthError('FailedPrecondition', `no endpoint configured for ${r.domain} has the ${capability} capability`);
    }
    return eps;
  }

  private url(ep: RegistryEndpoint, path: string): URL {
    return new URL(`${ep.scheme}://${ep.host}${ep.path}${path}`);
  }

  /**
   * One registry request with authorization and retries. Returns any response except 401 (turned
   * into PermissionDenied once authorization cannot help) and, after the last try, 5xx/429
   * (turned into Unavailable). Connection failures after the last try are Unavailable too.
   */
  private async request(ep: RegistryEndpoint, spec: RequestSpec): Promise<RawResponse> {
    const url = spec.url ?? this.url(ep, spec.path ?? '');
    const maxTries = spec.retry === false ? 1 : this.retry.attempts;
    let scopes = mergeScopes(spec.scopes);
    let tries = 0;
    let authRounds = 0;
    this.tlsByHost.set(ep.host, ep.tls);
    for (;;) {
      throwIfAborted(spec.signal, spec.what);
      tries++;
      const sameHost = url.host === ep.host;
      const auth = sameHost ? await this.authorizer.authorize(ep.host, scopes, spec.signal) : {};
      const headers: Record<string, string | string[]> = { ...ep.headers, ...spec.headers };
      if (auth.header) headers.authorization = auth.header;
      let res: RawResponse;
      try {
        const req: Parameters<Transport['send']>[0] = { method: spec.method, url, headers };
        if (sameHost && ep.tls) req.tls = ep.tls;
        if (spec.signal) req.signal = spec.signal;
        const body = spec.body?.();
        if (body !== undefined) req.body = body;
        res = await this.transport.send(req);
      } catch (err) {
        if (spec.signal?.aborted) throw canceled(spec.signal, spec.what);
        if (err instanceof BerthError) throw err;
        const text = (err as Error).message;
        if (isRetryableNetworkError(err) && tries < maxTries) {
          const delay = backoffDelay(this.retry, tries);
          this.log.debug({ host: ep.host, err: text, attempt: tries, delay }, 'registry request failed, retrying');
          await sleep(delay, spec.signal, spec.what);
          continue;
        }
        throw new RemoteError(
          'Unavailable',
          `${spec.what}: ${spec.method} ${url.href} failed${tries > 1 ? ` after ${tries} attempts` : ''}: ${text}`,
          { host: ep.host, transient: isRetryableNetworkError(err), cause: err },
        );
      }
      if (res.status === 401) {
        const body = await errorBody(res);
        if (authRounds < 2 && (await this.authorizer.challenged(ep.host, res.headers['www-authenticate'], auth))) {
          authRounds++;
          tries--; // an authorization round is not a failed try
          scopes = mergeScopes([...scopes, ...this.authorizer.challengeScopes(ep.host)]);
          continue;
        }
        const hasCreds = await this.authorizer.hasCredentials(ep.host);
        throw new RemoteError(
          'PermissionDenied',
          `${spec.what}: registry ${ep.host} refused access (401 Unauthorized${describeRegistryErrors(body)}); ` +
            (hasCreds
              ? 'the credentials were refused or do not grant access to this repository'
              : `no credentials are configured for ${ep.host}`),
          { host: ep.host, status: 401 },
        );
      }
      if (isRetryableStatus(res.status)) {
        if (tries < maxTries) {
          const delay = backoffDelay(this.retry, tries, res.headers['retry-after']);
          this.log.debug({ host: ep.host, status: res.status, attempt: tries, delay }, 'registry answered with an error, retrying');
          drain(res.body);
          await sleep(delay, spec.signal, spec.what);
          continue;
        }
        const body = await errorBody(res);
        throw new RemoteError(
          'Unavailable',
          `${spec.what}: registry ${ep.host} answered ${res.status} ${res.statusText}${describeRegistryErrors(body)}` +
            `${tries > 1 ? ` (after ${tries} attempts)` : ''}`,
          { host: ep.host, status: res.status, transient: true },
        );
      }
      return res;
    }
  }

  /** The error for an unexpected status (body consumed). */
  private async statusError(ep: RegistryEndpoint, res: RawResponse, what: string): Promise<RemoteError> {
    const body = await errorBody(res);
    const codes = parseRegistryErrors(body).map((e) => e.code ?? '');
    return new RemoteError(
      kindForStatus(res.status, codes),
      `${what}: registry ${ep.host} answered ${res.status} ${res.statusText}${describeRegistryErrors(body)}`,
      { host: ep.host, status: res.status, transient: isRetryableStatus(res.status) },
    );
  }

  /** Tries each endpoint in turn: NotFound moves on quietly, other errors are remembered. */
  private async firstEndpoint<T>(
    eps: RegistryEndpoint[],
    what: string,
    signal: AbortSignal | undefined,
    fn: (ep: RegistryEndpoint) => Promise<T>,
  ): Promise<T> {
    let firstErr: unknown;
    for (const ep of eps) {
      try {
        return await fn(ep);
      } catch (err) {
        if (signal?.aborted || (err instanceof BerthError && err.kind === 'Canceled')) throw err;
        if (!(err instanceof BerthError && err.kind === 'NotFound')) firstErr ??= err;
        if (eps.length > 1) this.log.debug({ host: ep.host, err: (err as Error).message }, 'trying next host');
      }
    }
    throw firstErr ?? new BerthError('NotFound', `${what}: not found`);
  }

  /**
   * Resolves a tag or digest to the descriptor of its manifest or index: HEAD with containerd's
   * Accept list, GET (and hash) when the registry does not say the type, digest and size. A
   * digest reference must come back with that digest. Schema 1 and unknown types are refused.
   */
  async resolve(ref: string | Reference, options: { signal?: AbortSignal } = {}): Promise<Resolved> {
    const r = toReference(ref);
    const name = formatReference(r);
    const object = r.digest ?? r.tag;
    if (object === undefined) throw new BerthError('InvalidArgument', `resolving ${name}: reference has neither tag nor digest`);
    const eps = await this.endpointsFor(r, 'resolve');
    const descriptor = await this.firstEndpoint(eps, name, options.signal, (ep) =>
      this.resolveAt(ep, r, object, name, options.signal),
    );
    return { name, ref: r, descriptor };
  }

  private async resolveAt(ep: RegistryEndpoint, r: Reference, object: string, name: string, signal?: AbortSignal): Promise<Descriptor> {
    const what = `resolving ${name}`;
    const base: RequestSpec = {
      method: 'HEAD',
      path: `/${r.path}/manifests/${object}`,
      headers: { accept: MANIFEST_ACCEPT.join(', ') },
      scopes: [repositoryScope(r.path, ['pull'])],
      what,
    };
    if (signal) base.signal = signal;
    const head = await this.request(ep, base);
    drain(head.body);
    if (head.status === 404) throw new BerthError('NotFound', `${name}: not found`);
    if (head.status === 200) {
      const mt = baseMediaType(header(head.headers, 'content-type') ?? '');
      const dgst = header(head.headers, 'docker-content-digest');
      const size = contentLength(head.headers);
      if (isSchema1Type(mt)) throw this.schema1(name, ep);
      if (dgst !== undefined && size !== undefined && isManifestOrIndexType(mt)) {
        const desc = { mediaType: mt, digest: dgst, size };
        try {
          parseDescriptor(desc);
        } catch (err) {
          throw new RemoteError('Unavailable', `${what}: registry ${ep.host} sent an invalid Docker-Content-Digest ${JSON.stringify(dgst)}`, {
            host: ep.host,
            cause: err,
          });
        }
        if (r.digest !== undefined && dgst !== r.digest) throw this.digestMismatch(name, ep, dgst, r.digest);
        return desc;
      }
    } else if (head.status !== 405 && head.status !== 501) {
      throw await this.statusError(ep, head, what);
    }

    // The registry did not describe the manifest (or does not do HEAD): fetch it and look.
    const get = await this.request(ep, { ...base, method: 'GET' });
    if (get.status === 404) {
      drain(get.body);
      throw new BerthError('NotFound', `${name}: not found`);
    }
    if (get.status !== 200) throw await this.statusError(ep, get, what);
    const length = contentLength(get.headers);
    if (length !== undefined && length > MAX_MANIFEST_SIZE) {
      drain(get.body);
      throw new BerthError('InvalidArgument', `${what}: manifest of ${length} bytes is larger than the limit of ${MAX_MANIFEST_SIZE}`);
    }
    const body = await readBody(get.body, MAX_MANIFEST_SIZE, `${what}: manifest`);
    const digest = digestOf(body);
    if (r.digest !== undefined && digest !== r.digest) throw this.digestMismatch(name, ep, digest, r.digest);
    const claimed = header(get.headers, 'docker-content-digest');
    if (claimed !== undefined && claimed !== digest) throw this.digestMismatch(name, ep, digest, claimed);
    const declared = baseMediaType(header(get.headers, 'content-type') ?? '');
    const detected = detectManifestType(body);
    if (isSchema1Type(declared) || (detected !== undefined && isSchema1Type(detected))) throw this.schema1(name, ep);
    const mediaType = isManifestOrIndexType(declared) ? declared : detected;
    if (mediaType === undefined || !isManifestOrIndexType(mediaType)) {
      throw new BerthError(
        'NotImplemented',
        `${what}: registry ${ep.host} returned unsupported media type ${JSON.stringify(mediaType ?? declared)}`,
      );
    }
    return { mediaType, digest, size: body.length };
  }

  private schema1(name: string, ep: RegistryEndpoint): BerthError {
    return new RemoteError('NotImplemented', `resolving ${name}: registry ${ep.host} returned a Docker schema 1 manifest, which is not supported`, {
      host: ep.host,
    });
  }

  private digestMismatch(name: string, ep: RegistryEndpoint, actual: string, expected: string): BerthError {
    return new RemoteError(
      'FailedPrecondition',
      `resolving ${name}: registry ${ep.host} returned content with digest ${actual}, expected ${expected}`,
      { host: ep.host },
    );
  }

  /** Opens the body of `desc` at `pos` on one endpoint; `start` is where in the blob it begins. */
  private async openAt(
    ep: RegistryEndpoint,
    r: Reference,
    desc: Descriptor,
    pos: number,
    signal: AbortSignal | undefined,
  ): Promise<{ res: RawResponse; start: number }> {
    const manifest = isManifestOrIndexType(desc.mediaType);
    const what = `fetching ${desc.digest} from ${repositoryName(r)}`;
    const headers: Record<string, string> = {
      accept: manifest ? [desc.mediaType, ...MANIFEST_ACCEPT].join(', ') : '*/*',
    };
    if (pos > 0) headers.range = `bytes=${pos}-`;
    const spec: RequestSpec = {
      method: 'GET',
      path: `/${r.path}/${manifest ? 'manifests' : 'blobs'}/${desc.digest}`,
      headers,
      scopes: [repositoryScope(r.path, ['pull'])],
      what,
    };
    if (signal) spec.signal = signal;
    const res = await this.request(ep, spec);
    if (res.status === 404) {
      drain(res.body);
      throw new BerthError('NotFound', `${what}: ${desc.digest}: not found`);
    }
    const length = contentLength(res.headers);
    if (res.status === 200) {
      if (length !== undefined && length !== desc.size) {
        drain(res.body);
        throw new RemoteError('FailedPrecondition', `${what}: registry ${ep.host} sent ${length} bytes, descriptor size is ${desc.size}`, {
          host: ep.host,
        });
      }
      return { res, start: 0 };
    }
    if (res.status === 206) {
      const range = parseContentRange(header(res.headers, 'content-range'));
      if (!range || range.start !== pos || (range.total !== undefined && range.total !== desc.size) || range.end >= desc.size) {
        drain(res.body);
        throw new RemoteError(
          'FailedPrecondition',
          `${what}: registry ${ep.host} answered range ${JSON.stringify(header(res.headers, 'content-range'))} for bytes=${pos}- of ${desc.size}`,
          { host: ep.host },
        );
      }
      return { res, start: pos };
    }
    throw await this.statusError(ep, res, what);
  }

  /**
   * Streams a blob, manifest or config. The returned stream checks the size as it goes (never
   * passes a byte beyond it) and the digest at the end; a mid-body disconnect is resumed with a
   * Range request up to `resumeAttempts` times, then surfaces as TransferInterruptedError with the
   * offset to resume from. NotFound when no endpoint has it.
   */
  async fetch(ref: string | Reference, descriptor: Descriptor, options: FetchOptions = {}): Promise<FetchStream> {
    const desc = parseDescriptor(descriptor, 'fetch descriptor');
    const r = toReference(ref);
    const offset = options.offset ?? 0;
    if (!Number.isSafeInteger(offset) || offset < 0 || offset > desc.size) {
      throw new BerthError('OutOfRange', `fetch offset ${offset} outside ${desc.digest} of ${desc.size} bytes`);
    }
    if (options.digester && options.digester.size !== offset) {
      throw new BerthError('InvalidArgument', `fetch digester has hashed ${options.digester.size} bytes, offset is ${offset}`);
    }
    const signal = options.signal;
    const maxResumes = options.resumeAttempts ?? this.resumeAttempts;
    const eps = await this.endpointsFor(r, 'pull');
    const what = `fetching ${desc.digest} from ${repositoryName(r)}`;
    let ep!: RegistryEndpoint;
    const first =
      offset === desc.size
        ? undefined
        : await this.firstEndpoint(eps, what, signal, async (e) => {
            const opened = await this.openAt(e, r, desc, offset, signal);
            ep = e;
            return opened;
          });

    // Hashing: from 0, or continuing the caller's state, or — resumed without one — only if the
    // registry resends everything.
    let digester: Digester | undefined = offset === 0 ? new Digester() : options.digester;
    let hashed = digester ? offset : 0;
    const state = { position: offset, resumes: 0, verifiesDigest: digester !== undefined || first?.start === 0 };
    if (first === undefined) state.verifiesDigest = digester !== undefined;
    const client = this;

    async function* body(): AsyncGenerator<Buffer> {
      if (first === undefined) {
        if (digester && digester.digest() !== desc.digest) throw integrity(`digest ${digester.digest()}`);
        return;
      }
      let current = first;
      try {
        for (;;) {
          let cpos = current.start;
          let cut: unknown;
          try {
            for await (const chunk of current.res.body) {
              const buf = chunk as Buffer;
              const end = cpos + buf.length;
              if (end > desc.size) throw integrity(`more than ${desc.size} bytes`);
              if (digester === undefined && cpos === 0) {
                digester = new Digester();
                hashed = 0;
              }
              if (digester && end > hashed && cpos <= hashed) {
                digester.update(buf.subarray(hashed - cpos));
                hashed = end;
              }
              const from = state.position - cpos;
              cpos = end;
              if (from < buf.length) {
                const out = from > 0 ? buf.subarray(from) : buf;
                state.position = end;
                yield out;
              }
            }
          } catch (err) {
            if (err instanceof BerthError) throw err;
            cut = err;
          }
          if (cut === undefined && state.position === desc.size) break;
          // Cut off (error, or an early clean end): resume from where we are.
          if (signal?.aborted) throw canceled(signal, what);
          const reason = cut instanceof Error ? cut.message : 'the response ended early';
          if (cut !== undefined && !isRetryableNetworkError(cut)) {
            throw new TransferInterruptedError(`${what}: ${reason} after ${state.position} of ${desc.size} bytes`, state.position, {
              host: ep.host,
              cause: cut,
            });
          }
          if (state.resumes >= maxResumes) {
            throw new TransferInterruptedError(
              `${what}: connection to ${ep.host} lost after ${state.position} of ${desc.size} bytes (${reason}; ` +
                `${state.resumes} resumes made); resume from offset ${state.position}`,
              state.position,
              { host: ep.host, cause: cut },
            );
          }
          state.resumes++;
          client.log.debug({ host: ep.host, digest: desc.digest, offset: state.position, resumes: state.resumes }, 'resuming download');
          await sleep(backoffDelay(client.retry, state.resumes), signal, what);
          try {
            current = await client.openAt(ep, r, desc, state.position, signal);
          } catch (err) {
            if (err instanceof BerthError && (err.kind === 'Canceled' || err.kind === 'FailedPrecondition')) throw err;
            throw new TransferInterruptedError(
              `${what}: resuming at ${state.position} of ${desc.size} bytes failed: ${(err as Error).message}`,
              state.position,
              { host: ep.host, cause: err },
            );
          }
        }
        if (digester) {
          const actual = digester.digest();
          if (actual !== desc.digest) throw integrity(`digest ${actual}`);
        }
      } finally {
        current.res.body.destroy();
      }
    }

    function integrity(found: string): BerthError {
      return new RemoteError(
        'FailedPrecondition',
        `${what}: registry ${ep?.host ?? r.domain} sent content with ${found}, expected ${desc.digest} of ${desc.size} bytes; the data is invalid`,
        { host: ep?.host ?? r.domain },
      );
    }

    const stream = Readable.from(body(), { objectMode: false, highWaterMark: 64 * 1024 }) as FetchStream;
    // Destroyed before the first read, the generator never ran its cleanup: release the response.
    stream.once('close', () => {
      if (first && !first.res.body.destroyed) first.res.body.destroy();
    });
    Object.defineProperties(stream, {
      position: { get: () => state.position },
      verifiesDigest: { get: () => state.verifiesDigest || digester !== undefined },
      resumes: { get: () => state.resumes },
      host: { get: () => ep?.host ?? r.domain },
    });
    return stream;
  }

  /** A whole (small) document, verified: manifests, indexes, configs. */
  async fetchBytes(
    ref: string | Reference,
    descriptor: Descriptor,
    options: { signal?: AbortSignal; maxSize?: number } = {},
  ): Promise<Buffer> {
    const max = options.maxSize ?? MAX_MANIFEST_SIZE;
    if (descriptor.size > max) {
      throw new BerthError('InvalidArgument', `${descriptor.digest}: size ${descriptor.size} is larger than the limit of ${max} bytes`);
    }
    const fetchOptions: FetchOptions = {};
    if (options.signal) fetchOptions.signal = options.signal;
    const stream = await this.fetch(ref, descriptor, fetchOptions);
    return readBody(stream, max, descriptor.digest);
  }

  /** Whether the repository has the blob or manifest (HEAD). */
  async exists(ref: string | Reference, descriptor: Descriptor, options: { signal?: AbortSignal } = {}): Promise<boolean> {
    const r = toReference(ref);
    const eps = await this.endpointsFor(r, 'pull');
    const desc = parseDescriptor(descriptor);
    try {
      return await this.firstEndpoint(eps, desc.digest, options.signal, async (ep) => {
        const found = await this.headAt(ep, r, desc, [repositoryScope(r.path, ['pull'])], options.signal);
        if (!found) throw new BerthError('NotFound', `${desc.digest}: not found`);
        return true;
      });
    } catch (err) {
      if (err instanceof BerthError && err.kind === 'NotFound') return false;
      throw err;
    }
  }

  private async headAt(ep: RegistryEndpoint, r: Reference, desc: Descriptor, scopes: string[], signal?: AbortSignal): Promise<boolean> {
    const manifest = isManifestOrIndexType(desc.mediaType);
    const what = `checking for ${desc.digest} in ${repositoryName(r)}`;
    const spec: RequestSpec = {
      method: 'HEAD',
      path: `/${r.path}/${manifest ? 'manifests' : 'blobs'}/${desc.digest}`,
      headers: manifest ? { accept: [desc.mediaType, ...MANIFEST_ACCEPT].join(', ') } : {},
      scopes,
      what,
    };
    if (signal) spec.signal = signal;
    const res = await this.request(ep, spec);
    drain(res.body);
    if (res.status === 200) return true;
    if (res.status === 404) return false;
    throw await this.statusError(ep, res, what);
  }

  private async pushEndpoint(r: Reference): Promise<RegistryEndpoint> {
    return (await this.endpointsFor(r, 'push'))[0]!;
  }

  /**
   * Pushes one blob or manifest into the repository of `ref`. Blobs: HEAD (skip when present),
   * cross-repository mount from `mountFrom`, else POST an upload and PUT the whole content
   * (`open(0)`; re-opened when the upload is retried). Manifests and indexes: PUT by digest with
   * their media type (tag them with pushTag). The content is checked against `descriptor` as it
   * is sent; a mismatch aborts the upload with FailedPrecondition.
   */
  async push(
    ref: string | Reference,
    descriptor: Descriptor,
    open: (offset: number) => Readable | Buffer | Promise<Readable | Buffer>,
    options: PushOptions = {},
  ): Promise<PushResult> {
    const desc = parseDescriptor(descriptor, 'push descriptor');
    const r = toReference(ref);
    const ep = await this.pushEndpoint(r);
    const sources = (options.mountFrom ?? [])
      .map((s) => (s.includes('/') && /[.:]/.test(s.split('/')[0]!) ? toReference(s) : { domain: r.domain, path: s }))
      .filter((s) => s.domain === r.domain && s.path !== r.path)
      .map((s) => s.path);
    const scopes = [repositoryScope(r.path, ['pull', 'push']), ...sources.map((s) => repositoryScope(s, ['pull']))];
    if (isManifestOrIndexType(desc.mediaType)) {
      const bytes = await this.readLocal(desc, await open(0));
      const exists = await this.headAt(ep, r, desc, scopes, options.signal);
      if (exists) return { digest: desc.digest, status: 'exists' };
      await this.putManifest(ep, r, desc, desc.digest, bytes, options.signal);
      return { digest: desc.digest, status: 'uploaded' };
    }
    if (await this.headAt(ep, r, desc, scopes, options.signal)) return { digest: desc.digest, status: 'exists' };

    const what = `pushing ${desc.digest} to ${repositoryName(r)}`;
    for (let tries = 1; ; tries++) {
      let local: Readable | undefined;
      let uploading = false;
      try {
        let location: URL | undefined;
        for (const from of sources) {
          const res = await this.request(ep, this.spec(options.signal, {
            method: 'POST',
            path: `/${r.path}/blobs/uploads/?mount=${encodeURIComponent(desc.digest)}&from=${encodeURIComponent(from)}`,
            headers: { 'content-length': '0' },
            scopes,
            what,
          }));
          if (res.status === 201) {
            drain(res.body);
            return { digest: desc.digest, status: 'mounted' };
          }
          if (res.status !== 202) throw await this.statusError(ep, res, `${what} (mount from ${from})`);
          drain(res.body);
          location = this.location(ep, res, what);
          break;
        }
        if (!location) {
          const res = await this.request(ep, this.spec(options.signal, {
            method: 'POST',
            path: `/${r.path}/blobs/uploads/`,
            headers: { 'content-length': '0' },
            scopes,
            what,
          }));
          if (res.status !== 202) throw await this.statusError(ep, res, what);
          drain(res.body);
          location = this.location(ep, res, what);
        }
        location.searchParams.set('digest', desc.digest);
        const source = await open(0);
        local = Buffer.isBuffer(source) ? Readable.from([source]) : source;
        const verified = local.pipe(new VerifyOutgoing(desc));
        local.on('error', (err) => verified.destroy(err));
        uploading = true;
        const res = await this.request(ep, this.spec(options.signal, {
          method: 'PUT',
          url: location,
          headers: { 'content-type': 'application/octet-stream', 'content-length': String(desc.size) },
          scopes,
          body: () => verified,
          retry: false,
          what,
        }));
        if (res.status !== 201 && res.status !== 204) throw await this.statusError(ep, res, what);
        drain(res.body);
        const stored = header(res.headers, 'docker-content-digest');
        if (stored !== undefined && stored !== desc.digest) {
          throw new RemoteError('FailedPrecondition', `${what}: registry ${ep.host} stored ${stored}`, { host: ep.host });
        }
        return { digest: desc.digest, status: 'uploaded' };
      } catch (err) {
        if (local && !local.destroyed) local.destroy();
        // Requests before the upload retried on their own; the one-shot PUT restarts the upload.
        const transient = err instanceof RemoteError ? err.transient : isRetryableNetworkError(err);
        if (!uploading || !transient || tries >= this.retry.attempts || options.signal?.aborted) throw err;
        const delay = backoffDelay(this.retry, tries);
        this.log.debug({ host: ep.host, digest: desc.digest, attempt: tries, delay }, 'blob upload failed, retrying');
        await sleep(delay, options.signal, what);
      }
    }
  }

  /** Points `ref`'s tag at the manifest `descriptor` (fetched by digest first unless `bytes` given). */
  async pushTag(
    ref: string | Reference,
    descriptor: Descriptor,
    bytes?: Buffer,
    options: { signal?: AbortSignal } = {},
  ): Promise<void> {
    const desc = parseDescriptor(descriptor, 'tag descriptor');
    const r = toReference(ref);
    if (r.tag === undefined) throw new BerthError('InvalidArgument', `tagging ${formatReference(r)}: reference has no tag`);
    if (!isManifestOrIndexType(desc.mediaType)) {
      throw new BerthError('InvalidArgument', `tagging ${formatReference(r)}: ${desc.mediaType} is not a manifest or index`);
    }
    let content = bytes;
    if (content === undefined) {
      const fetchOptions: { signal?: AbortSignal } = {};
      if (options.signal) fetchOptions.signal = options.signal;
      content = await this.fetchBytes({ domain: r.domain, path: r.path, digest: desc.digest }, desc, fetchOptions);
    }
    const verified = await this.readLocal(desc, content);
    const ep = await this.pushEndpoint(r);
    await this.putManifest(ep, r, desc, r.tag, verified, options.signal);
  }

  private spec(signal: AbortSignal | undefined, s: RequestSpec): RequestSpec {
    if (signal) s.signal = signal;
    return s;
  }

  private location(ep: RegistryEndpoint, res: RawResponse, what: string): URL {
    const loc = header(res.headers, 'location');
    if (!loc) throw new RemoteError('Unavailable', `${what}: registry ${ep.host} sent no upload location`, { host: ep.host });
    return new URL(loc, `${ep.scheme}://${ep.host}${ep.path}/`);
  }

  /** Reads local content fully (manifests), checking it against its descriptor. */
  private async readLocal(desc: Descriptor, source: Readable | Buffer): Promise<Buffer> {
    const bytes = Buffer.isBuffer(source) ? source : await readBody(source, MAX_MANIFEST_SIZE, `local content ${desc.digest}`);
    if (bytes.length !== desc.size) {
      throw new BerthError('FailedPrecondition', `local content for ${desc.digest} has ${bytes.length} bytes, descriptor says ${desc.size}`);
    }
    const actual = digestOf(bytes);
    if (actual !== desc.digest) throw new BerthError('FailedPrecondition', `local content for ${desc.digest} has digest ${actual}`);
    return bytes;
  }

  private async putManifest(ep: RegistryEndpoint, r: Reference, desc: Descriptor, object: string, bytes: Buffer, signal?: AbortSignal): Promise<void> {
    const what = `pushing manifest ${desc.digest} to ${repositoryName(r)}${object !== desc.digest ? `:${object}` : ''}`;
    const res = await this.request(ep, this.spec(signal, {
      method: 'PUT',
      path: `/${r.path}/manifests/${object}`,
      headers: { 'content-type': desc.mediaType },
      scopes: [repositoryScope(r.path, ['pull', 'push'])],
      body: () => bytes,
      what,
    }));
    if (res.status !== 201 && res.status !== 200 && res.status !== 204) throw await this.statusError(ep, res, what);
    drain(res.body);
    const stored = header(res.headers, 'docker-content-digest');
    if (stored !== undefined && stored !== desc.digest) {
      throw new RemoteError('FailedPrecondition', `${what}: registry ${ep.host} stored it as ${stored}`, { host: ep.host });
    }
  }
}
