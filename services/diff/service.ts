// Diff service: Apply (a layer from the content store onto snapshot mounts) and Diff (two
// mount sets → an OCI layer written into the content store).
import * as crypto from 'node:crypto';
import type { Message } from '../../proto/codec';
import { applyToMounts, diffStream, withTempMount, MEDIA_TYPE_LAYER, MEDIA_TYPE_LAYER_GZIP } from '../../snapshotter';
import { BerthError } from '../errdefs';
import type { Metadata } from '../metadata';
import { requireNamespace, type ServiceImplementation } from '../server/rpc';
import { mountsFromWire } from '../snapshots/service';

/** Layer media types we can apply (gzip, zstd and plain tars, OCI and Docker names). */
const APPLICABLE = new Set([
  'application/vnd.oci.image.layer.v1.tar',
  'application/vnd.oci.image.layer.v1.tar+gzip',
  'application/vnd.oci.image.layer.v1.tar+zstd',
  'application/vnd.oci.image.layer.nondistributable.v1.tar',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd',
  'application/vnd.docker.image.rootfs.diff.tar',
  'application/vnd.docker.image.rootfs.diff.tar.gzip',
  'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
]);

export function diffService(metadata: Metadata): ServiceImplementation {
  return {
    name: 'containerd.services.diff.v1.Diff',
    handlers: {
      Apply: async (req, ctx) => {
        const ns = requireNamespace(ctx);
        const desc: Message = req.diff ?? {};
        if (!APPLICABLE.has(desc.media_type)) {
          throw new BerthError('NotImplemented', `unsupported diff media type: ${desc.media_type}`);
        }
        const mounts = mountsFromWire(req.mounts);
        if (mounts.length === 0) throw new BerthError('InvalidArgument', 'mounts must not be empty');
        const stream = await metadata.content.read(ns, desc.digest ?? '', 0, 0, ctx.signal);
        try {
          const res = await applyToMounts(mounts, stream, { signal: ctx.signal, logger: ctx.log });
          return { applied: { media_type: MEDIA_TYPE_LAYER, digest: res.diffID, size: res.size, annotations: {} } };
        } catch (err) {
          if (err instanceof BerthError) throw err;
          throw new BerthError('FailedPrecondition', `failed to apply layer ${desc.digest}: ${(err as Error).message}`);
        } finally {
          stream.destroy();
        }
      },

      Diff: async (req, ctx) => {
        const ns = requireNamespace(ctx);
        const mediaType: string = req.media_type || MEDIA_TYPE_LAYER_GZIP;
        if (mediaType !== MEDIA_TYPE_LAYER_GZIP && mediaType !== MEDIA_TYPE_LAYER) {
          throw new BerthError('NotImplemented', `unsupported diff media type: ${mediaType}`);
        }
        const left = mountsFromWire(req.left);
        const right = mountsFromWire(req.right);
        if (right.length === 0) throw new BerthError('InvalidArgument', 'right mounts must not be empty');
        const ref: string = req.ref || `diff-${crypto.randomBytes(8).toString('hex')}`;
        const run = async (lower: string | undefined) =>
          withTempMount(right, async (upper) => {
            const { stream, result } = diffStream(lower, upper, { compression: mediaType === MEDIA_TYPE_LAYER ? 'none' : 'gzip', signal: ctx.signal });
            const writer = await metadata.content.writer(ns, ref, { lease: ctx.lease, signal: ctx.signal });
            try {
              for await (const chunk of stream) await writer.write(chunk as Buffer);
              const r = await result;
              const labels = { ...(req.labels ?? {}), 'containerd.io/uncompressed': r.diffID };
              await writer.commit(r.size, r.digest, labels).catch((err) => {
                if (!(err instanceof BerthError && err.kind === 'AlreadyExists')) throw err;
              });
              return { diff: { media_type: mediaType, digest: r.digest, size: r.size, annotations: {} } };
            } finally {
              await writer.close().catch(() => undefined);
            }
          });
        return left.length > 0 ? withTempMount(left, (lower) => run(lower)) : run(undefined);
      },
    },
  };
}
