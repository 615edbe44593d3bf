// Events service: Publish and Forward into the exchange, Subscribe with filters.
import { BerthError } from '../errdefs';
import { requireNamespace, type ServiceImplementation } from '../server/rpc';
import type { Exchange } from './exchange';

export function eventsService(exchange: Exchange): ServiceImplementation {
  return {
    name: 'containerd.services.events.v1.Events',
    handlers: {
      Publish: async (req, ctx) => {
        let namespace: string;
        try {
          namespace = requireNamespace(ctx);
        } catch (err) {
          throw new BerthError((err as BerthError).kind, `failed publishing event: ${(err as Error).message}`);
        }
        if (!req.event) throw new BerthError('InvalidArgument', 'event must be set');
        exchange.publishAny(namespace, req.topic ?? '', req.event);
        return {};
      },

      Forward: async (req) => {
        const env = req.envelope;
        if (!env) throw new BerthError('InvalidArgument', 'envelope must be set');
        exchange.forward({ timestamp: env.timestamp, namespace: env.namespace ?? '', topic: env.topic ?? '', event: env.event });
        return {};
      },

      Subscribe: async (req, ctx, send) => {
        // All namespaces unless the filters say otherwise, whatever the header (as containerd).
        for await (const envelope of exchange.subscribe(req.filters ?? [], ctx.signal)) {
          await send(envelope);
        }
      },
    },
  };
}
