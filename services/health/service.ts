// grpc.health.v1: SERVING once the daemon accepts calls (for load balancers and probes).
import type { ServiceImplementation } from '../server/rpc';
import { BerthError } from '../errdefs';

export function healthService(): ServiceImplementation {
  return {
    name: 'grpc.health.v1.Health',
    handlers: {
      Check: async (req) => {
        if (req.service) throw new BerthError('NotFound', `unknown service ${req.service}`);
        return { status: 'SERVING' };
      },
      Watch: async (req, ctx, send) => {
        if (req.service) throw new BerthError('NotFound', `unknown service ${req.service}`);
        await send({ status: 'SERVING' });
        await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve(), { once: true }));
      },
    },
  };
}
