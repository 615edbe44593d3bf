// berthd's command line: `berthd [--config FILE] [--root DIR] [--state DIR] [--address SOCK]
// [--log-level LEVEL]`, and `berthd config default` to print the default configuration.
import * as fs from 'node:fs';
import { parseArgs } from 'node:util';
import { defaultConfig, loadConfigFile, renderDefaultConfig, validateConfig, type Config } from './config';
import { Daemon } from './daemon';
import { createLogger } from './log';

const DEFAULT_CONFIG_FILE = '/etc/berth/config.toml';

const USAGE = `usage: berthd [options]
       berthd config default

options:
  -c, --config FILE     config file (default ${DEFAULT_CONFIG_FILE} when it exists)
      --root DIR        persistent state (default /var/lib/berth)
      --state DIR       volatile state (default /run/berth)
  -a, --address SOCK    unix socket for the gRPC API (default /run/berth/berthd.sock)
  -l, --log-level LVL   trace, debug, info, warn, error, fatal or silent
  -v, --version         print the version and exit
  -h, --help            this help
`;

function fail(message: string): never {
  process.stderr.write(`berthd: ${message}\n`);
  process.exit(1);
}

export function configFromArgs(argv: string[]): Config | 'help' | 'version' | 'print-default' {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string', short: 'c' },
      root: { type: 'string' },
      state: { type: 'string' },
      address: { type: 'string', short: 'a' },
      'log-level': { type: 'string', short: 'l' },
      version: { type: 'boolean', short: 'v' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return 'help';
  if (values.version) return 'version';
  if (positionals.length > 0) {
    if (positionals.join(' ') === 'config default') return 'print-default';
    throw new Error(`unknown command ${JSON.stringify(positionals.join(' '))}\n${USAGE}`);
  }
  const file = values.config ?? (fs.existsSync(DEFAULT_CONFIG_FILE) ? DEFAULT_CONFIG_FILE : undefined);
  const config = file ? loadConfigFile(file) : defaultConfig();
  if (values.root) config.root = values.root;
  if (values.state) config.state = values.state;
  if (values.address) config.grpc.address = values.address;
  if (values['log-level']) config.debug.level = values['log-level'];
  return validateConfig(config);
}

async function main(): Promise<void> {
  let parsed: ReturnType<typeof configFromArgs>;
  try {
    parsed = configFromArgs(process.argv.slice(2));
  } catch (err) {
    fail((err as Error).message);
  }
  if (parsed === 'help') {
    process.stdout.write(USAGE);
    return;
  }
  if (parsed === 'version') {
    const { versionInfo } = await import('../version/service');
    const v = versionInfo();
    process.stdout.write(`berthd ${v.version} ${v.revision}\n`);
    return;
  }
  if (parsed === 'print-default') {
    process.stdout.write(renderDefaultConfig());
    return;
  }

  const log = createLogger(parsed.debug.level);
  const daemon = new Daemon(parsed, log);
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals += 1;
    if (signals > 1) {
      log.warn({ signal }, 'second signal, exiting now');
      process.exit(1);
    }
    log.info({ signal }, 'shutting down');
    daemon.stop().then(
      () => process.exit(0),
      (err) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);

  try {
    await daemon.start();
  } catch (err) {
    await daemon.stop(0).catch(() => undefined);
    fail((err as Error).message);
  }
}

void main();
