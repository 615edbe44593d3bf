// Images service: containerd.services.images.v1.Images over the metadata store.
import type { Message } from '../../proto/codec';
import type { Publisher } from '../events/exchange';
import { objectAdaptor, parseAll } from '../filters';
import type { Metadata } from '../metadata';
import type { Descriptor, Image } from '../metadata/images';
import { requireNamespace, type ServiceImplementation } from '../server/rpc';

const EVENT = 'containerd.services.images.v1.';

export function descriptorFromWire(d: Message | null | undefined): Descriptor {
  return { mediaType: d?.media_type ?? '', digest: d?.digest ?? '', size: d?.size ?? 0, annotations: { ...(d?.annotations ?? {}) } };
}

export function descriptorToWire(d: Descriptor): Message {
  return { media_type: d.mediaType, digest: d.digest, size: d.size, annotations: d.annotations };
}

function imageFromWire(i: Message | null | undefined): Pick<Image, 'name' | 'labels' | 'target'> {
  return { name: i?.name ?? '', labels: { ...(i?.labels ?? {}) }, target: descriptorFromWire(i?.target) };
}

function imageToWire(i: Image): Message {
  return { name: i.name, labels: i.labels, target: descriptorToWire(i.target), created_at: i.createdAt, updated_at: i.updatedAt };
}

/** Filter fields of an image: name, target.digest, target.mediatype, labels.*, annotations.*. */
function imageFields(i: Image) {
  return objectAdaptor({
    name: i.name,
    target: { digest: i.target.digest, mediatype: i.target.mediaType },
    labels: i.labels,
    annotations: i.target.annotations,
  });
}

export function imagesService(metadata: Metadata, events: Publisher): ServiceImplementation {
  const { images, db, gc } = metadata;
  return {
    name: 'containerd.services.images.v1.Images',
    handlers: {
      Get: async (req, ctx) => ({ image: imageToWire(await images.get(requireNamespace(ctx), req.name ?? '')) }),

      List: async (req, ctx) => {
        const ns = requireNamespace(ctx);
        const filter = parseAll(req.filters ?? []);
        return { images: (await images.list(ns)).filter((i) => filter.match(imageFields(i))).map(imageToWire) };
      },

      Create: async (req, ctx) => {
        const ns = requireNamespace(ctx);
        const created = await db.update(async (tx) => {
          const image = await images.create(tx, ns, imageFromWire(req.image));
          tx.afterCommit(() => events.publish(ns, '/images/create', `${EVENT}ImageCreate`, { name: image.name, labels: image.labels }));
          return image;
        });
        return { image: imageToWire(created) };
      },

      Update: async (req, ctx) => {
        const ns = requireNamespace(ctx);
        const updated = await db.update(async (tx) => {
          const image = await images.update(tx, ns, imageFromWire(req.image), req.update_mask?.paths ?? []);
          tx.afterCommit(() => events.publish(ns, '/images/update', `${EVENT}ImageUpdate`, { name: image.name, labels: image.labels }));
          return image;
        });
        // The previous target may have lost its last reference.
        gc.schedule();
        return { image: imageToWire(updated) };
      },

      Delete: async (req, ctx) => {
        const ns = requireNamespace(ctx);
        const name: string = req.name ?? '';
        await db.update(async (tx) => {
          await images.delete(tx, ns, name);
          tx.afterCommit(() => events.publish(ns, '/images/delete', `${EVENT}ImageDelete`, { name }));
        });
        if (req.sync) await gc.collect();
        else gc.schedule();
        return {};
      },
    },
  };
}
