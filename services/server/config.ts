// berthd's configuration: embedded defaults, overlaid by a TOML file (containerd's layout of
// keys where they mean the same thing), overlaid by command-line flags.
import * as fs from 'node:fs';
import { parse as parseToml } from 'smol-toml';
import { BerthError } from '../errdefs';

export interface GrpcConfig {
  /** Unix socket path the API is served on (mode 0660). */
  address: string;
  /** Owner given to the socket, so a group of operators can use it without root. */
  uid: number;
  gid: number;
  /** Optional TCP listener ("host:port"); requires the three TLS files below (mutual TLS). */
  tcp_address: string;
  tcp_tls_ca: string;
  tcp_tls_cert: string;
  tcp_tls_key: string;
  max_recv_message_size: number;
  max_send_message_size: number;
}

export interface Config {
  version: number;
  root: string;
  state: string;
  grpc: GrpcConfig;
  debug: { level: string };
  /** Per-plugin settings, keyed by "<type>.<id>" as in containerd's [plugins] table. */
  plugins: Record<string, Record<string, unknown>>;
}

export const DEFAULT_ROOT = '/var/lib/berth';
export const DEFAULT_STATE = '/run/berth';
export const DEFAULT_ADDRESS = '/run/berth/berthd.sock';

export function defaultConfig(): Config {
  return {
    version: 2,
    root: DEFAULT_ROOT,
    state: DEFAULT_STATE,
    grpc: {
      address: DEFAULT_ADDRESS,
      uid: 0,
      gid: 0,
      tcp_address: '',
      tcp_tls_ca: '',
      tcp_tls_cert: '',
      tcp_tls_key: '',
      max_recv_message_size: 16 << 20,
      max_send_message_size: 16 << 20,
    },
    debug: { level: 'info' },
    plugins: {},
  };
}

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

function invalid(msg: string): BerthError {
  return new BerthError('InvalidArgument', msg);
}

function expect(value: unknown, kind: 'string' | 'number', key: string): void {
  const ok = kind === 'number' ? typeof value === 'number' || typeof value === 'bigint' : typeof value === kind;
  if (!ok) throw invalid(`config: ${key} must be a ${kind}, got ${JSON.stringify(value)}`);
}

/** Overlays one table of the file onto the defaults, refusing unknown keys and wrong types so a
 * typo is an error at start-up rather than a silently ignored setting. */
function overlay<T extends object>(target: T, source: Record<string, unknown>, prefix: string): void {
  for (const [key, value] of Object.entries(source)) {
    const name = prefix ? `${prefix}.${key}` : key;
    if (!(key in target)) throw invalid(`config: unknown key ${name}`);
    const current = (target as Record<string, unknown>)[key];
    if (typeof current === 'object' && current !== null) {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalid(`config: ${name} must be a table`);
      if (key === 'plugins') (target as Record<string, unknown>)[key] = value;
      else overlay(current as object, value as Record<string, unknown>, name);
    } else {
      expect(value, typeof current as 'string' | 'number', name);
      (target as Record<string, unknown>)[key] = typeof value === 'bigint' ? Number(value) : value;
    }
  }
}

export function parseConfig(text: string, origin = 'config'): Config {
  let doc: Record<string, unknown>;
  try {
    doc = parseToml(text) as Record<string, unknown>;
  } catch (err) {
    throw invalid(`${origin}: ${(err as Error).message}`);
  }
  const config = defaultConfig();
  overlay(config, doc, '');
  return validateConfig(config);
}

export function loadConfigFile(path: string): Config {
  let text: string;
  try {
    text = fs.readFileSync(path, 'utf8');
  } catch (err) {
    throw new BerthError('NotFound', `config file ${path}: ${(err as Error).message}`);
  }
  return parseConfig(text, path);
}

export function validateConfig(config: Config): Config {
  if (config.version !== 2) throw invalid(`config: unsupported version ${config.version} (expected 2)`);
  if (!config.root) throw invalid('config: root must not be empty');
  if (!config.state) throw invalid('config: state must not be empty');
  if (!config.grpc.address) throw invalid('config: grpc.address must not be empty');
  if (!LOG_LEVELS.includes(config.debug.level)) {
    throw invalid(`config: debug.level ${JSON.stringify(config.debug.level)} is not one of ${LOG_LEVELS.join(', ')}`);
  }
  const g = config.grpc;
  if (g.tcp_address) {
    if (!g.tcp_tls_ca || !g.tcp_tls_cert || !g.tcp_tls_key) {
      throw invalid('config: grpc.tcp_address requires grpc.tcp_tls_ca, grpc.tcp_tls_cert and grpc.tcp_tls_key (mutual TLS)');
    }
  }
  return config;
}

/** The default config file, as `berthd config default` prints it and deploy/ installs it. */
export function renderDefaultConfig(): string {
  const c = defaultConfig();
  return `# berthd configuration (TOML). Flags given on the command line win over this file.
version = 2
root = "${c.root}"
state = "${c.state}"

[grpc]
address = "${c.grpc.address}"
uid = ${c.grpc.uid}
gid = ${c.grpc.gid}
# An optional TCP listener; it requires mutual TLS (all three files).
tcp_address = ""
tcp_tls_ca = ""
tcp_tls_cert = ""
tcp_tls_key = ""
max_recv_message_size = ${c.grpc.max_recv_message_size}
max_send_message_size = ${c.grpc.max_send_message_size}

[debug]
# trace, debug, info, warn, error, fatal or silent
level = "${c.debug.level}"
`;
}
