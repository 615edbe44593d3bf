// Server-side image push: the image's tree read from the namespace's content store and sent to a
// registry as ctr's `images push` does: blobs (config and layers; HEAD first, skipped when
// present, cross-repository mount when the blob's distribution.source label names a repository
// of the same registry), then manifests, then the index, then the tag.
import type { Logger } from 'pino';
import { Transform } from 'node:stream';
import { BerthError } from '../errdefs';
import type { Metadata } from '../metadata';
import {
  RegistryClient,
  hostnameOf,
  isIndexType,
  isManifestType,
  parseIndex,
  parseManifest,
  parseReference,
  platformMatcher,
  selectManifest,
  type Descriptor,
} from '../remotes';
import { PullProgress } from './pull';
import { readBlob } from './unpack';

export interface PushOptions {
  ref: string;
  localRef?: string;
  plainHttp?: boolean;
  platform?: string;
  allPlatforms?: boolean;
  hostsDir?: string;
  /** Registry credentials for every host of this transfer. */
  credentials?: { username: string; secret: string };
  signal?: AbortSignal;
  client?: RegistryClient;
}

export interface PushDeps {
  metadata: Metadata;
  log?: Logger;
}

async function present(metadata: Metadata, ns: string, digest: string): Promise<boolean> {
  try {
    await metadata.content.info(ns, digest);
    return true;
  } catch (err) {
    if (err instanceof BerthError && err.kind === 'NotFound') return false;
    throw err;
  }
}

/** Pushes; resolves with the descriptor the tag points at. Progress statuses are pull's plus uploading/mounted. */
export async function pushImage(deps: PushDeps, ns: string, opts: PushOptions, progress = new PullProgress()): Promise<Descriptor> {
  const { metadata } = deps;
  const signal = opts.signal;
  if (!opts.ref) throw new BerthError('InvalidArgument', 'ref must not be empty');
  const ref = parseReference(opts.ref);
  const image = await metadata.images.get(ns, opts.localRef || opts.ref);
  let root: Descriptor = { mediaType: image.target.mediaType, digest: image.target.digest, size: image.target.size };
  if (!(await present(metadata, ns, root.digest))) throw new BerthError('NotFound', `content ${root.digest} of image ${image.name} is not in the store`);

  // The documents to push, children before parents.
  const manifests: Array<{ desc: Descriptor; bytes: Buffer }> = [];
  let indexBytes: Buffer | undefined;
  if (isIndexType(root.mediaType)) {
    const bytes = await readBlob(metadata, ns, root.digest, signal);
    const index = parseIndex(bytes, root.mediaType);
    if (opts.platform) {
      const m = selectManifest(index, platformMatcher(opts.platform));
      if (!(await present(metadata, ns, m.digest))) throw new BerthError('NotFound', `${image.name}: manifest ${m.digest} for ${opts.platform} is not in the store`);
      manifests.push({ desc: m, bytes: await readBlob(metadata, ns, m.digest, signal) });
      root = { mediaType: m.mediaType, digest: m.digest, size: m.size };
    } else {
      const missing: string[] = [];
      for (const m of index.manifests) {
        if (isIndexType(m.mediaType)) throw new BerthError('NotImplemented', `${image.name}: nested indexes are not pushed`);
        if (!(await present(metadata, ns, m.digest))) {
          missing.push(m.digest);
          continue;
        }
        manifests.push({ desc: m, bytes: await readBlob(metadata, ns, m.digest, signal) });
      }
      if (missing.length > 0) {
        throw new BerthError(
          'FailedPrecondition',
          `${image.name}: ${missing.length} of the index's ${index.manifests.length} manifests are not in the store (pull with --all-platforms, or push one with --platform)`,
        );
      }
      indexBytes = bytes;
    }
  } else if (isManifestType(root.mediaType)) {
    manifests.push({ desc: root, bytes: await readBlob(metadata, ns, root.digest, signal) });
  } else {
    throw new BerthError('NotImplemented', `${image.name}: unsupported media type ${root.mediaType}`);
  }

  const blobs = new Map<string, { kind: string; desc: Descriptor }>();
  for (const m of manifests) {
    const doc = parseManifest(m.bytes, m.desc.mediaType);
    for (const [i, d] of [doc.config, ...doc.layers].entries()) {
      if (blobs.has(d.digest)) continue;
      if (!(await present(metadata, ns, d.digest))) throw new BerthError('NotFound', `${image.name}: blob ${d.digest} is not in the store`);
      blobs.set(d.digest, { kind: i === 0 ? 'config' : 'layer', desc: d });
    }
  }
  for (const b of blobs.values()) progress.add(b.kind, b.desc);
  for (const m of manifests) progress.add('manifest', m.desc);
  if (indexBytes) progress.add('index', root);

  const client = opts.client ?? new RegistryClient({ plainHttp: opts.plainHttp ?? false, hostsDir: opts.hostsDir, credentials: opts.credentials, logger: deps.log });
  const sourceKey = `containerd.io/distribution.source.${hostnameOf(ref.domain)}`;
  try {
    const results = await Promise.allSettled(
      [...blobs.values()].map(({ desc }) =>
        client.limiter.run(async () => {
          const info = await metadata.content.info(ns, desc.digest);
          const mountFrom = (info.labels[sourceKey] ?? '').split(',').filter((s) => s && s !== ref.path);
          const res = await client.push(
            ref,
            desc,
            async () => {
              progress.status(desc.digest, 'uploading', 0);
              let sent = 0;
              const counter = new Transform({
                transform(chunk: Buffer, _enc, cb) {
                  sent += chunk.length;
                  progress.offset(desc.digest, sent);
                  cb(null, chunk);
                },
              });
              const src = await metadata.content.read(ns, desc.digest, 0, 0, signal);
              src.on('error', (err) => counter.destroy(err));
              return src.pipe(counter);
            },
            { signal, mountFrom },
          );
          progress.status(desc.digest, (res.status === 'uploaded' ? 'done' : res.status));
        }, signal),
      ),
    );
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    for (const m of manifests) {
      const res = await client.push(ref, m.desc, () => m.bytes, { signal });
      progress.status(m.desc.digest, (res.status === 'uploaded' ? 'done' : res.status));
    }
    let rootBytes = manifests.find((m) => m.desc.digest === root.digest)?.bytes;
    if (indexBytes) {
      const res = await client.push(ref, root, () => indexBytes!, { signal });
      progress.status(root.digest, (res.status === 'uploaded' ? 'done' : res.status));
      rootBytes = indexBytes;
    }
    if (ref.tag !== undefined) await client.pushTag(ref, root, rootBytes, { signal });
    return root;
  } finally {
    if (!opts.client) client.close();
  }
}
