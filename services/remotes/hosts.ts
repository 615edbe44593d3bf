// Which endpoints serve a registry, and how to talk to each: containerd's host configuration.
//
// A registry name (`docker.io`, `127.0.0.1:5000`) maps to an ordered list of endpoints: mirrors
// first, the registry's own server last. They come from, in order of precedence:
//   1. `hosts` in the client options (code), keyed by registry name;
//   2. `<hostsDir>/<host>/hosts.toml` (containerd's layout; `<host>` may also be spelled
//      `host_port_`, and `_default` applies to registries without a directory), or Docker's
//      certs.d files (`*.crt` CAs, `*.cert`/`*.key` client pairs) in that directory;
//   3. the default: `https://<registry>/v2` (docker.io → registry-1.docker.io), or plain HTTP
//      when the `plainHttp` option says so for that registry.
//
// hosts.toml (read fresh on every lookup, as containerd does, so edits need no restart):
//   server = "https://registry.example.com"          # upstream; default https://<host>
//   ca = "/etc/certs/ca.pem"                         # or a list; relative to the host dir
//   client = [["client.cert", "client.key"]]         # or "both.pem", or ["a.pem", "b.pem"]
//   skip_verify = false
//   [host."http://127.0.0.1:5001"]                   # mirrors, tried in file order
//     capabilities = ["pull", "resolve"]             # default: pull, resolve, push
//     override_path = false                          # true: the URL path is the API root
//     [host."http://127.0.0.1:5001".header]
//       x-custom = "value"
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { BerthError } from '../errdefs';

export type Capability = 'pull' | 'resolve' | 'push';
export const ALL_CAPABILITIES: readonly Capability[] = ['pull', 'resolve', 'push'];

/** PEM data (a Buffer, or a string starting with `-----BEGIN`) or a path to a PEM file. */
export type PemSource = string | Buffer;

/** TLS and header settings shared by every kind of endpoint entry. */
export interface HostSettings {
  /** Capabilities of this endpoint; default all three. */
  capabilities?: Capability[];
  /** CA certificates trusted in addition to the system roots. */
  ca?: PemSource | PemSource[];
  /** Client certificate/key pairs for mutual TLS (`key` omitted: the key is in the cert file). */
  client?: Array<{ cert: PemSource; key?: PemSource }>;
  /** Do not verify the server's certificate chain and name. */
  skipVerify?: boolean;
  /** Extra headers sent on every request to this endpoint. */
  headers?: Record<string, string | string[]>;
}

/** A mirror given in code. */
export interface MirrorConfig extends HostSettings {
  /** `https://mirror.example.com`, `http://127.0.0.1:5001`, or a bare host (https). */
  url: string;
  /** The URL's path is the API root as is (no `/v2` appended). */
  overridePath?: boolean;
}

/** Per-registry configuration given in code (`RegistryClientOptions.hosts[registry]`). */
export interface RegistryHostConfig extends HostSettings {
  /** Talk plain HTTP to the registry's own server. */
  plainHttp?: boolean;
  /** The upstream server URL; default `<scheme>://<registry>`. */
  server?: string;
  /** Endpoints tried before the server, in order. */
  mirrors?: Array<string | MirrorConfig>;
}

export interface EndpointTls {
  ca?: Buffer[];
  certs: Array<{ cert: Buffer; key: Buffer }>;
  skipVerify: boolean;
}

/** One place to send requests for a registry. */
export interface RegistryEndpoint {
  /** The registry name from the reference (`docker.io`). */
  registry: string;
  scheme: 'http' | 'https';
  /** host[:port] actually contacted (`registry-1.docker.io`). */
  host: string;
  /** API root path, normally `/v2`. */
  path: string;
  capabilities: Capability[];
  tls?: EndpointTls;
  headers: Record<string, string[]>;
  /** True for mirrors (entries before the registry's own server). */
  mirror: boolean;
}

/** An endpoint entry before its certificate files are read. */
export interface EndpointSpec {
  /** Empty for "the registry itself" (filled in with defaults). */
  scheme: 'http' | 'https' | '';
  host: string;
  path: string;
  capabilities: Capability[];
  ca?: PemSource[];
  client?: Array<{ cert: PemSource; key?: PemSource }>;
  skipVerify?: boolean;
  headers: Record<string, string[]>;
}

export interface HostsOptions {
  /** containerd's `--hosts-dir` / `config_path` (e.g. /etc/containerd/certs.d). */
  hostsDir?: string;
  /** Per-registry configuration in code; takes precedence over hostsDir. */
  hosts?: Record<string, RegistryHostConfig>;
  /**
   * Plain HTTP for the default endpoint of these registries: true (all), a list of registry
   * names, or a predicate. hosts.toml and `hosts` entries with explicit URLs are not affected.
   */
  plainHttp?: boolean | string[] | ((registry: string) => boolean);
}

function invalidConfig(where: string, why: string): BerthError {
  return new BerthError('InvalidArgument', `registry host configuration ${where}: ${why}`);
}

function parseCapabilities(v: unknown, where: string): Capability[] {
  if (v === undefined) return [...ALL_CAPABILITIES];
  if (!Array.isArray(v)) throw invalidConfig(where, 'capabilities must be a list');
  if (v.length === 0) return [...ALL_CAPABILITIES];
  const out = new Set<Capability>();
  for (const c of v) {
    const l = String(c).toLowerCase();
    if (l !== 'pull' && l !== 'resolve' && l !== 'push') throw invalidConfig(where, `unknown capability ${JSON.stringify(c)}`);
    out.add(l);
  }
  return [...out];
}

function parseHeaders(v: unknown, where: string): Record<string, string[]> {
  if (v === undefined) return {};
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw invalidConfig(where, 'header must be a table');
  const out: Record<string, string[]> = {};
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
    if (typeof x === 'string') out[k.toLowerCase()] = [x];
    else if (Array.isArray(x) && x.every((s) => typeof s === 'string')) out[k.toLowerCase()] = x as string[];
    else throw invalidConfig(where, `invalid value for header ${JSON.stringify(k)}`);
  }
  return out;
}

function isPem(s: PemSource): boolean {
  return Buffer.isBuffer(s) || s.trimStart().startsWith('-----BEGIN');
}

function absolute(p: PemSource, baseDir: string | undefined): PemSource {
  if (isPem(p) || baseDir === undefined || path.isAbsolute(p as string)) return p;
  return path.join(baseDir, p as string);
}

function parseCa(v: unknown, where: string, baseDir?: string): PemSource[] | undefined {
  if (v === undefined) return undefined;
  const list = Array.isArray(v) ? v : [v];
  return list.map((x) => {
    if (typeof x !== 'string' && !Buffer.isBuffer(x)) throw invalidConfig(where, `invalid type for "ca"`);
    return absolute(x, baseDir);
  });
}

/** hosts.toml `client`: "both.pem" | ["a.pem", "b.pem"] | [["cert", "key"], …]. */
function parseClientToml(v: unknown, where: string, baseDir: string): Array<{ cert: PemSource; key?: PemSource }> | undefined {
  if (v === undefined) return undefined;
  if (typeof v === 'string') return [{ cert: absolute(v, baseDir) }];
  if (!Array.isArray(v)) throw invalidConfig(where, 'invalid type for "client"');
  return v.map((entry) => {
    if (typeof entry === 'string') return { cert: absolute(entry, baseDir) };
    if (Array.isArray(entry) && entry.length === 2 && entry.every((s) => typeof s === 'string')) {
      return { cert: absolute(entry[0] as string, baseDir), key: absolute(entry[1] as string, baseDir) };
    }
    throw invalidConfig(where, `invalid pair ${JSON.stringify(entry)} for "client"`);
  });
}

/** Splits an endpoint URL into scheme, host and API path (containerd's parseHostConfig). */
export function parseEndpointURL(server: string, overridePath: boolean, where: string): { scheme: 'http' | 'https'; host: string; path: string } {
  const withScheme = /^https?:\/\//i.test(server) ? server : `https://${server}`;
  let u: URL;
  try {
    u = new URL(withScheme);
  } catch {
    throw invalidConfig(where, `unable to parse server ${JSON.stringify(server)}`);
  }
  const scheme = u.protocol === 'http:' ? 'http' : 'https';
  let p = u.pathname;
  if (p !== '' && p !== '/') {
    p = path.posix.normalize(p).replace(/\/+$/, '');
    if (!p.endsWith('/v2') && !overridePath) p += '/v2';
  } else {
    p = overridePath ? '' : '/v2';
  }
  return { scheme, host: u.host, path: p };
}

function entryFromTable(server: string, table: Record<string, unknown>, baseDir: string, where: string): EndpointSpec {
  const overridePath = table.override_path === true;
  const spec: EndpointSpec = {
    scheme: '',
    host: '',
    path: '',
    capabilities: parseCapabilities(table.capabilities, where),
    headers: parseHeaders(table.header, where),
  };
  if (server !== '') Object.assign(spec, parseEndpointURL(server, overridePath, where));
  const ca = parseCa(table.ca, where, baseDir);
  if (ca) spec.ca = ca;
  const client = parseClientToml(table.client, where, baseDir);
  if (client) spec.client = client;
  if (table.skip_verify !== undefined) {
    if (typeof table.skip_verify !== 'boolean') throw invalidConfig(where, 'skip_verify must be a boolean');
    spec.skipVerify = table.skip_verify;
  }
  return spec;
}

/**
 * Parses a hosts.toml: the `[host."…"]` entries in file order, then the root `server` entry
 * (host empty when `server` is not set, to be defaulted). Relative paths are made absolute
 * against `baseDir`, the file's directory.
 */
export function parseHostsToml(text: string, baseDir: string): EndpointSpec[] {
  const where = path.join(baseDir, 'hosts.toml');
  let doc: Record<string, unknown>;
  try {
    doc = parseToml(text) as Record<string, unknown>;
  } catch (err) {
    throw invalidConfig(where, `failed to parse TOML: ${(err as Error).message}`);
  }
  const out: EndpointSpec[] = [];
  const hostTable = doc.host;
  if (hostTable !== undefined) {
    if (hostTable === null || typeof hostTable !== 'object' || Array.isArray(hostTable)) throw invalidConfig(where, 'invalid `host` tree');
    // JavaScript objects keep string keys in insertion (= file) order.
    for (const [url, table] of Object.entries(hostTable as Record<string, unknown>)) {
      if (table === null || typeof table !== 'object' || Array.isArray(table)) throw invalidConfig(where, `host ${JSON.stringify(url)} must be a table`);
      out.push(entryFromTable(url, table as Record<string, unknown>, baseDir, `${where} host ${JSON.stringify(url)}`));
    }
  }
  const server = doc.server;
  if (server !== undefined && typeof server !== 'string') throw invalidConfig(where, 'server must be a string');
  out.push(entryFromTable(server ?? '', doc, baseDir, where));
  return out;
}

/** Docker's certs.d layout: `*.crt` are CAs, `*.cert` + `*.key` are client pairs. */
export function loadCertFiles(dir: string): EndpointSpec[] {
  const spec: EndpointSpec = { scheme: '', host: '', path: '', capabilities: [...ALL_CAPABILITIES], headers: {} };
  const names = fs.readdirSync(dir).sort();
  for (const name of names) {
    const full = path.join(dir, name);
    if (name.endsWith('.crt')) {
      (spec.ca ??= []).push(full);
    } else if (name.endsWith('.cert')) {
      const key = path.join(dir, `${name.slice(0, -'.cert'.length)}.key`);
      if (!fs.existsSync(key)) throw invalidConfig(dir, `missing key ${path.basename(key)} for client certificate ${name}`);
      (spec.client ??= []).push({ cert: full, key });
    } else if (name.endsWith('.key')) {
      const cert = `${name.slice(0, -'.key'.length)}.cert`;
      if (!names.includes(cert)) throw invalidConfig(dir, `missing client certificate ${cert} for key ${name}`);
    }
  }
  return [spec];
}

/** The directories containerd tries for a registry: `host_port_`, `host:port`, then `_default`. */
export function hostDirCandidates(root: string, registry: string): string[] {
  const out: string[] = [];
  const i = registry.lastIndexOf(':');
  if (i > 0 && !registry.endsWith(']')) out.push(path.join(root, `${registry.slice(0, i)}_${registry.slice(i + 1)}_`));
  out.push(path.join(root, registry), path.join(root, '_default'));
  return out;
}

/** The endpoint specs from a hosts directory, or undefined when it has nothing for `registry`. */
export function loadHostsDir(root: string, registry: string): EndpointSpec[] | undefined {
  for (const dir of hostDirCandidates(root, registry)) {
    let st: fs.Stats;
    try {
      st = fs.statSync(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    if (!st.isDirectory()) continue;
    let text: string | undefined;
    try {
      text = fs.readFileSync(path.join(dir, 'hosts.toml'), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    if (text === undefined || text.trim() === '') return loadCertFiles(dir);
    return parseHostsToml(text, dir);
  }
  return undefined;
}

function settingsSpec(url: string, overridePath: boolean, s: HostSettings, where: string): EndpointSpec {
  const spec: EndpointSpec = {
    ...parseEndpointURL(url, overridePath, where),
    capabilities: s.capabilities ? parseCapabilities(s.capabilities, where) : [...ALL_CAPABILITIES],
    headers: parseHeaders(s.headers, where),
  };
  const ca = parseCa(s.ca, where);
  if (ca) spec.ca = ca;
  if (s.client) spec.client = s.client.map((c) => ({ ...c }));
  if (s.skipVerify !== undefined) spec.skipVerify = s.skipVerify;
  return spec;
}

/** Endpoint specs from configuration given in code. */
export function specsFromConfig(registry: string, config: RegistryHostConfig): EndpointSpec[] {
  const where = `for ${registry}`;
  const out: EndpointSpec[] = [];
  for (const m of config.mirrors ?? []) {
    const mc: MirrorConfig = typeof m === 'string' ? { url: m } : m;
    out.push(settingsSpec(mc.url, mc.overridePath === true, mc, `${where} mirror ${mc.url}`));
  }
  if (config.server !== undefined) {
    out.push(settingsSpec(config.server, false, config, where));
  } else {
    const root = settingsSpec('placeholder.invalid', false, config, where);
    out.push({ ...root, scheme: config.plainHttp ? 'http' : '', host: '', path: '' });
  }
  return out;
}

function plainHttpFor(registry: string, option: HostsOptions['plainHttp']): boolean {
  if (option === undefined || option === false) return false;
  if (option === true) return true;
  if (Array.isArray(option)) return option.includes(registry);
  return option(registry);
}

async function readPem(src: PemSource, what: string): Promise<Buffer> {
  if (isPem(src)) return Buffer.isBuffer(src) ? src : Buffer.from(src);
  try {
    return await fs.promises.readFile(src as string);
  } catch (err) {
    throw new BerthError('InvalidArgument', `unable to read ${what} ${JSON.stringify(src)}: ${(err as Error).message}`);
  }
}

/** Reads the certificate files of a spec and fills in the defaults of the registry's own entry. */
export async function resolveSpec(registry: string, spec: EndpointSpec, defaultScheme: 'http' | 'https', mirror: boolean): Promise<RegistryEndpoint> {
  let { scheme, host, path: apiPath } = spec;
  let capabilities = spec.capabilities;
  if (host === '') {
    if (registry === 'docker.io') {
      scheme = 'https';
      host = 'registry-1.docker.io';
    } else {
      host = registry;
      scheme = scheme === '' ? defaultScheme : scheme;
    }
    apiPath = '/v2';
    capabilities = [...ALL_CAPABILITIES];
  }
  const endpoint: RegistryEndpoint = {
    registry,
    scheme: scheme === '' ? 'https' : scheme,
    host,
    path: apiPath,
    capabilities,
    headers: spec.headers,
    mirror,
  };
  if (spec.ca !== undefined || spec.client !== undefined || spec.skipVerify !== undefined) {
    const tls: EndpointTls = { certs: [], skipVerify: spec.skipVerify === true };
    if (spec.ca) tls.ca = await Promise.all(spec.ca.map((c) => readPem(c, 'CA certificate')));
    for (const pair of spec.client ?? []) {
      const cert = await readPem(pair.cert, 'client certificate');
      const key = pair.key !== undefined ? await readPem(pair.key, 'client key') : cert;
      tls.certs.push({ cert, key });
    }
    endpoint.tls = tls;
  }
  return endpoint;
}

/** The endpoints for `registry`, mirrors first. An empty list means "configured with none". */
export async function registryEndpoints(registry: string, options: HostsOptions): Promise<RegistryEndpoint[]> {
  let specs: EndpointSpec[] | undefined;
  const fromCode = options.hosts?.[registry];
  if (fromCode) specs = specsFromConfig(registry, fromCode);
  else if (options.hostsDir) specs = loadHostsDir(options.hostsDir, registry);
  specs ??= [{ scheme: '', host: '', path: '', capabilities: [...ALL_CAPABILITIES], headers: {} }];
  const defaultScheme = plainHttpFor(registry, options.plainHttp) ? 'http' : 'https';
  return Promise.all(specs.map((s, i) => resolveSpec(registry, s, defaultScheme, i < specs!.length - 1)));
}
