// Containers: the metadata of a container (spec, runtime, snapshot, labels); its task is the
// runtime's business. Containers are garbage-collection roots for their snapshot and labels.
//
//   o/<ns>/containers/<id>   ContainerRecord
import { nowTimestamp, type AnyMessage, type Timestamp } from '../../proto/codec';
import { BerthError } from '../errdefs';
import { objectKey, objectPrefix, type MetadataDB, type Transaction } from './db';
import type { Labels } from './labels';
import { validateIdentifier, validateLabels } from './validate';

/** Any payloads are kept as they came (type URL + base64 bytes in the record). */
export interface StoredAny {
  typeUrl: string;
  value: string;
}

export interface Container {
  id: string;
  labels: Labels;
  image: string;
  runtime: { name: string; options: AnyMessage | null };
  spec: AnyMessage | null;
  snapshotter: string;
  snapshotKey: string;
  extensions: Record<string, AnyMessage>;
  createdAt: Timestamp;
  updatedAt: Timestamp;
}

interface ContainerRecord {
  labels: Labels;
  image: string;
  runtime: { name: string; options: StoredAny | null };
  spec: StoredAny | null;
  snapshotter: string;
  snapshotKey: string;
  extensions: Record<string, StoredAny>;
  createdAt: Timestamp;
  updatedAt: Timestamp;
}

export type ContainerInput = Omit<Container, 'createdAt' | 'updatedAt'>;

const toStored = (a: AnyMessage | null | undefined): StoredAny | null =>
  a && (a.type_url || a.value?.length) ? { typeUrl: a.type_url, value: Buffer.from(a.value ?? []).toString('base64') } : null;
const fromStored = (a: StoredAny | null | undefined): AnyMessage | null => (a ? { type_url: a.typeUrl, value: Buffer.from(a.value, 'base64') } : null);

function toRecord(c: Omit<Container, 'id'>): ContainerRecord {
  return {
    labels: Object.fromEntries(Object.entries(c.labels).filter(([, v]) => v !== '')),
    image: c.image,
    runtime: { name: c.runtime.name, options: toStored(c.runtime.options) },
    spec: toStored(c.spec),
    snapshotter: c.snapshotter,
    snapshotKey: c.snapshotKey,
    extensions: Object.fromEntries(Object.entries(c.extensions).map(([k, v]) => [k, toStored(v)!]).filter(([, v]) => v)),
    createdAt: c.createdAt,
    updatedAt: c.updatedAt,
  };
}

function fromRecord(id: string, r: ContainerRecord): Container {
  return {
    id,
    labels: { ...r.labels },
    image: r.image,
    runtime: { name: r.runtime.name, options: fromStored(r.runtime.options) },
    spec: fromStored(r.spec),
    snapshotter: r.snapshotter,
    snapshotKey: r.snapshotKey,
    extensions: Object.fromEntries(Object.entries(r.extensions ?? {}).map(([k, v]) => [k, fromStored(v)!])),
    createdAt: r.createdAt,
    updatedAt: r.updatedAt,
  };
}

/** containerd's checks on a container record. */
function validateContainer(c: ContainerInput): void {
  try {
    validateIdentifier(c.id);
  } catch (err) {
    throw new BerthError('InvalidArgument', `container.ID: ${(err as Error).message}`);
  }
  for (const k of Object.keys(c.extensions)) {
    if (k === '') throw new BerthError('InvalidArgument', 'container.Extension keys must not be zero-length');
  }
  validateLabels(c.labels, 'containers.Labels');
  if (!c.runtime.name) throw new BerthError('InvalidArgument', 'container.Runtime.Name must be set');
  if (!c.spec) throw new BerthError('InvalidArgument', 'container.Spec must be set');
  if (c.snapshotKey && !c.snapshotter) throw new BerthError('InvalidArgument', 'container.Snapshotter must be set if container.SnapshotKey is set');
}

const key = (ns: string, id: string) => objectKey(ns, 'containers', id);

export class ContainerStore {
  constructor(private readonly db: MetadataDB) {}

  async get(ns: string, id: string): Promise<Container> {
    const rec = await this.db.get<ContainerRecord>(key(ns, id));
    if (!rec) throw new BerthError('NotFound', `container ${JSON.stringify(id)} in namespace ${JSON.stringify(ns)}`);
    return fromRecord(id, rec);
  }

  async list(ns: string): Promise<Container[]> {
    const out: Container[] = [];
    for await (const [id, rec] of this.db.scan<ContainerRecord>(objectPrefix(ns, 'containers'))) out.push(fromRecord(id, rec));
    return out;
  }

  async create(tx: Transaction, ns: string, c: ContainerInput): Promise<Container> {
    try {
      validateContainer(c);
    } catch (err) {
      throw new BerthError('InvalidArgument', `create container failed validation: ${(err as Error).message}`);
    }
    if ((await tx.get(key(ns, c.id))) !== undefined) throw new BerthError('AlreadyExists', `container ${JSON.stringify(c.id)}`);
    const now = nowTimestamp();
    const rec = toRecord({ ...c, createdAt: now, updatedAt: now });
    await tx.putObject(ns, 'containers', c.id, rec);
    return fromRecord(c.id, rec);
  }

  /** containerd's update rules: no paths = replace the mutable fields (snapshotter and runtime
   * name must not change); paths: labels[.k], extensions[.k], spec, image, snapshotkey. */
  async update(tx: Transaction, ns: string, c: ContainerInput, paths: readonly string[]): Promise<Container> {
    if (!c.id) throw new BerthError('InvalidArgument', 'must specify a container id');
    const rec = await tx.get<ContainerRecord>(key(ns, c.id));
    if (!rec) throw new BerthError('NotFound', `container ${JSON.stringify(c.id)}`);
    const updated = fromRecord(c.id, rec);
    let fieldPaths = paths;
    if (fieldPaths.length === 0) {
      fieldPaths = ['labels', 'spec', 'extensions', 'image', 'snapshotkey'];
      if (updated.snapshotter !== c.snapshotter) throw new BerthError('InvalidArgument', 'container.Snapshotter field is immutable');
      if (updated.runtime.name !== c.runtime.name) throw new BerthError('InvalidArgument', 'container.Runtime.Name field is immutable');
    }
    for (const path of fieldPaths) {
      if (path.startsWith('labels.')) {
        const k = path.slice('labels.'.length);
        updated.labels[k] = c.labels[k] ?? '';
      } else if (path.startsWith('extensions.')) {
        const k = path.slice('extensions.'.length);
        if (c.extensions[k]) updated.extensions[k] = c.extensions[k];
        else delete updated.extensions[k];
      } else if (path === 'labels') updated.labels = { ...c.labels };
      else if (path === 'spec') updated.spec = c.spec;
      else if (path === 'extensions') updated.extensions = { ...c.extensions };
      else if (path === 'image') updated.image = c.image;
      else if (path === 'snapshotkey') updated.snapshotKey = c.snapshotKey;
      else throw new BerthError('InvalidArgument', `cannot update ${JSON.stringify(path)} field on ${JSON.stringify(c.id)}`);
    }
    try {
      validateContainer(updated);
    } catch (err) {
      throw new BerthError('InvalidArgument', `update failed validation: ${(err as Error).message}`);
    }
    const out = toRecord({ ...updated, updatedAt: nowTimestamp() });
    tx.put(key(ns, c.id), out);
    return fromRecord(c.id, out);
  }

  async delete(tx: Transaction, ns: string, id: string): Promise<void> {
    if ((await tx.get(key(ns, id))) === undefined) {
      throw new BerthError('NotFound', `cannot delete container ${JSON.stringify(id)} in namespace ${JSON.stringify(ns)}`);
    }
    tx.del(key(ns, id));
  }
}
