// Containers service: containerd.services.containers.v1.Containers over the metadata store.
import type { AnyMessage, Message } from '../../proto/codec';
import type { Publisher } from '../events/exchange';
import { objectAdaptor, parseAll } from '../filters';
import type { Metadata } from '../metadata';
import type { Container, ContainerInput } from '../metadata/containers';
import { requireNamespace, type ServiceImplementation } from '../server/rpc';

const EVENTS = 'containerd.events.';

function containerFromWire(c: Message | null | undefined): ContainerInput {
  return {
    id: c?.id ?? '',
    labels: { ...(c?.labels ?? {}) },
    image: c?.image ?? '',
    runtime: { name: c?.runtime?.name ?? '', options: (c?.runtime?.options as AnyMessage) ?? null },
    spec: (c?.spec as AnyMessage) ?? null,
    snapshotter: c?.snapshotter ?? '',
    snapshotKey: c?.snapshot_key ?? '',
    extensions: { ...(c?.extensions ?? {}) },
  };
}

export function containerToWire(c: Container): Message {
  return {
    id: c.id,
    labels: c.labels,
    image: c.image,
    runtime: { name: c.runtime.name, options: c.runtime.options },
    spec: c.spec,
    snapshotter: c.snapshotter,
    snapshot_key: c.snapshotKey,
    created_at: c.createdAt,
    updated_at: c.updatedAt,
    extensions: c.extensions,
  };
}

/** Filter fields of a container: id, runtime.name, image, labels.*. */
function fields(c: Container) {
  return objectAdaptor({ id: c.id, runtime: { name: c.runtime.name }, image: c.image, labels: c.labels });
}

export function containersService(metadata: Metadata, events: Publisher): ServiceImplementation {
  const { containers, db, gc } = metadata;
  const list = async (ns: string, filters: string[]) => {
    const filter = parseAll(filters);
    return (await containers.list(ns)).filter((c) => filter.match(fields(c)));
  };
  return {
    name: 'containerd.services.containers.v1.Containers',
    handlers: {
      Get: async (req, ctx) => ({ container: containerToWire(await containers.get(requireNamespace(ctx), req.id ?? '')) }),

      List: async (req, ctx) => ({ containers: (await list(requireNamespace(ctx), req.filters ?? [])).map(containerToWire) }),

      ListStream: async (req, ctx, send) => {
        for (const c of await list(requireNamespace(ctx), req.filters ?? [])) await send({ container: containerToWire(c) });
      },

      Create: async (req, ctx) => {
        const ns = requireNamespace(ctx);
        const created = await db.update(async (tx) => {
          const c = await containers.create(tx, ns, containerFromWire(req.container));
          tx.afterCommit(() =>
            events.publish(ns, '/containers/create', `${EVENTS}ContainerCreate`, {
              id: c.id,
              image: c.image,
              runtime: { name: c.runtime.name, options: c.runtime.options },
            }),
          );
          return c;
        });
        return { container: containerToWire(created) };
      },

      Update: async (req, ctx) => {
        const ns = requireNamespace(ctx);
        const updated = await db.update(async (tx) => {
          const c = await containers.update(tx, ns, containerFromWire(req.container), req.update_mask?.paths ?? []);
          tx.afterCommit(() =>
            events.publish(ns, '/containers/update', `${EVENTS}ContainerUpdate`, { id: c.id, image: c.image, labels: c.labels, snapshot_key: c.snapshotKey }),
          );
          return c;
        });
        gc.schedule();
        return { container: containerToWire(updated) };
      },

      Delete: async (req, ctx) => {
        const ns = requireNamespace(ctx);
        const id: string = req.id ?? '';
        await db.update(async (tx) => {
          await containers.delete(tx, ns, id);
          tx.afterCommit(() => events.publish(ns, '/containers/delete', `${EVENTS}ContainerDelete`, { id }));
        });
        gc.schedule();
        return {};
      },
    },
  };
}
