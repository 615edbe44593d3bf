import type { Command } from 'commander';
import { formatLabels, formatTable, parseLabelArgs } from '../table';
import type { Context } from '../context';
import { formatTimestamp } from '../../proto/codec';

/** "24h", "90m", "30s", "0" (no expiry) → milliseconds. */
export function parseDuration(text: string): number {
  if (text === '0') return 0;
  const re = /(\d+(?:\.\d+)?)(h|m|s|ms)/g;
  let total = 0;
  let consumed = 0;
  for (const m of text.matchAll(re)) {
    const n = Number(m[1]);
    total += m[2] === 'h' ? n * 3600_000 : m[2] === 'm' ? n * 60_000 : m[2] === 's' ? n * 1000 : n;
    consumed += m[0].length;
  }
  if (consumed !== text.length || consumed === 0) throw new Error(`invalid duration ${JSON.stringify(text)} (e.g. 24h, 90m, 0)`);
  return total;
}

export function register(program: Command, context: () => Context): void {
  const leases = program.command('leases').alias('lease').description('manage leases (holds on content and snapshots)');

  leases
    .command('ls')
    .alias('list')
    .description('list leases')
    .option('-q, --quiet', 'print only the ids')
    .argument('[filters...]')
    .action(async (filters: string[], opts: { quiet?: boolean }) => {
      const ctx = context();
      const list = (await ctx.client.unary('leases', 'List', { filters })).leases as any[];
      if (ctx.json) return ctx.out(JSON.stringify(list, null, 2) + '\n');
      if (opts.quiet) return ctx.out(list.map((l) => l.id + '\n').join(''));
      ctx.out(formatTable(['ID', 'CREATED AT', 'LABELS'], list.map((l) => [l.id, formatTimestamp(l.created_at), formatLabels(l.labels) || '-'])));
    });

  leases
    .command('create')
    .description('create a lease')
    .option('--id <id>', 'lease id (generated when absent)')
    .option('--expires <duration>', 'expire after this long (0: never)', '24h')
    .argument('[labels...]', 'key=value')
    .action(async (labelArgs: string[], opts: { id?: string; expires: string }) => {
      const ctx = context();
      const labels = parseLabelArgs(labelArgs);
      const ms = parseDuration(opts.expires);
      if (ms > 0) labels['containerd.io/gc.expire'] = new Date(Date.now() + ms).toISOString().replace(/\.\d+Z$/, 'Z');
      const { lease } = await ctx.client.unary('leases', 'Create', { id: opts.id ?? '', labels });
      ctx.out(ctx.json ? JSON.stringify(lease, null, 2) + '\n' : `${lease.id}\n`);
    });

  leases
    .command('rm')
    .alias('delete')
    .description('delete leases')
    .option('--sync', 'wait for garbage collection to release what they held')
    .argument('<ids...>')
    .action(async (ids: string[], opts: { sync?: boolean }) => {
      const ctx = context();
      let failed = 0;
      for (const id of ids) {
        try {
          await ctx.client.unary('leases', 'Delete', { id, sync: !!opts.sync });
          ctx.out(`${id}\n`);
        } catch (err) {
          failed += 1;
          ctx.err(`unable to delete lease ${id}: ${(err as Error).message}\n`);
        }
      }
      if (failed) process.exitCode = 1;
    });
}
