import type { Command } from 'commander';
import { formatLabels, formatTable } from '../table';
import type { Context } from '../context';
import { removeTaskFifos } from '../stdio';

/** The spec of a container record, decoded from its Any (JSON inside). */
export function specOf(container: any): unknown {
  if (!container.spec?.value) return null;
  try {
    return JSON.parse(Buffer.from(container.spec.value).toString());
  } catch {
    return null;
  }
}

export function register(program: Command, context: () => Context): void {
  const containers = program.command('containers').alias('container').alias('c').description('manage containers');

  containers
    .command('ls')
    .alias('list')
    .description('list containers')
    .option('-q, --quiet', 'print only the ids')
    .argument('[filters...]')
    .action(async (filters: string[], opts: { quiet?: boolean }) => {
      const ctx = context();
      const list: any[] = [];
      for await (const m of ctx.client.stream('containers', 'ListStream', { filters })) list.push(m.container);
      if (ctx.json) return ctx.out(JSON.stringify(list.map((c) => ({ ...c, spec: specOf(c) })), null, 2) + '\n');
      if (opts.quiet) return ctx.out(list.map((c) => c.id + '\n').join(''));
      ctx.out(formatTable(['CONTAINER', 'IMAGE', 'RUNTIME', 'LABELS'], list.map((c) => [c.id, c.image || '-', c.runtime?.name ?? '-', formatLabels(c.labels) || '-'])));
    });

  containers
    .command('info')
    .description('show a container record, with its OCI spec')
    .argument('<id>')
    .action(async (id: string) => {
      const ctx = context();
      const { container } = await ctx.client.unary('containers', 'Get', { id });
      ctx.out(JSON.stringify({ ...container, spec: specOf(container) }, null, 2) + '\n');
    });

  containers
    .command('rm')
    .alias('delete')
    .description('remove containers (their tasks must be gone) and their snapshots')
    .argument('<ids...>')
    .action(async (ids: string[]) => {
      const ctx = context();
      let failed = 0;
      for (const id of ids) {
        try {
          const { container } = await ctx.client.unary('containers', 'Get', { id });
          const task = await ctx.client.unary('tasks', 'Get', { container_id: id }).catch(() => undefined);
          if (task && task.process.status !== 'STOPPED') throw new Error(`cannot delete a non stopped container: ${task.process.status.toLowerCase()}`);
          if (task) {
            await ctx.client.unary('tasks', 'Delete', { container_id: id });
            removeTaskFifos(task.process);
          }
          if (container.snapshot_key) {
            await ctx.client
              .unary('snapshots', 'Remove', { snapshotter: container.snapshotter, key: container.snapshot_key })
              .catch((err) => {
                if (err.code !== 5 && err.code !== 12) throw err; // already gone, or no snapshotter yet
              });
          }
          await ctx.client.unary('containers', 'Delete', { id });
          ctx.out(`${id}\n`);
        } catch (err) {
          failed += 1;
          ctx.err(`unable to delete ${id}: ${(err as Error).message}\n`);
        }
      }
      if (failed) process.exitCode = 1;
    });
}
