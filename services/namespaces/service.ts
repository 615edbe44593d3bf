// Namespaces service: containerd.services.namespaces.v1.Namespaces over the metadata store.
import { BerthError } from '../errdefs';
import type { MetadataDB } from '../metadata/db';
import { NamespaceStore } from '../metadata/namespaces';
import { validateIdentifier } from '../metadata/validate';
import type { Publisher } from '../events/exchange';
import type { CallContext, ServiceImplementation } from '../server/rpc';
import { parseAll, objectAdaptor } from '../filters';

const EVENTS = 'containerd.events.';

export function namespacesService(db: MetadataDB, events: Publisher): ServiceImplementation {
  const store = new NamespaceStore(db);
  /** Create and update events go out in the caller's namespace, as containerd publishes them;
   * a caller without one gets the event filed under the namespace itself. */
  const eventNamespace = (ctx: CallContext, name: string) => ctx.namespaceHeader || name;

  return {
    name: 'containerd.services.namespaces.v1.Namespaces',
    handlers: {
      Get: async (req) => ({ namespace: { name: req.name, labels: await store.labels(req.name) } }),

      List: async (req) => {
        // The request has one filter string (not a list, unlike the other services).
        const filter = parseAll(req.filter ? [req.filter] : []);
        const all = await store.list();
        return { namespaces: all.filter((ns) => filter.match(objectAdaptor({ name: ns.name, labels: ns.labels }))) };
      },

      Create: async (req, ctx) => {
        const ns = req.namespace ?? {};
        const name: string = ns.name ?? '';
        const labels: Record<string, string> = ns.labels ?? {};
        await db.update(async (tx) => {
          await store.create(tx, name, labels);
          tx.afterCommit(() => events.publish(eventNamespace(ctx, name), '/namespaces/create', `${EVENTS}NamespaceCreate`, { name, labels }));
        });
        return { namespace: { name, labels } };
      },

      Update: async (req, ctx) => {
        const ns = req.namespace ?? {};
        const name: string = ns.name ?? '';
        const labels: Record<string, string> = ns.labels ?? {};
        validateIdentifier(name);
        const paths: string[] = req.update_mask?.paths ?? [];
        await db.update(async (tx) => {
          if (paths.length > 0) {
            for (const path of paths) {
              if (!path.startsWith('labels.')) throw new BerthError('InvalidArgument', `cannot update ${JSON.stringify(path)} field`);
              const key = path.slice('labels.'.length);
              await store.setLabel(tx, name, key, labels[key] ?? '');
            }
          } else {
            await store.replaceLabels(tx, name, labels);
          }
          tx.afterCommit(() => events.publish(eventNamespace(ctx, name), '/namespaces/update', `${EVENTS}NamespaceUpdate`, { name, labels }));
        });
        // containerd answers with an empty namespace message, and ctr expects nothing more.
        return { namespace: {} };
      },

      Delete: async (req) => {
        const name: string = req.name ?? '';
        await db.update(async (tx) => {
          await store.delete(tx, name);
          tx.afterCommit(() => events.publish(name, '/namespaces/delete', `${EVENTS}NamespaceDelete`, { name }));
        });
        return {};
      },
    },
  };
}
