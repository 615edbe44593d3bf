// berth.services.transfer.v1.Transfer: pulls done by the daemon (see pull.ts and the .proto).
import type { Logger } from 'pino';
import type { Message } from '../../proto/codec';
import type { Publisher } from '../events/exchange';
import type { Metadata } from '../metadata';
import type { Image } from '../metadata/images';
import { requireNamespace, type ServiceImplementation } from '../server/rpc';
import { PullProgress, pullImage, type ProgressItem } from './pull';

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
        const progress = new PullProgress((stateChange) => {
          if (finished) return;
          if (stateChange || Date.now() - lastSent >= PROGRESS_INTERVAL_MS) return flush();
          if (!timer) timer = setTimeout(flush, PROGRESS_INTERVAL_MS - (Date.now() - lastSent));
        });
        let image: Image;
        try {
          image = await pullImage(
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
    },
  };
}
