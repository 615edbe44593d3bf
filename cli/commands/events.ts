import type { Command } from 'commander';
import { formatTimestamp, fromAnyInFieldOrder, type Message } from '../../proto/codec';
import type { Context } from '../context';

/** Event payloads as JSON: bytes as base64, like Go's encoding/json. */
function jsonOf(value: unknown): string {
  return JSON.stringify(value, (_k, v) =>
    v && typeof v === 'object' && v.type === 'Buffer' && Array.isArray(v.data) ? Buffer.from(v.data).toString('base64') : v,
  );
}

export function register(program: Command, context: () => Context): void {
  program
    .command('events')
    .description('print events as they happen (all namespaces unless filtered)')
    .argument('[filters...]', "filters, e.g. 'namespace==default,topic~=|^/tasks/|'")
    .action(async (filters: string[]) => {
      const ctx = context();
      for await (const env of ctx.client.stream('events', 'Subscribe', { filters })) {
        const event: Message | undefined = fromAnyInFieldOrder(env.event);
        const payload = event ?? { type_url: env.event?.type_url };
        if (ctx.json) {
          ctx.out(jsonOf({ timestamp: formatTimestamp(env.timestamp), namespace: env.namespace, topic: env.topic, type: env.event?.type_url, event: payload }) + '\n');
        } else {
          ctx.out(`${formatTimestamp(env.timestamp)} ${env.namespace} ${env.topic} ${jsonOf(payload)}\n`);
        }
      }
    });
}
