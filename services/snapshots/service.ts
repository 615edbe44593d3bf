// Snapshots service: containerd.services.snapshots.v1.Snapshots over the namespaced snapshot
// store; every request names its snapshotter ("overlayfs", "native").
import type { Message } from '../../proto/codec';
import type { Kind, Mount } from '../../snapshotter';
import type { Publisher } from '../events/exchange';
import { objectAdaptor, parseAll } from '../filters';
import type { Metadata } from '../metadata';
import type { SnapshotInfo } from '../metadata/snapshots';
import { requireNamespace, type ServiceImplementation } from '../server/rpc';

const EVENTS = 'containerd.events.';
const KIND_WIRE: Record<Kind, string> = { View: 'VIEW', Active: 'ACTIVE', Committed: 'COMMITTED' };

export function mountsToWire(mounts: Mount[]): Message[] {
  return mounts.map((m) => ({ type: m.type, source: m.source, target: '', options: m.options }));
}

export function mountsFromWire(mounts: Message[] | undefined): Mount[] {
  return (mounts ?? []).map((m) => ({ type: m.type ?? '', source: m.source ?? '', options: m.options ?? [] }));
}

function infoToWire(i: SnapshotInfo): Message {
  return { name: i.name, parent: i.parent, kind: KIND_WIRE[i.kind], created_at: i.createdAt, updated_at: i.updatedAt, labels: i.labels };
}

/** The snapshotter a request names; containerd's default when it names none. */
const snapshotterOf = (req: Message) => (req.snapshotter as string) || 'overlayfs';

export function snapshotsService(metadata: Metadata, events: Publisher): ServiceImplementation {
  const snapshots = () => metadata.snapshots;
  return {
    name: 'containerd.services.snapshots.v1.Snapshots',
    handlers: {
      Prepare: async (req, ctx) => {
        const ns = requireNamespace(ctx);
        const mounts = await snapshots().create('Active', ns, snapshotterOf(req), req.key ?? '', req.parent ?? '', req.labels ?? {}, ctx.lease);
        events.publish(ns, '/snapshot/prepare', `${EVENTS}SnapshotPrepare`, { key: req.key, parent: req.parent ?? '' });
        return { mounts: mountsToWire(mounts) };
      },

      View: async (req, ctx) => {
        const ns = requireNamespace(ctx);
        // containerd publishes no event for a view.
        const mounts = await snapshots().create('View', ns, snapshotterOf(req), req.key ?? '', req.parent ?? '', req.labels ?? {}, ctx.lease);
        return { mounts: mountsToWire(mounts) };
      },

      Mounts: async (req, ctx) => ({ mounts: mountsToWire(await snapshots().mounts(requireNamespace(ctx), snapshotterOf(req), req.key ?? '')) }),

      Commit: async (req, ctx) => {
        const ns = requireNamespace(ctx);
        await snapshots().commit(ns, snapshotterOf(req), req.name ?? '', req.key ?? '', req.labels ?? {}, ctx.lease);
        events.publish(ns, '/snapshot/commit', `${EVENTS}SnapshotCommit`, { key: req.key, name: req.name });
        return {};
      },

      Remove: async (req, ctx) => {
        const ns = requireNamespace(ctx);
        await snapshots().remove(ns, snapshotterOf(req), req.key ?? '');
        events.publish(ns, '/snapshot/remove', `${EVENTS}SnapshotRemove`, { key: req.key });
        metadata.gc.schedule();
        return {};
      },

      Stat: async (req, ctx) => ({ info: infoToWire(await snapshots().stat(requireNamespace(ctx), snapshotterOf(req), req.key ?? '')) }),

      Update: async (req, ctx) => {
        const ns = requireNamespace(ctx);
        const info = req.info ?? {};
        const updated = await snapshots().update(ns, snapshotterOf(req), info.name ?? '', info.labels ?? {}, req.update_mask?.paths ?? []);
        return { info: infoToWire(updated) };
      },

      List: async (req, ctx, send) => {
        const ns = requireNamespace(ctx);
        const filter = parseAll(req.filters ?? []);
        const all = (await snapshots().list(ns, snapshotterOf(req))).filter((i: SnapshotInfo) =>
          filter.match(objectAdaptor({ kind: KIND_WIRE[i.kind].toLowerCase(), name: i.name, parent: i.parent, labels: i.labels })),
        );
        for (let i = 0; i < all.length; i += 100) await send({ info: all.slice(i, i + 100).map(infoToWire) });
      },

      Usage: async (req, ctx) => {
        const u = await snapshots().usage(requireNamespace(ctx), snapshotterOf(req), req.key ?? '');
        return { size: u.size, inodes: u.inodes };
      },

      Cleanup: async (req, ctx) => {
        requireNamespace(ctx);
        await snapshots().backend(snapshotterOf(req)).cleanup();
        return {};
      },
    },
  };
}
