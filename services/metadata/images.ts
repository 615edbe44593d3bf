// Images: named references to a target descriptor (a manifest or an index), with labels.
// They are garbage-collection roots; their `containerd.io/gc.ref.*` labels keep more.
//
//   o/<ns>/images/<name>   { labels, target: { mediaType, digest, size, annotations }, createdAt, updatedAt }
import { nowTimestamp, type Timestamp } from '../../proto/codec';
import { validateDigest } from '../../content-store';
import { BerthError } from '../errdefs';
import { objectKey, objectPrefix, type MetadataDB, type Transaction } from './db';
import type { Labels } from './labels';
import { validateLabels } from './validate';

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations: Record<string, string>;
}

export interface Image {
  name: string;
  labels: Labels;
  target: Descriptor;
  createdAt: Timestamp;
  updatedAt: Timestamp;
}

type ImageRecord = Omit<Image, 'name'>;

const imageKey = (ns: string, name: string) => objectKey(ns, 'images', name);

/** containerd's checks: a name, valid labels, and a target with digest, size and media type. */
function validateImage(image: Pick<Image, 'name' | 'labels' | 'target'>): void {
  if (!image.name) throw new BerthError('InvalidArgument', 'image name must not be empty');
  validateLabels(image.labels, 'image.Labels');
  const t = image.target;
  try {
    validateDigest(t.digest);
  } catch (err) {
    throw new BerthError('InvalidArgument', `Target.Digest ${JSON.stringify(t.digest)} invalid: ${(err as Error).message.replace(/: invalid argument$/, '')}`);
  }
  if (!(t.size > 0)) throw new BerthError('InvalidArgument', 'Target.Size must be greater than zero');
  if (!t.mediaType) throw new BerthError('InvalidArgument', 'Target.MediaType must be set');
}

export class ImageStore {
  constructor(private readonly db: MetadataDB) {}

  async get(ns: string, name: string): Promise<Image> {
    const rec = await this.db.get<ImageRecord>(imageKey(ns, name));
    if (!rec) throw new BerthError('NotFound', `image ${JSON.stringify(name)}`);
    return { name, ...rec };
  }

  async list(ns: string): Promise<Image[]> {
    const out: Image[] = [];
    for await (const [name, rec] of this.db.scan<ImageRecord>(objectPrefix(ns, 'images'))) out.push({ name, ...rec });
    return out;
  }

  async create(tx: Transaction, ns: string, image: Pick<Image, 'name' | 'labels' | 'target'>): Promise<Image> {
    validateImage(image);
    if ((await tx.get(imageKey(ns, image.name))) !== undefined) throw new BerthError('AlreadyExists', `image ${JSON.stringify(image.name)}`);
    const now = nowTimestamp();
    const rec: ImageRecord = { labels: { ...image.labels }, target: { ...image.target }, createdAt: now, updatedAt: now };
    await tx.putObject(ns, 'images', image.name, rec);
    return { name: image.name, ...rec };
  }

  /** Field paths: labels, labels.<k>, target (as a whole), annotations, annotations.<k>; none = replace all. */
  async update(tx: Transaction, ns: string, image: Pick<Image, 'name' | 'labels' | 'target'>, paths: readonly string[]): Promise<Image> {
    if (!image.name) throw new BerthError('InvalidArgument', 'image name is required for update');
    const rec = await tx.get<ImageRecord>(imageKey(ns, image.name));
    if (!rec) throw new BerthError('NotFound', `image ${JSON.stringify(image.name)}`);
    let labels = { ...rec.labels };
    let target: Descriptor = { ...rec.target, annotations: { ...rec.target.annotations } };
    if (paths.length === 0) {
      labels = { ...image.labels };
      target = { ...image.target };
    }
    for (const path of paths) {
      if (path.startsWith('labels.')) {
        const key = path.slice('labels.'.length);
        if (image.labels[key]) labels[key] = image.labels[key];
        else delete labels[key];
      } else if (path.startsWith('annotations.')) {
        const key = path.slice('annotations.'.length);
        const v = image.target.annotations?.[key];
        if (v) target.annotations[key] = v;
        else delete target.annotations[key];
      } else if (path === 'labels') {
        labels = { ...image.labels };
      } else if (path === 'target') {
        target = { ...image.target };
      } else if (path === 'annotations') {
        target.annotations = { ...image.target.annotations };
      } else {
        throw new BerthError('InvalidArgument', `cannot update ${JSON.stringify(path)} field on image ${JSON.stringify(image.name)}`);
      }
    }
    validateImage({ name: image.name, labels, target });
    const updated: ImageRecord = { labels, target, createdAt: rec.createdAt, updatedAt: nowTimestamp() };
    tx.put(imageKey(ns, image.name), updated);
    return { name: image.name, ...updated };
  }

  async delete(tx: Transaction, ns: string, name: string): Promise<void> {
    if ((await tx.get(imageKey(ns, name))) === undefined) throw new BerthError('NotFound', `image ${JSON.stringify(name)}`);
    tx.del(imageKey(ns, name));
  }
}
