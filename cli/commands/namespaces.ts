import type { Command } from 'commander';
import { formatLabels, formatTable, parseLabelArgs } from '../table';
import type { Context } from '../context';

export function register(program: Command, context: () => Context): void {
  const ns = program.command('namespaces').alias('namespace').alias('ns').description('manage namespaces');

  ns.command('ls')
    .alias('list')
    .description('list namespaces')
    .option('-q, --quiet', 'print only the names')
    .argument('[filter]', "a filter, e.g. 'labels.\"team\"==infra'")
    .action(async (filter: string | undefined, opts: { quiet?: boolean }) => {
      const ctx = context();
      const { namespaces } = await ctx.client.unary('namespaces', 'List', { filter: filter ?? '' });
      const list = (namespaces as Array<{ name: string; labels: Record<string, string> }>).sort((a, b) =>
        a.name.localeCompare(b.name),
      );
      if (ctx.json) return ctx.out(JSON.stringify(list, null, 2) + '\n');
      if (opts.quiet) return ctx.out(list.map((n) => n.name + '\n').join(''));
      ctx.out(formatTable(['NAME', 'LABELS'], list.map((n) => [n.name, formatLabels(n.labels)])));
    });

  ns.command('create')
    .description('create a namespace, with optional labels')
    .argument('<name>')
    .argument('[labels...]', 'key=value')
    .action(async (name: string, labels: string[]) => {
      const ctx = context();
      await ctx.client.unary('namespaces', 'Create', { namespace: { name, labels: parseLabelArgs(labels) } });
    });

  ns.command('label')
    .description('set labels on a namespace ("key=" removes a label)')
    .argument('<name>')
    .argument('[labels...]', 'key=value')
    .action(async (name: string, labelArgs: string[]) => {
      const ctx = context();
      const labels = parseLabelArgs(labelArgs);
      const paths = Object.keys(labels).map((k) => `labels.${k}`);
      await ctx.client.unary('namespaces', 'Update', { namespace: { name, labels }, update_mask: { paths } });
    });

  ns.command('rm')
    .alias('remove')
    .description('remove namespaces (they must hold no images, blobs, containers or snapshots)')
    .argument('<names...>')
    .action(async (names: string[]) => {
      const ctx = context();
      let failed = 0;
      for (const name of names) {
        try {
          await ctx.client.unary('namespaces', 'Delete', { name });
          ctx.out(`${name}\n`);
        } catch (err) {
          failed += 1;
          ctx.err(`unable to delete ${name}: ${(err as Error).message}\n`);
        }
      }
      if (failed) process.exitCode = 1;
    });
}
