import { versionInfo } from '../../services/version/service';
import type { Command } from 'commander';
import type { Context } from '../context';

export function register(program: Command, context: () => Context): void {
  program
    .command('version')
    .description('print the client and server versions')
    .action(async () => {
      const ctx = context();
      const client = versionInfo();
      const server = await ctx.client.unary('version', 'Version');
      const { uuid } = await ctx.client.unary('introspection', 'Server');
      if (ctx.json) {
        ctx.out(JSON.stringify({ client, server: { version: server.version, revision: server.revision, uuid } }, null, 2) + '\n');
        return;
      }
      ctx.out(
        `Client:\n  Version:  ${client.version}\n  Revision: ${client.revision}\n  Node version: ${process.version}\n\n` +
          `Server:\n  Version:  ${server.version}\n  Revision: ${server.revision}\n  UUID: ${uuid}\n`,
      );
    });
}
