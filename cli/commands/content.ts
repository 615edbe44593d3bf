import type { Command } from 'commander';
import { formatAge, formatLabels, formatSize, formatTable, parseLabelArgs } from '../table';
import type { Context } from '../context';

/** Reads stdin in chunks as an async iterator (works for pipes, files and terminals). */
async function* chunksOf(stream: NodeJS.ReadableStream): AsyncIterable<Buffer> {
  for await (const chunk of stream) yield chunk as Buffer;
}

export function register(program: Command, context: () => Context): void {
  const content = program.command('content').description('manage the content store');

  content
    .command('ls')
    .alias('list')
    .description('list blobs in the namespace')
    .option('-q, --quiet', 'print only the digests')
    .argument('[filters...]', "filters, e.g. 'labels.\"containerd.io/gc.root\"'")
    .action(async (filters: string[], opts: { quiet?: boolean }) => {
      const ctx = context();
      const infos: any[] = [];
      for await (const msg of ctx.client.stream('content', 'List', { filters })) infos.push(...msg.info);
      if (ctx.json) return ctx.out(JSON.stringify(infos, null, 2) + '\n');
      if (opts.quiet) return ctx.out(infos.map((i) => i.digest + '\n').join(''));
      ctx.out(formatTable(['DIGEST', 'SIZE', 'AGE', 'LABELS'], infos.map((i) => [i.digest, formatSize(i.size), formatAge(i.created_at), formatLabels(i.labels) || '-'])));
    });

  content
    .command('get')
    .description('write a blob to stdout')
    .argument('<digest>')
    .action(async (digest: string) => {
      const ctx = context();
      for await (const msg of ctx.client.stream('content', 'Read', { digest })) {
        if (!process.stdout.write(msg.data)) await new Promise((r) => process.stdout.once('drain', r));
      }
    });

  content
    .command('ingest')
    .description('write stdin into the store under REF (resumes an interrupted ingest of the same REF)')
    .argument('<ref>')
    .option('--expected-size <bytes>', 'size the blob must have')
    .option('--expected-digest <digest>', 'digest the blob must have')
    .option('--label <key=value>', 'a label to set at commit (repeatable)', (v: string, all: string[]) => [...all, v], [] as string[])
    .action(async (ref: string, opts: { expectedSize?: string; expectedDigest?: string; label?: string[] }) => {
      const ctx = context();
      const total = opts.expectedSize ? Number(opts.expectedSize) : 0;
      const expected = opts.expectedDigest ?? '';
      const call = ctx.client.duplex('content', 'Write');
      const replies = call.replies[Symbol.asyncIterator]();
      const next = async () => {
        const r = await replies.next();
        if (r.done) throw new Error('the daemon ended the write session early');
        return r.value;
      };
      await call.write({ action: 'STAT', ref, total, expected });
      let offset: number = (await next()).offset;
      // Skip what an earlier, interrupted ingest already wrote.
      let skip = offset;
      for await (let chunk of chunksOf(process.stdin)) {
        if (skip > 0) {
          const n = Math.min(skip, chunk.length);
          skip -= n;
          chunk = chunk.subarray(n);
          if (chunk.length === 0) continue;
        }
        for (let i = 0; i < chunk.length; i += 1 << 20) {
          const data = chunk.subarray(i, i + (1 << 20));
          await call.write({ action: 'WRITE', offset, data });
          offset = (await next()).offset;
        }
      }
      await call.write({ action: 'COMMIT', offset, total, expected, labels: parseLabelArgs(opts.label ?? []) });
      await next();
      call.end();
      for await (const _ of { [Symbol.asyncIterator]: () => replies }) {
        // drain the repeated final reply
      }
    });

  content
    .command('rm')
    .alias('delete')
    .description('remove blobs from the namespace')
    .argument('<digests...>')
    .action(async (digests: string[]) => {
      const ctx = context();
      for (const digest of digests) {
        await ctx.client.unary('content', 'Delete', { digest });
        ctx.out(`${digest}\n`);
      }
    });

  content
    .command('label')
    .description('set labels on a blob ("key=" removes a label)')
    .argument('<digest>')
    .argument('[labels...]', 'key=value')
    .action(async (digest: string, labelArgs: string[]) => {
      const ctx = context();
      const labels = parseLabelArgs(labelArgs);
      const res = await ctx.client.unary('content', 'Update', {
        info: { digest, labels },
        update_mask: { paths: Object.keys(labels).map((k) => `labels.${k}`) },
      });
      ctx.out(ctx.json ? JSON.stringify(res.info, null, 2) + '\n' : `${formatLabels(res.info.labels)}\n`);
    });

  content
    .command('active')
    .description('list ingests in progress')
    .argument('[filters...]')
    .action(async (filters: string[]) => {
      const ctx = context();
      const { statuses } = await ctx.client.unary('content', 'ListStatuses', { filters });
      if (ctx.json) return ctx.out(JSON.stringify(statuses, null, 2) + '\n');
      ctx.out(
        formatTable(
          ['REF', 'SIZE', 'AGE'],
          (statuses as any[]).map((s) => [s.ref, `${formatSize(s.offset)}/${s.total ? formatSize(s.total) : '?'}`, formatAge(s.started_at)]),
        ),
      );
    });

  content
    .command('prune')
    .description('collect garbage now: remove blobs nothing references (no image, lease, label or gc.root)')
    .action(async () => {
      const ctx = context();
      // A lease deleted with sync runs a full collection before the daemon answers.
      const { lease } = await ctx.client.unary('leases', 'Create', { labels: { 'containerd.io/gc.expire': new Date(Date.now() + 60_000).toISOString() } });
      await ctx.client.unary('leases', 'Delete', { id: lease.id, sync: true });
      ctx.out('garbage collection done\n');
    });

}
