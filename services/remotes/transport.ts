// HTTP(S) for the registry client on node:http/node:https: one keep-alive agent per endpoint TLS
// configuration, redirects (dropping credentials across origins), idle timeouts, abort signals,
// and the retry policy (exponential backoff with jitter, Retry-After honoured but bounded).
import { createHash } from 'node:crypto';
import * as http from 'node:http';
import * as https from 'node:https';
import { Readable } from 'node:stream';
import * as tls from 'node:tls';
import { BerthError } from '../errdefs';
import type { EndpointTls } from './hosts';

export interface RetryPolicy {
  /** Total tries of one request (1 = no retry). Default 4. */
  attempts: number;
  /** First backoff delay. Default 200 ms. */
  baseDelayMs: number;
  /** Largest delay between tries (also caps Retry-After). Default 5 s. */
  maxDelayMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 4, baseDelayMs: 200, maxDelayMs: 5000 };

/** The delay before try `n + 1` (n ≥ 1): base·2^(n-1) with ±25 % jitter, or Retry-After. */
export function backoffDelay(policy: RetryPolicy, n: number, retryAfter?: string | string[]): number {
  const header = Array.isArray(retryAfter) ? retryAfter[0] : retryAfter;
  if (header !== undefined && header !== '') {
    const secs = Number(header);
    let ms: number | undefined;
    if (Number.isFinite(secs) && secs >= 0) ms = secs * 1000;
    else {
      const when = Date.parse(header);
      if (!Number.isNaN(when)) ms = Math.max(0, when - Date.now());
    }
    if (ms !== undefined) return Math.min(ms, policy.maxDelayMs);
  }
  const exp = policy.baseDelayMs * 2 ** Math.max(0, n - 1);
  const jitter = exp * (0.75 + Math.random() * 0.5);
  return Math.min(jitter, policy.maxDelayMs);
}

/** The Canceled error for an aborted operation. */
export function canceled(signal: AbortSignal | undefined, what: string): BerthError {
  return new BerthError('Canceled', what, { cause: signal?.reason });
}

export function throwIfAborted(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) throw canceled(signal, what);
}

/** Waits `ms`, or rejects with Canceled as soon as the signal fires. */
export function sleep(ms: number, signal: AbortSignal | undefined, what = 'waiting to retry'): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(canceled(signal, what));
    const onAbort = () => {
      clearTimeout(timer);
      reject(canceled(signal, what));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

const RETRYABLE_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'ENETUNREACH',
  'ENETDOWN',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'EAI_AGAIN',
  'UND_ERR_SOCKET',
  'ERR_STREAM_PREMATURE_CLOSE',
  'HPE_INVALID_CONSTANT',
]);

/** Connection-level failures worth another try (not TLS verification failures, not our own errors). */
export function isRetryableNetworkError(err: unknown): boolean {
  if (err instanceof BerthError) return false;
  const e = err as NodeJS.ErrnoException | undefined;
  if (!e) return false;
  if (e.code && RETRYABLE_CODES.has(e.code)) return true;
  return /socket hang up|aborted|premature close/i.test(e.message ?? '');
}

/** Statuses worth another try: 429 and the transient 5xx. */
export function isRetryableStatus(status: number): boolean {
  return status === 429 || status === 500 || status === 502 || status === 503 || status === 504;
}

export interface SendRequest {
  method: string;
  url: URL;
  headers: Record<string, string | string[]>;
  body?: Buffer | Readable;
  tls?: EndpointTls;
  signal?: AbortSignal;
  /** Idle socket timeout; default 30 s. */
  timeoutMs?: number;
  /** Redirects followed for GET/HEAD; default 5. */
  maxRedirects?: number;
}

export interface RawResponse {
  status: number;
  statusText: string;
  headers: http.IncomingHttpHeaders;
  body: http.IncomingMessage;
  /** The URL finally answered (after redirects). */
  url: URL;
}

function fingerprint(scheme: string, t?: EndpointTls): string {
  if (!t) return scheme;
  const h = createHash('sha256');
  h.update(scheme);
  h.update(t.skipVerify ? '1' : '0');
  for (const c of t.ca ?? []) h.update(c).update('\0ca');
  for (const p of t.certs) h.update(p.cert).update('\0c').update(p.key).update('\0k');
  return h.digest('hex');
}

/** Sends single requests; owns the agents. */
export class Transport {
  private readonly agents = new Map<string, http.Agent>();

  constructor(private readonly defaults: { timeoutMs: number; userAgent: string }) {}

  agent(scheme: 'http' | 'https', t?: EndpointTls): http.Agent {
    const key = fingerprint(scheme, t);
    let a = this.agents.get(key);
    if (!a) {
      if (scheme === 'http') {
        a = new http.Agent({ keepAlive: true, maxSockets: 16 });
      } else {
        const opts: https.AgentOptions = { keepAlive: true, maxSockets: 16 };
        if (t?.ca && t.ca.length > 0) opts.ca = [...tls.rootCertificates, ...t.ca.map((b) => b.toString('utf8'))];
        if (t && t.certs.length > 0) {
          opts.cert = t.certs.map((c) => c.cert);
          opts.key = t.certs.map((c) => c.key);
        }
        if (t?.skipVerify) opts.rejectUnauthorized = false;
        a = new https.Agent(opts);
      }
      this.agents.set(key, a);
    }
    return a;
  }

  close(): void {
    for (const a of this.agents.values()) a.destroy();
    this.agents.clear();
  }

  /** One request; follows redirects for GET and HEAD. Rejects on connection errors only. */
  async send(req: SendRequest): Promise<RawResponse> {
    let url = req.url;
    let headers = { ...req.headers };
    let tlsConfig = req.tls;
    const origin = url.origin;
    const maxRedirects = req.maxRedirects ?? 5;
    for (let hop = 0; ; hop++) {
      const res = await this.once(req.method, url, headers, req.body, tlsConfig, req.signal, req.timeoutMs);
      const loc = res.headers.location;
      const redirect = [301, 302, 303, 307, 308].includes(res.status) && loc !== undefined;
      if (!redirect || (req.method !== 'GET' && req.method !== 'HEAD') || hop >= maxRedirects) return res;
      res.body.resume();
      const next = new URL(loc, url);
      if (next.origin !== origin) {
        // Credentials belong to the registry, not to where it sends us (blob storage).
        const { authorization: _drop, ...rest } = headers;
        void _drop;
        headers = rest;
        if (next.host !== url.host) tlsConfig = undefined;
      }
      url = next;
    }
  }

  private once(
    method: string,
    url: URL,
    headers: Record<string, string | string[]>,
    body: Buffer | Readable | undefined,
    t: EndpointTls | undefined,
    signal: AbortSignal | undefined,
    timeoutMs: number | undefined,
  ): Promise<RawResponse> {
    return new Promise((resolve, reject) => {
      const scheme = url.protocol === 'http:' ? 'http' : 'https';
      const mod = scheme === 'http' ? http : https;
      const h: Record<string, string | string[]> = { 'user-agent': this.defaults.userAgent, ...headers };
      if (Buffer.isBuffer(body)) h['content-length'] = String(body.length);
      let settled = false;
      const req = mod.request(url, { method, headers: h, agent: this.agent(scheme, t), signal });
      const timeout = timeoutMs ?? this.defaults.timeoutMs;
      req.setTimeout(timeout, () => {
        const err = new Error(`no data from ${url.host} for ${timeout} ms`) as NodeJS.ErrnoException;
        err.code = 'ETIMEDOUT';
        req.destroy(err);
      });
      req.once('response', (res) => {
        settled = true;
        resolve({ status: res.statusCode ?? 0, statusText: res.statusMessage ?? '', headers: res.headers, body: res, url });
      });
      req.on('error', (err) => {
        if (!settled) {
          settled = true;
          reject(err);
        }
      });
      if (body === undefined) {
        req.end();
      } else if (Buffer.isBuffer(body)) {
        req.end(body);
      } else {
        body.on('error', (err) => req.destroy(err));
        req.once('close', () => {
          if (!body.destroyed && !body.readableEnded) body.destroy();
        });
        body.pipe(req);
      }
    });
  }
}

/** Reads a whole body, refusing more than `limit` bytes. */
export async function readBody(body: Readable, limit: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of body) {
    const b = c as Buffer;
    n += b.length;
    if (n > limit) {
      body.destroy();
      throw new BerthError('InvalidArgument', `${what}: larger than ${limit} bytes`);
    }
    chunks.push(b);
  }
  return Buffer.concat(chunks);
}

/** Drains and discards a response body (so the connection can be reused), ignoring errors. */
export function drain(body: Readable): void {
  body.on('error', () => {});
  body.resume();
}
