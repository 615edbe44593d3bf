// berth: the operator's CLI, ctr-like commands against berthd (or any containerd-compatible daemon).
import { Command, CommanderError } from 'commander';
import { ApiError, Client } from './client';
import type { Context } from './context';
import * as containers from './commands/containers';
import * as content from './commands/content';
import * as events from './commands/events';
import * as images from './commands/images';
import * as leases from './commands/leases';
import * as namespaces from './commands/namespaces';
import * as plugins from './commands/plugins';
import * as runCommand from './commands/run';
import * as tasks from './commands/tasks';
import * as version from './commands/version';

const CODE_NAMES: Record<number, string> = {
  1: 'canceled', 2: 'unknown', 3: 'invalid argument', 4: 'deadline exceeded', 5: 'not found', 6: 'already exists',
  7: 'permission denied', 8: 'resource exhausted', 9: 'failed precondition', 10: 'aborted', 11: 'out of range',
  12: 'unimplemented', 13: 'internal', 14: 'unavailable', 15: 'data loss', 16: 'unauthenticated',
};

export function buildProgram(): { program: Command; dispose: () => void } {
  const program = new Command('berth');
  program
    .description('Berth command line: talk to berthd')
    .option('-a, --address <path>', 'berthd socket', process.env.BERTH_ADDRESS || '/run/berth/berthd.sock')
    .option('-n, --namespace <ns>', 'namespace to work in', process.env.BERTH_NAMESPACE || 'default')
    .option('--timeout <ms>', 'deadline for each call, in milliseconds')
    .option('--json', 'print machine-readable JSON')
    .showHelpAfterError()
    // Global options come before the command, so that `run IMAGE ID sh -c …` keeps its -c.
    .enablePositionalOptions()
    .exitOverride();

  let ctx: Context | undefined;
  const context = (): Context => {
    if (ctx) return ctx;
    const g = program.opts<{ address: string; namespace: string; json?: boolean; timeout?: string }>();
    ctx = {
      client: new Client(g.address, g.namespace, undefined, g.timeout ? Number(g.timeout) : undefined),
      namespace: g.namespace,
      json: !!g.json,
      out: (t) => void process.stdout.write(t),
      err: (t) => void process.stderr.write(t),
    };
    return ctx;
  };
  for (const mod of [version, namespaces, events, plugins, content, images, leases, containers, tasks, runCommand]) mod.register(program, context);
  return { program, dispose: () => ctx?.client.close() };
}

async function main(): Promise<void> {
  const { program, dispose } = buildProgram();
  const stop = () => {
    dispose();
    process.exit(130);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  process.on('SIGHUP', stop); // our terminal went away
  try {
    await program.parseAsync(process.argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode;
    } else if (err instanceof ApiError) {
      process.stderr.write(`berth: ${err.details} (${CODE_NAMES[err.code] ?? `code ${err.code}`})\n`);
      process.exitCode = 1;
    } else {
      process.stderr.write(`berth: ${(err as Error).message}\n`);
      process.exitCode = 1;
    }
  } finally {
    dispose();
  }
}

if (require.main === module || require.main?.filename.endsWith('/bin/berth')) void main();
