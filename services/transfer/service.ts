// berth.services.transfer.v1.Transfer: pulls done by the daemon (see pull.ts and the .proto).
import type { Logger } from 'pino';
import type { Message } from '../../proto/codec';
import type { Publisher } from '../events/exchange';
import type { Metadata } from '../metadata';
import type { Image } from '../metadata/images';
import { requireNamespace, type ServiceImplementation } from '../server/rpc';
import { BerthError } from '../errdefs';
import type { ProgressItem } from './pull';

// The registry client, tar and compression stacks load on the first transfer, not at berthd's
// start-up (~20 ms of it; a restart's recovery time is measured).
/* eslint-disable @typescript-eslint/no-require-imports */
const pullModule = () => require('./pull') as typeof import('./pull');
const pushModule = () => require('./push') as typeof import('./push');
const importModule = () => require('./import') as typeof import('./import');
const exportModule = () => require('./export') as typeof import('./export');
/* eslint-enable @typescript-eslint/no-require-imports */

/** Progress messages are sent at each status change and otherwise at most this often. */
export const PROGRESS_INTERVAL_MS = 100;

function itemToWire(i: ProgressItem): Message {
  return { ref: i.ref, digest: i.digest, media_type: i.mediaType, offset: i.offset, total: i.total, status: i.status };
}

function imageToWire(i: Image): Message {
  return {
    name: i.name,
    labels: i.labels,
    target: { media_type: i.target.mediaType, digest: i.target.digest, size: i.target.size, annotations: i.target.annotations },
    created_at: i.createdAt,
    updated_at: i.updatedAt,
  };
}

export interface TransferOptions {
  /** Registry host configuration directory (hosts.toml), as containerd's config_path. */
  hostsDir?: string;
  log?: Logger;
}

/** Streams a progress snapshot at each state change and at most every PROGRESS_INTERVAL_MS otherwise. */
function throttledProgress(send: (items: Message[]) => Promise<void>) {
  let chain: Promise<void> = Promise.resolve();
  let lastSent = 0;
  let timer: NodeJS.Timeout | undefined;
  let finished = false;
  const flush = () => {
    if (finished) return;
    if (timer) clearTimeout(timer);
    timer = undefined;
    lastSent = Date.now();
    const items = progress.snapshot().map(itemToWire);
    chain = chain.then(() => send(items)).catch(() => undefined);
  };
  const progress = new (pullModule().PullProgress)((stateChange) => {
    if (finished) return;
    if (stateChange || Date.now() - lastSent >= PROGRESS_INTERVAL_MS) return flush();
    if (!timer) timer = setTimeout(flush, PROGRESS_INTERVAL_MS - (Date.now() - lastSent));
  });
  return {
    progress,
    async finish() {
      finished = true;
      if (timer) clearTimeout(timer);
      await chain;
    },
  };
}

export function transferService(metadata: Metadata, events: Publisher, options: TransferOptions = {}): ServiceImplementation {
  return {
    name: 'berth.services.transfer.v1.Transfer',
    handlers: {
      Pull: async (req, ctx, send) => {
        const ns = requireNamespace(ctx);
        // One send at a time, in order; the throttle only decides when a new one is queued.
        let chain: Promise<void> = Promise.resolve();
        let lastSent = 0;
        let timer: NodeJS.Timeout | undefined;
        let finished = false;
        const flush = () => {
          if (finished) return;
          if (timer) clearTimeout(timer);
          timer = undefined;
          lastSent = Date.now();
          const items = progress.snapshot().map(itemToWire);
          chain = chain.then(() => send({ items })).catch(() => undefined);
        };
        const progress = new (pullModule().PullProgress)((stateChange) => {
          if (finished) return;
          if (stateChange || Date.now() - lastSent >= PROGRESS_INTERVAL_MS) return flush();
          if (!timer) timer = setTimeout(flush, PROGRESS_INTERVAL_MS - (Date.now() - lastSent));
        });
        let image: Image;
        try {
          image = await pullModule().pullImage(
            { metadata, events, log: ctx.log },
            ns,
            {
              ref: req.ref ?? '',
              platform: req.platform || undefined,
              allPlatforms: !!req.all_platforms,
              snapshotter: req.snapshotter || undefined,
              skipUnpack: !!req.skip_unpack,
              plainHttp: !!req.plain_http,
              labels: { ...(req.labels ?? {}) },
              hostsDir: options.hostsDir,
              credentials: credentialsOf(req),
              signal: ctx.signal,
            },
            progress,
          );
        } finally {
          finished = true;
          if (timer) clearTimeout(timer);
          await chain;
        }
        await send({ items: progress.snapshot().map(itemToWire), image: imageToWire(image) });
      },

      Push: async (req, ctx, send) => {
        const ns = requireNamespace(ctx);
        const t = throttledProgress((items) => send({ items }));
        let digest: string;
        try {
          const root = await pushModule().pushImage(
            { metadata, log: ctx.log },
            ns,
            {
              ref: req.ref ?? '',
              localRef: req.local_ref || undefined,
              plainHttp: !!req.plain_http,
              platform: req.platform || undefined,
              allPlatforms: !!req.all_platforms,
              hostsDir: options.hostsDir,
              credentials: credentialsOf(req),
              signal: ctx.signal,
            },
            t.progress,
          );
          digest = root.digest;
        } finally {
          await t.finish();
        }
        await send({ items: t.progress.snapshot().map(itemToWire), digest });
      },

      Export: async (req, ctx, send) => {
        const ns = requireNamespace(ctx);
        await exportModule().exportImages(
          metadata,
          ns,
          { names: [...(req.names ?? [])], platform: req.platform || undefined, allPlatforms: !!req.all_platforms, format: req.format || undefined, signal: ctx.signal },
          (data) => send({ data }),
        );
      },

      Import: async (requests: AsyncIterable<Message>, ctx, send) => {
        const ns = requireNamespace(ctx);
        const it = requests[Symbol.asyncIterator]();
        const first = await it.next();
        if (first.done) throw new BerthError('InvalidArgument', 'import: no data sent');
        const opts = first.value as any;
        async function* chunks(): AsyncIterable<Uint8Array> {
          if (opts.data?.length) yield opts.data as Uint8Array;
          for (;;) {
            const next = await it.next();
            if (next.done) return;
            const d = (next.value as any).data as Uint8Array | undefined;
            if (d?.length) yield d;
          }
        }
        const items: Message[] = [];
        const images = await importModule().importArchive(
          { metadata, events, log: ctx.log },
          ns,
          chunks(),
          {
            baseName: opts.base_name || undefined,
            allPlatforms: !!opts.all_platforms,
            skipUnpack: !!opts.skip_unpack,
            indexName: opts.index_name || undefined,
            snapshotter: opts.snapshotter || undefined,
            platform: opts.platform || undefined,
            signal: ctx.signal,
          },
          async (item) => {
            const wire = itemToWire(item as ProgressItem);
            items.push(wire);
            await send({ items: [wire] }).catch(() => undefined);
          },
        );
        await send({ items, images: images.map(imageToWire) });
      },
    },
  };
}

/** Credentials a request carries, if any. */
function credentialsOf(req: { username?: string; secret?: string }): { username: string; secret: string } | undefined {
  return req.username ? { username: req.username, secret: req.secret ?? '' } : undefined;
}
