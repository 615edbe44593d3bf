// Content service: containerd.services.content.v1.Content over the namespaced content store.
import { timestampFromNanos, type Message, type Timestamp } from '../../proto/codec';
import { BerthError } from '../errdefs';
import type { Publisher } from '../events/exchange';
import { objectAdaptor, parseAll } from '../filters';
import type { Metadata } from '../metadata';
import { checkDigest, type ContentInfo, type IngestStatus, type NamespacedWriter } from '../metadata/content';
import { requireNamespace, type CallContext, type Send, type ServiceImplementation } from '../server/rpc';

/** Messages of a List reply hold at most this many infos (containerd's batch). */
const LIST_BATCH = 100;

const WriteAction = { STAT: 'STAT', WRITE: 'WRITE', COMMIT: 'COMMIT' } as const;

function dateTimestamp(d: Date): Timestamp {
  return timestampFromNanos(BigInt(d.getTime()) * 1_000_000n);
}

function infoToWire(info: ContentInfo): Message {
  return { digest: info.digest, size: info.size, created_at: info.createdAt, updated_at: info.updatedAt, labels: info.labels };
}

function statusToWire(s: IngestStatus): Message {
  return {
    started_at: dateTimestamp(s.startedAt),
    updated_at: dateTimestamp(s.updatedAt),
    ref: s.ref,
    offset: s.offset,
    total: s.total,
    expected: s.expected,
  };
}

/** Content/Write: containerd's session protocol (see containerd-wire §5.4), message by message. */
async function writeSession(metadata: Metadata, requests: AsyncIterable<Message>, ctx: CallContext, send: Send): Promise<void> {
  const ns = requireNamespace(ctx);
  const iterator = requests[Symbol.asyncIterator]();
  let next = await iterator.next();
  if (next.done) return;
  let req = next.value;
  const ref: string = req.ref ?? '';
  if (!ref) throw new BerthError('InvalidArgument', 'first message must have a reference');
  let total: number = req.total ?? 0;
  let expected: string = req.expected ?? '';

  const writer: NamespacedWriter = await metadata.content.writer(ns, ref, {
    total,
    expected,
    lease: ctx.lease,
    signal: ctx.signal,
  });
  let committed = false;
  try {
    let last: Message | undefined;
    for (;;) {
      const action: string = req.action ?? WriteAction.STAT;
      const ws = writer.status();
      const reply: Message = {
        action,
        started_at: dateTimestamp(ws.startedAt),
        updated_at: dateTimestamp(ws.updatedAt),
        offset: ws.offset,
        total,
        digest: '',
      };
      if (req.expected) {
        expected = req.expected;
        const exists = await metadata.content.info(ns, expected).then(
          () => true,
          () => false,
        );
        if (exists) {
          await writer.close();
          await metadata.content.abort(ns, ref).catch(() => undefined);
          throw new BerthError('AlreadyExists', `blob with expected digest ${expected} exists`);
        }
      }
      if (req.total > 0) {
        total = req.total;
        reply.total = total;
      }
      if (action === WriteAction.STAT) {
        reply.digest = writer.digest();
      } else if (action === WriteAction.WRITE || action === WriteAction.COMMIT) {
        const offset: number = req.offset ?? 0;
        if (offset > 0 && offset !== ws.offset) {
          throw new BerthError('OutOfRange', `write @${offset} must occur at current offset ${ws.offset}`);
        }
        if (offset === 0 && ws.offset > 0) {
          await writer.truncate(0);
          reply.offset = 0;
        }
        const data: Buffer | undefined = req.data;
        if (data && data.length > 0) reply.offset = await writer.write(data);
        if (action === WriteAction.COMMIT) {
          await writer.commit(total, expected || undefined, req.labels);
          committed = true;
        }
        reply.digest = writer.digest();
      } else {
        throw new BerthError('InvalidArgument', `unknown write action ${JSON.stringify(action)}`);
      }
      await send(reply);
      last = reply;
      if (committed) {
        // containerd's handler sends its final reply once more when the session ends cleanly.
        await send(last);
        return;
      }
      next = await iterator.next();
      if (next.done) return;
      req = next.value;
    }
  } finally {
    if (!committed) await writer.close().catch(() => undefined);
  }
}

export function contentService(metadata: Metadata, events: Publisher): ServiceImplementation {
  const { content } = metadata;
  return {
    name: 'containerd.services.content.v1.Content',
    handlers: {
      Info: async (req, ctx) => {
        const ns = requireNamespace(ctx);
        return { info: infoToWire(await content.info(ns, checkDigest(req.digest ?? ''))) };
      },

      Update: async (req, ctx) => {
        const ns = requireNamespace(ctx);
        const info = req.info ?? {};
        const updated = await content.update(ns, checkDigest(info.digest ?? ''), info.labels ?? {}, req.update_mask?.paths ?? []);
        return { info: infoToWire(updated) };
      },

      List: async (req, ctx, send) => {
        const ns = requireNamespace(ctx);
        const filter = parseAll(req.filters ?? []);
        let batch: Message[] = [];
        for await (const info of content.list(ns)) {
          if (!filter.match(objectAdaptor({ digest: info.digest, labels: info.labels }))) continue;
          batch.push(infoToWire(info));
          if (batch.length >= LIST_BATCH) {
            await send({ info: batch });
            batch = [];
          }
        }
        if (batch.length > 0) await send({ info: batch });
      },

      Delete: async (req, ctx) => {
        const ns = requireNamespace(ctx);
        const digest = checkDigest(req.digest ?? '');
        await metadata.db.update(async (tx) => {
          await content.delete(tx, ns, digest);
          tx.afterCommit(() => events.publish(ns, '/content/delete', 'containerd.events.ContentDelete', { digest }));
        });
        metadata.gc.schedule();
        return {};
      },

      Read: async (req, ctx, send) => {
        const ns = requireNamespace(ctx);
        const digest = checkDigest(req.digest ?? '');
        let offset = Math.max(0, req.offset ?? 0);
        const range = await content.readRange(ns, digest, req.offset ?? 0, req.size ?? 0, ctx.signal);
        if (Buffer.isBuffer(range)) {
          // manifests and configs, most of what clients read: one message, no stream machinery
          if (range.length > 0) await send({ offset, data: range });
          return;
        }
        const stream = range;
        try {
          for await (const chunk of stream) {
            await send({ offset, data: chunk });
            offset += (chunk as Buffer).length;
          }
        } finally {
          stream.destroy();
        }
      },

      Status: async (req, ctx) => {
        const ns = requireNamespace(ctx);
        try {
          return { status: statusToWire(await content.status(ns, req.ref ?? '')) };
        } catch (err) {
          if (err instanceof BerthError) throw new BerthError(err.kind, `could not get status for ref ${JSON.stringify(req.ref)}: ${err.message}`);
          throw err;
        }
      },

      ListStatuses: async (req, ctx) => {
        const ns = requireNamespace(ctx);
        const filter = parseAll(req.filters ?? []);
        const statuses = (await content.listStatuses(ns)).filter((s) =>
          filter.match({ field: (path) => (path[0] === 'ref' ? s.ref : undefined) }),
        );
        return { statuses: statuses.map(statusToWire) };
      },

      Write: (requests, ctx, send) => writeSession(metadata, requests, ctx, send),

      Abort: async (req, ctx) => {
        const ns = requireNamespace(ctx);
        await content.abort(ns, req.ref ?? '');
        return {};
      },
    },
  };
}
