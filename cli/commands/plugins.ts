import type { Command } from 'commander';
import { formatTable } from '../table';
import type { Context } from '../context';

export function register(program: Command, context: () => Context): void {
  const plugins = program.command('plugins').alias('plugin').description('inspect the daemon\'s plugins');
  plugins
    .command('ls')
    .alias('list')
    .description('list plugins, whether they loaded, and why not')
    .option('-d, --detailed', 'show requirements, exports and load errors')
    .argument('[filters...]', "filters, e.g. 'type==io.containerd.grpc.v1'")
    .action(async (filters: string[], opts: { detailed?: boolean }) => {
      const ctx = context();
      const res = await ctx.client.unary('introspection', 'Plugins', { filters });
      const list = res.plugins as Array<any>;
      if (ctx.json) return ctx.out(JSON.stringify(list, null, 2) + '\n');
      const platforms = (p: any) =>
        (p.platforms as any[]).map((pl) => [pl.os, pl.architecture, pl.variant].filter(Boolean).join('/')).join(',') || '-';
      const status = (p: any) => (p.init_err && p.init_err.code ? 'error' : 'ok');
      if (!opts.detailed) {
        ctx.out(formatTable(['TYPE', 'ID', 'PLATFORMS', 'STATUS'], list.map((p) => [p.type, p.id, platforms(p), status(p)])));
        return;
      }
      for (const p of list) {
        ctx.out(`Type:          ${p.type}\nID:            ${p.id}\n`);
        if (p.requires.length) ctx.out(`Requires:\n${p.requires.map((r: string) => `               ${r}\n`).join('')}`);
        if (Object.keys(p.exports).length) {
          ctx.out(`Exports:\n${Object.entries(p.exports).map(([k, v]) => `               ${k}  ${v}\n`).join('')}`);
        }
        ctx.out(`Status:        ${status(p)}\n`);
        if (p.init_err && p.init_err.code) ctx.out(`Error:         ${p.init_err.message}\n`);
        ctx.out('\n');
      }
    });
}
