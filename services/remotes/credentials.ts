// Registry credentials: given in code, or read from a Docker CLI config.json (`auths` entries
// with a base64 `auth` or username/password, `credHelpers`/`credsStore` helper programs).
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BerthError } from '../errdefs';

export interface Credentials {
  username: string;
  /** Password or token. */
  secret: string;
}

/** Credentials for a host (`127.0.0.1:5000`, `registry-1.docker.io`), or undefined for anonymous. */
export type CredentialsProvider = (host: string) => Promise<Credentials | undefined>;

/** Docker's names for Docker Hub, all meaning docker.io. */
const DOCKER_HUB_ALIASES = ['docker.io', 'index.docker.io', 'registry-1.docker.io', 'registry.hub.docker.com'];
const DOCKER_HUB_KEY = 'https://index.docker.io/v1/';

/** A config.json key reduced to host[:port] (`https://index.docker.io/v1/` → `index.docker.io`). */
export function normalizeAuthKey(key: string): string {
  let k = key.trim().replace(/^[a-z][a-z0-9+.-]*:\/\//i, '');
  const slash = k.indexOf('/');
  if (slash >= 0) k = k.slice(0, slash);
  k = k.toLowerCase();
  return DOCKER_HUB_ALIASES.includes(k) ? 'docker.io' : k;
}

export interface DockerConfig {
  auths?: Record<string, { auth?: string; username?: string; password?: string; identitytoken?: string; registrytoken?: string }>;
  credHelpers?: Record<string, string>;
  credsStore?: string;
}

function decodeAuth(auth: string, key: string): Credentials {
  const text = Buffer.from(auth, 'base64').toString('utf8');
  const i = text.indexOf(':');
  if (i <= 0) throw new BerthError('InvalidArgument', `docker config: invalid "auth" for ${JSON.stringify(key)}: expected base64 of user:password`);
  return { username: text.slice(0, i), secret: text.slice(i + 1) };
}

/**
 * The credentials config.json stores inline for `host` (no helper programs): a matching `auths`
 * entry's `auth` (base64 user:password) or `username`/`password`. Keys match by host[:port]
 * whatever their scheme or path; Docker Hub's aliases all match `docker.io`. Identity (OAuth
 * refresh) tokens are not supported.
 */
export function credentialsFromDockerConfig(config: DockerConfig, host: string): Credentials | undefined {
  const want = normalizeAuthKey(host);
  for (const [key, entry] of Object.entries(config.auths ?? {})) {
    if (normalizeAuthKey(key) !== want || !entry) continue;
    if (entry.auth) return decodeAuth(entry.auth, key);
    if (entry.username !== undefined && entry.password !== undefined) return { username: entry.username, secret: entry.password };
  }
  return undefined;
}

/** The credential helper program config.json names for `host`, if any. */
export function credentialHelperFor(config: DockerConfig, host: string): string | undefined {
  const want = normalizeAuthKey(host);
  for (const [key, helper] of Object.entries(config.credHelpers ?? {})) {
    if (normalizeAuthKey(key) === want) return helper;
  }
  return config.credsStore || undefined;
}

/** Runs `docker-credential-<helper> get` with the server on stdin. */
export function runCredentialHelper(helper: string, server: string, timeoutMs = 10_000): Promise<Credentials | undefined> {
  return new Promise((resolve, reject) => {
    const child = execFile(`docker-credential-${helper}`, ['get'], { timeout: timeoutMs, maxBuffer: 1 << 20, env: process.env }, (err, stdout) => {
      if (err) {
        const out = String(stdout ?? '').trim();
        // Helpers print "credentials not found in native keychain" and exit 1 when they have none.
        if (/not found/i.test(out) || /not found/i.test(err.message)) return resolve(undefined);
        return reject(new BerthError('Unavailable', `credential helper docker-credential-${helper}: ${err.message}`));
      }
      try {
        const v = JSON.parse(String(stdout)) as { Username?: string; Secret?: string };
        if (!v.Secret) return resolve(undefined);
        if (v.Username === '<token>') {
          // An identity (OAuth refresh) token: not supported by this client.
          return resolve(undefined);
        }
        resolve({ username: v.Username ?? '', secret: v.Secret });
      } catch {
        reject(new BerthError('Unavailable', `credential helper docker-credential-${helper} printed invalid JSON`));
      }
    });
    child.stdin?.end(server);
  });
}

/** `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`. */
export function defaultDockerConfigPath(): string {
  const dir = process.env.DOCKER_CONFIG || path.join(os.homedir(), '.docker');
  return path.join(dir, 'config.json');
}

/**
 * Credentials from a Docker config.json, re-read on each lookup (a `docker login` in between is
 * seen). A missing file means no credentials; a malformed one is InvalidArgument.
 */
export function dockerConfigCredentials(configPath: string = defaultDockerConfigPath()): CredentialsProvider {
  return async (host: string) => {
    let text: string;
    try {
      text = await fs.promises.readFile(configPath, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new BerthError('InvalidArgument', `reading docker config ${configPath}: ${(err as Error).message}`);
    }
    let config: DockerConfig;
    try {
      config = JSON.parse(text) as DockerConfig;
    } catch (err) {
      throw new BerthError('InvalidArgument', `docker config ${configPath} is not valid JSON: ${(err as Error).message}`);
    }
    const inline = credentialsFromDockerConfig(config, host);
    if (inline) return inline;
    const helper = credentialHelperFor(config, host);
    if (helper) {
      const server = normalizeAuthKey(host) === 'docker.io' ? DOCKER_HUB_KEY : host;
      return runCredentialHelper(helper, server);
    }
    return undefined;
  };
}

/** Credentials given in code: one pair for every host, a map by host, or a function. */
export type CredentialsOption =
  | Credentials
  | Record<string, Credentials>
  | ((host: string) => Credentials | undefined | Promise<Credentials | undefined>);

export function credentialsProvider(option: CredentialsOption | undefined): CredentialsProvider | undefined {
  if (option === undefined) return undefined;
  if (typeof option === 'function') return async (host) => option(host);
  if (typeof (option as Credentials).username === 'string' && typeof (option as Credentials).secret === 'string') {
    const c = option as Credentials;
    return async () => c;
  }
  const map = new Map<string, Credentials>();
  for (const [k, v] of Object.entries(option as Record<string, Credentials>)) map.set(normalizeAuthKey(k), v);
  return async (host) => map.get(normalizeAuthKey(host));
}

/** The first provider that has credentials for the host wins. */
export function chainProviders(...providers: Array<CredentialsProvider | undefined>): CredentialsProvider {
  const list = providers.filter((p): p is CredentialsProvider => p !== undefined);
  return async (host) => {
    for (const p of list) {
      const c = await p(host);
      if (c) return c;
    }
    return undefined;
  };
}
