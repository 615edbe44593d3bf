// Registry authorization, as Docker's token protocol describes it: a request answered 401 carries
// `WWW-Authenticate: Bearer realm="…",service="…",scope="…"` (or `Basic realm="…"`); the client
// fetches a token from the realm for the scopes it needs (anonymously, or with basic
// credentials) and retries with `Authorization: Bearer <token>`. Tokens are cached per
// realm/service/scope set until shortly before they expire; the scheme learnt for a host is
// remembered so later requests authorize up front.
import { BerthError } from '../errdefs';
import type { Credentials, CredentialsProvider } from './credentials';

export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/**
 * Parses WWW-Authenticate values (RFC 7235): `Bearer realm="x",service="y", Basic realm="z"`.
 * Scheme names are lower-cased; parameter names too.
 */
export function parseChallenges(header: string | string[] | undefined): Challenge[] {
  if (header === undefined) return [];
  const values = Array.isArray(header) ? header : [header];
  const out: Challenge[] = [];
  for (const value of values) {
    let i = 0;
    const s = value;
    const skipWs = () => {
      while (i < s.length && (s[i] === ' ' || s[i] === '\t')) i++;
    };
    const token = (): string => {
      const start = i;
      while (i < s.length && /[!#$%&'*+\-.^_`|~0-9A-Za-z]/.test(s[i]!)) i++;
      return s.slice(start, i);
    };
    let current: Challenge | undefined;
    while (i < s.length) {
      skipWs();
      if (s[i] === ',') {
        i++;
        continue;
      }
      const name = token();
      if (name === '') {
        i++; // skip garbage
        continue;
      }
      skipWs();
      if (s[i] === '=' && current) {
        // auth-param
        i++;
        skipWs();
        let val = '';
        if (s[i] === '"') {
          i++;
          while (i < s.length && s[i] !== '"') {
            if (s[i] === '\\' && i + 1 < s.length) i++;
            val += s[i];
            i++;
          }
          i++; // closing quote
        } else {
          val = token();
        }
        current.params[name.toLowerCase()] = val;
        continue;
      }
      // A new challenge: scheme, then its params
      current = { scheme: name.toLowerCase(), params: {} };
      out.push(current);
    }
  }
  return out;
}

/** `repository:<path>:<actions>` */
export function repositoryScope(repoPath: string, actions: string[]): string {
  return `repository:${repoPath}:${actions.join(',')}`;
}

/** Merges scopes naming the same resource (`repository:a:pull` + `repository:a:push` → `…:pull,push`). */
export function mergeScopes(scopes: Iterable<string>): string[] {
  const byResource = new Map<string, Set<string>>();
  const plain = new Set<string>();
  for (const scope of scopes) {
    for (const one of scope.split(' ')) {
      if (one === '') continue;
      const last = one.lastIndexOf(':');
      const first = one.indexOf(':');
      if (first < 0 || last === first) {
        plain.add(one);
        continue;
      }
      const resource = one.slice(0, last);
      const actions = one.slice(last + 1).split(',').filter((a) => a !== '');
      const set = byResource.get(resource) ?? new Set<string>();
      for (const a of actions) set.add(a);
      byResource.set(resource, set);
    }
  }
  const out = [...plain];
  for (const [resource, actions] of byResource) out.push(`${resource}:${[...actions].sort().join(',')}`);
  return out.sort();
}

/** How the authorizer performs the token request (the registry client supplies its transport). */
export type TokenRequester = (
  url: URL,
  headers: Record<string, string>,
  signal: AbortSignal | undefined,
  /** The registry host whose challenge named this realm. */
  host: string,
) => Promise<{ status: number; statusText: string; body: Buffer }>;

interface HostAuth {
  scheme: 'basic' | 'bearer';
  realm: string;
  service?: string;
  /** Scopes the registry asked for in its last challenge. */
  scopes: string[];
}

interface CachedToken {
  token: string;
  expiresAt: number;
}

/** What one request carried, so a 401 can tell a stale token from missing rights. */
export interface AuthAttempt {
  header?: string;
  cacheKey?: string;
  /** The token was fetched for this request (not taken from the cache). */
  fresh?: boolean;
}

const MIN_TOKEN_LIFETIME_S = 60;
const EXPIRY_MARGIN_MS = 10_000;

function basicHeader(c: Credentials): string {
  return `Basic ${Buffer.from(`${c.username}:${c.secret}`).toString('base64')}`;
}

export class Authorizer {
  private readonly hosts = new Map<string, HostAuth>();
  private readonly tokens = new Map<string, CachedToken>();
  private readonly inflight = new Map<string, Promise<CachedToken>>();
  /** Token requests made (for tests and diagnostics). */
  tokenRequests = 0;

  constructor(
    private readonly credentials: CredentialsProvider,
    private readonly requestToken: TokenRequester,
    private readonly now: () => number = Date.now,
  ) {}

  /** The Authorization header to send to `host` for `scopes`, if its scheme is known yet. */
  async authorize(host: string, scopes: string[], signal?: AbortSignal): Promise<AuthAttempt> {
    const state = this.hosts.get(host);
    if (!state) return {};
    if (state.scheme === 'basic') {
      const creds = await this.credentials(host);
      return creds ? { header: basicHeader(creds) } : {};
    }
    const all = mergeScopes([...scopes]);
    const key = `${state.realm}|${state.service ?? ''}|${all.join(' ')}`;
    const cached = this.tokens.get(key);
    if (cached && cached.expiresAt > this.now()) return { header: `Bearer ${cached.token}`, cacheKey: key, fresh: false };
    const tok = await this.fetchToken(host, state, all, key, signal);
    return { header: `Bearer ${tok.token}`, cacheKey: key, fresh: true };
  }

  /**
   * Learns from a 401. Returns true when a retry with (new) authorization can help: the scheme was
   * unknown, the cached token was stale, or the registry asks for scopes the token lacked.
   */
  async challenged(host: string, header: string | string[] | undefined, attempt: AuthAttempt): Promise<boolean> {
    const challenges = parseChallenges(header);
    const bearer = challenges.find((c) => c.scheme === 'bearer' && c.params.realm);
    const basic = challenges.find((c) => c.scheme === 'basic');
    const before = this.hosts.get(host);
    if (bearer) {
      const next: HostAuth = {
        scheme: 'bearer',
        realm: bearer.params.realm!,
        scopes: bearer.params.scope ? bearer.params.scope.split(' ') : [],
      };
      if (bearer.params.service !== undefined) next.service = bearer.params.service;
      this.hosts.set(host, next);
      if (attempt.cacheKey) {
        // The token we sent was refused: drop it. A cached one may just have expired early;
        // a fresh one helps only if the registry asks for scopes it did not cover.
        this.tokens.delete(attempt.cacheKey);
        if (!attempt.fresh) return true;
        const sent = new Set(attempt.cacheKey.split('|')[2]!.split(' '));
        const wanted = mergeScopes([...sent, ...next.scopes]);
        return wanted.some((s) => !sent.has(s));
      }
      return !before || before.scheme !== 'bearer' || attempt.header === undefined;
    }
    if (basic) {
      this.hosts.set(host, { scheme: 'basic', realm: basic.params.realm ?? '', scopes: [] });
      if (attempt.header !== undefined) return false; // our credentials were refused
      return (await this.credentials(host)) !== undefined;
    }
    return false;
  }

  /** The scopes the last challenge from `host` asked for (merged into token requests). */
  challengeScopes(host: string): string[] {
    return this.hosts.get(host)?.scopes ?? [];
  }

  /** Whether credentials exist for `host` (for error messages). */
  async hasCredentials(host: string): Promise<boolean> {
    return (await this.credentials(host)) !== undefined;
  }

  private fetchToken(host: string, state: HostAuth, scopes: string[], key: string, signal?: AbortSignal): Promise<CachedToken> {
    const pending = this.inflight.get(key);
    if (pending) return pending;
    const p = this.doFetchToken(host, state, scopes, signal).then(
      (tok) => {
        this.tokens.set(key, tok);
        return tok;
      },
    );
    this.inflight.set(key, p);
    const clear = () => this.inflight.delete(key);
    p.then(clear, clear);
    return p;
  }

  private async doFetchToken(host: string, state: HostAuth, scopes: string[], signal?: AbortSignal): Promise<CachedToken> {
    let url: URL;
    try {
      url = new URL(state.realm);
    } catch {
      throw new BerthError('Unavailable', `registry ${host} sent an invalid token realm ${JSON.stringify(state.realm)}`);
    }
    if (state.service !== undefined) url.searchParams.set('service', state.service);
    for (const s of scopes) url.searchParams.append('scope', s);
    const creds = await this.credentials(host);
    const headers: Record<string, string> = { accept: 'application/json' };
    if (creds) {
      headers.authorization = basicHeader(creds);
      url.searchParams.set('account', creds.username);
    }
    this.tokenRequests++;
    const started = this.now();
    const res = await this.requestToken(url, headers, signal, host);
    if (res.status === 401 || res.status === 403) {
      const who = creds ? `credentials for user ${JSON.stringify(creds.username)} were refused` : 'anonymous access was refused';
      throw new BerthError(
        'PermissionDenied',
        `authorization with ${host} failed: token server ${url.origin}${url.pathname} answered ${res.status} ${res.statusText}: ${who}`,
      );
    }
    if (res.status < 200 || res.status > 299) {
      throw new BerthError(
        res.status >= 500 ? 'Unavailable' : 'Unknown',
        `fetching a token for ${host} from ${url.origin}${url.pathname}: ${res.status} ${res.statusText}`,
      );
    }
    let body: { token?: string; access_token?: string; expires_in?: number; issued_at?: string };
    try {
      body = JSON.parse(res.body.toString('utf8')) as typeof body;
    } catch {
      throw new BerthError('Unavailable', `token server for ${host} sent invalid JSON`);
    }
    const token = body.token || body.access_token;
    if (!token) throw new BerthError('Unavailable', `token server for ${host} sent no token`);
    const lifetime = Math.max(typeof body.expires_in === 'number' ? body.expires_in : MIN_TOKEN_LIFETIME_S, 1);
    return { token, expiresAt: started + lifetime * 1000 - Math.min(EXPIRY_MARGIN_MS, (lifetime * 1000) / 2) };
  }
}
