// berth images: pull, push, import, export (done by the daemon, berth.services.transfer.v1), ls,
// rm, tag, inspect, check — ctr's `images` commands over the Images, Content and Snapshots services.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import type { Command } from 'commander';
import type { Client } from '../client';
import { ApiError } from '../client';
import type { Context } from '../context';
import { formatSize, formatTable } from '../table';
import {
  formatPlatform,
  isIndexType,
  isManifestType,
  parseImageConfig,
  parseIndex,
  parseManifest,
  platformMatcher,
  selectManifest,
  type Descriptor,
} from '../../services/remotes';

const NOT_FOUND = 5;

async function readBlob(client: Client, digest: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const msg of client.stream('content', 'Read', { digest })) chunks.push(Buffer.from(msg.data ?? []));
  return Buffer.concat(chunks);
}

async function hasBlob(client: Client, digest: string): Promise<boolean> {
  try {
    await client.unary('content', 'Info', { digest });
    return true;
  } catch (err) {
    if (err instanceof ApiError && err.code === NOT_FOUND) return false;
    throw err;
  }
}

function fromWire(d: any): Descriptor {
  return { mediaType: d.media_type, digest: d.digest, size: Number(d.size) };
}

function chainOf(diffIDs: string[]): string {
  let chain = '';
  for (const d of diffIDs) chain = chain ? `sha256:${crypto.createHash('sha256').update(`${chain} ${d}`).digest('hex')}` : d;
  return chain;
}

interface ImageView {
  platforms: string[];
  /** The manifest for this host (or the only one), if present locally. */
  manifest?: { desc: Descriptor; doc: ReturnType<typeof parseManifest> };
  /** Blobs the host platform needs: root (+ manifest) + config + layers. */
  required: Descriptor[];
}

/** Walks an image's root down to the host platform's manifest, as far as the content allows. */
async function viewImage(client: Client, target: Descriptor, platform?: string): Promise<ImageView> {
  const required: Descriptor[] = [target];
  const view: ImageView = { platforms: [], required };
  if (!(await hasBlob(client, target.digest))) return view;
  let desc = target;
  let bytes = await readBlob(client, target.digest);
  while (isIndexType(desc.mediaType)) {
    const index = parseIndex(bytes, desc.mediaType);
    if (view.platforms.length === 0) view.platforms = index.manifests.filter((m) => m.platform).map((m) => formatPlatform(m.platform!));
    try {
      desc = selectManifest(index, platformMatcher(platform));
    } catch {
      return view;
    }
    required.push(desc);
    if (!(await hasBlob(client, desc.digest))) return view;
    bytes = await readBlob(client, desc.digest);
  }
  if (!isManifestType(desc.mediaType)) return view;
  const doc = parseManifest(bytes, desc.mediaType);
  view.manifest = { desc, doc };
  required.push(doc.config, ...doc.layers);
  if (view.platforms.length === 0 && (await hasBlob(client, doc.config.digest))) {
    const config = parseImageConfig(await readBlob(client, doc.config.digest));
    view.platforms = [formatPlatform({ os: config.os, architecture: config.architecture, ...(config.variant ? { variant: config.variant } : {}) })];
  }
  return view;
}

function typeName(mediaType: string): string {
  if (isIndexType(mediaType)) return mediaType.includes('docker') ? 'application/vnd.docker.distribution.manifest.list.v2+json' : 'application/vnd.oci.image.index.v1+json';
  return mediaType;
}

function renderProgress(items: any[]): string[] {
  return items.map((i) => {
    const total = Number(i.total);
    const offset = Number(i.offset);
    const pct = total > 0 ? Math.floor((offset / total) * 100) : 100;
    const amount = i.status === 'downloading' ? `${formatSize(offset)}/${formatSize(total)} (${pct}%)` : formatSize(total);
    return `${i.ref.padEnd(78)} ${String(i.status).padEnd(12)} ${amount}`;
  });
}

export function register(program: Command, context: () => Context): void {
  const images = program.command('images').alias('image').alias('i').description('manage images');

  images
    .command('pull')
    .description('pull an image from a registry and unpack it (done by the daemon)')
    .argument('<ref>')
    .option('--platform <platform>', 'platform to pull, e.g. linux/arm64 (default: this host)')
    .option('--all-platforms', 'fetch the content of every platform')
    .option('--plain-http', 'talk plain HTTP to the registry')
    .option('--snapshotter <name>', 'snapshotter to unpack onto', 'overlayfs')
    .option('--skip-unpack', 'only fetch the content')
    .option('-u, --user <user:password>', 'registry credentials')
    .action(async (ref: string, opts: { platform?: string; allPlatforms?: boolean; plainHttp?: boolean; snapshotter: string; skipUnpack?: boolean; user?: string }) => {
      const ctx = context();
      const tty = !!process.stdout.isTTY && !ctx.json;
      let drawn = 0;
      const statuses = new Map<string, string>();
      let image: any;
      const request = { ref, platform: opts.platform ?? '', all_platforms: !!opts.allPlatforms, plain_http: !!opts.plainHttp, snapshotter: opts.snapshotter, skip_unpack: !!opts.skipUnpack, ...userOf(opts.user) };
      for await (const msg of ctx.client.stream('transfer', 'Pull', request)) {
        const items: any[] = msg.items ?? [];
        if (msg.image) image = msg.image;
        if (ctx.json) continue;
        if (tty) {
          // Redraw the block of lines in place.
          const lines = renderProgress(items);
          ctx.out((drawn > 0 ? `\x1b[${drawn}A` : '') + lines.map((l) => `\x1b[2K${l}\n`).join(''));
          drawn = lines.length;
        } else {
          for (const [n, line] of renderProgress(items).entries()) {
            const item = items[n];
            if (statuses.get(item.ref) === item.status) continue;
            statuses.set(item.ref, item.status);
            ctx.out(`${line}\n`);
          }
        }
      }
      if (!image) throw new Error('the daemon ended the pull without an image');
      if (ctx.json) return ctx.out(JSON.stringify(image, null, 2) + '\n');
      ctx.out(`${image.name}: done (${image.target.digest})\n`);
    });

  images
    .command('push')
    .description('push an image of the namespace to a registry (done by the daemon)')
    .argument('<ref>', 'registry reference to push to')
    .argument('[local]', 'image name in the namespace (default: ref)')
    .option('--plain-http', 'talk plain HTTP to the registry')
    .option('--platform <platform>', 'push only this platform of an index (tagged directly)')
    .option('--all-platforms', 'require every platform of an index')
    .option('-u, --user <user:password>', 'registry credentials')
    .action(async (ref: string, local: string | undefined, opts: { plainHttp?: boolean; platform?: string; allPlatforms?: boolean; user?: string }) => {
      const ctx = context();
      const statuses = new Map<string, string>();
      let digest = '';
      const request = { ref, local_ref: local ?? '', plain_http: !!opts.plainHttp, platform: opts.platform ?? '', all_platforms: !!opts.allPlatforms, ...userOf(opts.user) };
      for await (const msg of ctx.client.stream('transfer', 'Push', request)) {
        if (msg.digest) digest = msg.digest;
        if (ctx.json) continue;
        const items: any[] = msg.items ?? [];
        for (const [n, line] of renderProgress(items).entries()) {
          const item = items[n];
          if (statuses.get(item.ref) === item.status) continue;
          statuses.set(item.ref, item.status);
          ctx.out(`${line}\n`);
        }
      }
      if (!digest) throw new Error('the daemon ended the push without a digest');
      if (ctx.json) return ctx.out(JSON.stringify({ ref, digest }, null, 2) + '\n');
      ctx.out(`${ref}: pushed (${digest})\n`);
    });

  images
    .command('export')
    .description('write images as a tar: an OCI image layout with docker\'s manifest.json (FILE - = stdout)')
    .argument('<file>')
    .argument('<names...>')
    .option('--platform <platform>', 'platform of an index to export (default: this host)')
    .option('--all-platforms', 'export every platform present')
    .option('--format <format>', 'oci (layout only) or docker (layout + manifest.json)', 'docker')
    .action(async (file: string, names: string[], opts: { platform?: string; allPlatforms?: boolean; format: string }) => {
      const ctx = context();
      const tmp = file === '-' ? undefined : `${file}.part-${process.pid}`;
      const out = tmp ? fs.createWriteStream(tmp) : process.stdout;
      const write = (data: Buffer) =>
        new Promise<void>((resolve, reject) => {
          if (out.write(data, (err) => (err ? reject(err) : undefined))) resolve();
          else out.once('drain', resolve);
        });
      try {
        const request = { names, platform: opts.platform ?? '', all_platforms: !!opts.allPlatforms, format: opts.format };
        for await (const msg of ctx.client.stream('transfer', 'Export', request)) {
          if (msg.data?.length) await write(Buffer.from(msg.data));
        }
        if (tmp) {
          await new Promise<void>((resolve, reject) => (out as fs.WriteStream).end((err?: Error | null) => (err ? reject(err) : resolve())));
          fs.renameSync(tmp, file);
        }
      } catch (err) {
        if (tmp) {
          (out as fs.WriteStream).destroy();
          fs.rmSync(tmp, { force: true });
        }
        throw err;
      }
    });

  images
    .command('import')
    .description('import images from a tar: an OCI image layout or a docker save archive (FILE - = stdin)')
    .argument('<file>')
    .option('--base-name <name>', 'repository for images the archive names by tag only')
    .option('--index-name <name>', 'also record the archive\'s index as an image of this name')
    .option('--all-platforms', 'require the content of every platform')
    .option('--platform <platform>', 'platform to unpack (default: this host)')
    .option('--snapshotter <name>', 'snapshotter to unpack onto', 'overlayfs')
    .option('--skip-unpack', 'only store the content')
    .action(async (file: string, opts: { baseName?: string; indexName?: string; allPlatforms?: boolean; platform?: string; snapshotter: string; skipUnpack?: boolean }) => {
      const ctx = context();
      const input = file === '-' ? process.stdin : fs.createReadStream(file, { highWaterMark: 1 << 20 });
      const call = ctx.client.duplex('transfer', 'Import');
      const options = {
        base_name: opts.baseName ?? '',
        index_name: opts.indexName ?? '',
        all_platforms: !!opts.allPlatforms,
        platform: opts.platform ?? '',
        snapshotter: opts.snapshotter,
        skip_unpack: !!opts.skipUnpack,
      };
      let failed: unknown;
      const sending = (async () => {
        let first = true;
        try {
          for await (const chunk of input) {
            await call.write(first ? { ...options, data: chunk } : { data: chunk });
            first = false;
          }
          if (first) await call.write({ ...options, data: Buffer.alloc(0) });
          call.end();
        } catch (err) {
          failed = err;
          call.cancel();
        }
      })();
      let images: any[] = [];
      try {
        for await (const msg of call.replies) {
          if (msg.images?.length) images = msg.images;
        }
      } catch (err) {
        // The daemon refused the archive: stop sending (a write may be waiting for a drain that never comes).
        call.cancel();
        if (input !== process.stdin) (input as fs.ReadStream).destroy();
        else process.stdin.pause();
        throw err;
      }
      await sending;
      if (failed) throw failed;
      if (ctx.json) return ctx.out(JSON.stringify(images, null, 2) + '\n');
      for (const image of images) ctx.out(`${image.name}: imported (${image.target.digest})\n`);
    });

  images
    .command('ls')
    .alias('list')
    .description('list images')
    .option('-q, --quiet', 'print only the names')
    .action(async (opts: { quiet?: boolean }) => {
      const ctx = context();
      const { images: list } = await ctx.client.unary('images', 'List', {});
      const all: any[] = list ?? [];
      if (opts.quiet) return ctx.out(all.map((i) => `${i.name}\n`).join(''));
      if (ctx.json) return ctx.out(JSON.stringify(all, null, 2) + '\n');
      const rows: string[][] = [];
      for (const image of all) {
        const target = fromWire(image.target);
        const view = await viewImage(ctx.client, target);
        let size = 0;
        for (const d of view.required) if (await hasBlob(ctx.client, d.digest)) size += d.size;
        rows.push([image.name, typeName(target.mediaType), target.digest, formatSize(size), view.platforms.join(',') || '-']);
      }
      ctx.out(formatTable(['REF', 'TYPE', 'DIGEST', 'SIZE', 'PLATFORMS'], rows));
    });

  images
    .command('rm')
    .alias('remove')
    .description('remove images (their content goes at the next garbage collection)')
    .option('--sync', 'collect garbage before returning')
    .argument('<refs...>')
    .action(async (refs: string[], opts: { sync?: boolean }) => {
      const ctx = context();
      let failed = false;
      for (const name of refs) {
        try {
          await ctx.client.unary('images', 'Delete', { name, sync: !!opts.sync });
          ctx.out(`${name}\n`);
        } catch (err) {
          if (!(err instanceof ApiError && err.code === NOT_FOUND)) throw err;
          ctx.err(`berth: image "${name}" not found\n`);
          failed = true;
        }
      }
      if (failed) process.exitCode = 1;
    });

  images
    .command('tag')
    .description('give an image another name')
    .argument('<source>')
    .argument('<target>')
    .option('--force', 'replace the target name if it exists')
    .action(async (source: string, target: string, opts: { force?: boolean }) => {
      const ctx = context();
      const { image } = await ctx.client.unary('images', 'Get', { name: source });
      const next = { name: target, labels: image.labels, target: image.target };
      try {
        await ctx.client.unary('images', 'Create', { image: next });
      } catch (err) {
        if (!(opts.force && err instanceof ApiError && err.code === 6)) throw err;
        await ctx.client.unary('images', 'Update', { image: next });
      }
      ctx.out(`${target}\n`);
    });

  images
    .command('inspect')
    .description('print an image record with its manifest and config as JSON')
    .argument('<ref>')
    .action(async (ref: string) => {
      const ctx = context();
      const { image } = await ctx.client.unary('images', 'Get', { name: ref });
      const target = fromWire(image.target);
      const view = await viewImage(ctx.client, target);
      const out: Record<string, unknown> = { image };
      if (isIndexType(target.mediaType) && (await hasBlob(ctx.client, target.digest))) out.index = JSON.parse((await readBlob(ctx.client, target.digest)).toString('utf8'));
      if (view.manifest) {
        out.manifest = view.manifest.doc;
        const config = view.manifest.doc.config;
        if (await hasBlob(ctx.client, config.digest)) out.config = JSON.parse((await readBlob(ctx.client, config.digest)).toString('utf8'));
      }
      ctx.out(JSON.stringify(out, null, 2) + '\n');
    });

  images
    .command('check')
    .description('check that images are complete and unpacked')
    .option('--snapshotter <name>', 'snapshotter to check the unpack in', 'overlayfs')
    .action(async (opts: { snapshotter: string }) => {
      const ctx = context();
      const { images: list } = await ctx.client.unary('images', 'List', {});
      const rows: string[][] = [];
      const results: any[] = [];
      for (const image of (list ?? []) as any[]) {
        const target = fromWire(image.target);
        const view = await viewImage(ctx.client, target);
        // As ctr counts: the manifest's config and layers.
        const needed = view.manifest ? [view.manifest.doc.config, ...view.manifest.doc.layers] : view.required;
        let present = 0;
        let size = 0;
        for (const d of needed) {
          if (await hasBlob(ctx.client, d.digest)) {
            present++;
            size += d.size;
          }
        }
        const complete = view.manifest !== undefined && present === needed.length;
        let unpacked = false;
        if (view.manifest && (await hasBlob(ctx.client, view.manifest.doc.config.digest))) {
          const config = parseImageConfig(await readBlob(ctx.client, view.manifest.doc.config.digest));
          const top = chainOf(config.rootfs.diff_ids);
          try {
            if (top) await ctx.client.unary('snapshots', 'Stat', { snapshotter: opts.snapshotter, key: top });
            unpacked = !!top;
          } catch (err) {
            if (!(err instanceof ApiError && err.code === NOT_FOUND)) throw err;
          }
        }
        const status = `${complete ? 'complete' : 'incomplete'} (${present}/${needed.length})`;
        results.push({ name: image.name, complete, present, required: needed.length, unpacked });
        rows.push([image.name, typeName(target.mediaType), target.digest, status, formatSize(size), String(unpacked)]);
      }
      if (ctx.json) return ctx.out(JSON.stringify(results, null, 2) + '\n');
      ctx.out(formatTable(['REF', 'TYPE', 'DIGEST', 'STATUS', 'SIZE', 'UNPACKED'], rows));
    });
}

/** `--user name:secret` (as ctr's) → the request's credential fields. */
function userOf(user: string | undefined): { username?: string; secret?: string } {
  if (!user) return {};
  const i = user.indexOf(':');
  return i < 0 ? { username: user, secret: '' } : { username: user.slice(0, i), secret: user.slice(i + 1) };
}
