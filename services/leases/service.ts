// Leases service: containerd.services.leases.v1.Leases. Deleting with `sync` runs a garbage
// collection before answering, so what the lease alone held is gone when the call returns.
import { objectAdaptor, parseAll } from '../filters';
import type { Metadata } from '../metadata';
import { generateLeaseId, type Lease } from '../metadata/leases';
import { requireNamespace, type ServiceImplementation } from '../server/rpc';
import { BerthError } from '../errdefs';

function leaseToWire(l: Lease) {
  return { id: l.id, created_at: l.createdAt, labels: l.labels };
}

function resourceOf(req: { resource?: { id?: string; type?: string } | null }) {
  if (!req.resource) throw new BerthError('InvalidArgument', 'resource must be set');
  return { id: req.resource.id ?? '', type: req.resource.type ?? '' };
}

export function leasesService(metadata: Metadata): ServiceImplementation {
  const { leases, db, gc } = metadata;
  return {
    name: 'containerd.services.leases.v1.Leases',
    handlers: {
      Create: async (req, ctx) => {
        const ns = requireNamespace(ctx);
        const id: string = req.id || generateLeaseId();
        const lease = await db.update((tx) => leases.create(tx, ns, id, req.labels ?? {}));
        return { lease: leaseToWire(lease) };
      },

      Delete: async (req, ctx) => {
        const ns = requireNamespace(ctx);
        await db.update((tx) => leases.delete(tx, ns, req.id ?? ''));
        if (req.sync) await gc.collect();
        else gc.schedule();
        return {};
      },

      List: async (req, ctx) => {
        const ns = requireNamespace(ctx);
        const filter = parseAll(req.filters ?? []);
        const all = await leases.list(ns);
        return { leases: all.filter((l) => filter.match(objectAdaptor({ id: l.id, labels: l.labels }))).map(leaseToWire) };
      },

      AddResource: async (req, ctx) => {
        const ns = requireNamespace(ctx);
        await db.update((tx) => leases.addResource(tx, ns, req.id ?? '', resourceOf(req)));
        return {};
      },

      DeleteResource: async (req, ctx) => {
        const ns = requireNamespace(ctx);
        await db.update((tx) => leases.deleteResource(tx, ns, req.id ?? '', resourceOf(req)));
        gc.schedule();
        return {};
      },

      ListResources: async (req, ctx) => {
        const ns = requireNamespace(ctx);
        return { resources: await leases.listResources(ns, req.id ?? '') };
      },
    },
  };
}
