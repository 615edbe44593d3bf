// Leases: named holds on resources (content, ingests, snapshots) that keep them from garbage
// collection until the lease is deleted or its `containerd.io/gc.expire` time passes.
//
//   o/<ns>/leases/<id>                          { createdAt, labels }
//   o/<ns>/leaseres/<id>/<type>/<resource id>   {}   type: content | ingests | snapshots/<snapshotter>
import * as crypto from 'node:crypto';
import { nowNanos, timestampFromNanos, type Timestamp } from '../../proto/codec';
import { isDigest } from '../../content-store';
import { BerthError } from '../errdefs';
import { objectKey, objectPrefix, type MetadataDB, type Transaction } from './db';
import { validateLabels } from './validate';

export interface LeaseRecord {
  createdAt: Timestamp;
  labels: Record<string, string>;
}

export interface Lease extends LeaseRecord {
  id: string;
}

export interface LeaseResource {
  id: string;
  type: string;
}

/** containerd's generated lease ids: "<nanoseconds of the second>-<4 url-safe base64 chars>". */
export function generateLeaseId(): string {
  const nanos = Number(nowNanos() % 1_000_000_000n);
  return `${nanos}-${crypto.randomBytes(3).toString('base64url')}`;
}

/** Checks a resource as containerd does and returns it normalised. */
export function parseLeaseResource(r: LeaseResource): LeaseResource {
  const parts = r.type.split('/');
  switch (parts[0]) {
    case 'content':
    case 'ingests':
      if (parts.length !== 1) throw new BerthError('InvalidArgument', `invalid resource type ${r.type}`);
      if (parts[0] === 'content' && !isDigest(r.id)) {
        throw new BerthError('InvalidArgument', `invalid content resource id ${r.id}: invalid digest`);
      }
      break;
    case 'snapshots':
      if (parts.length !== 2 || !parts[1]) throw new BerthError('InvalidArgument', `invalid snapshot resource type ${r.type}`);
      break;
    default:
      throw new BerthError('NotImplemented', `resource type ${r.type} not supported yet`);
  }
  if (!r.id) throw new BerthError('InvalidArgument', 'resource id must not be empty');
  return { id: r.id, type: r.type };
}

const leaseKey = (ns: string, id: string) => objectKey(ns, 'leases', id);
const resourcePrefix = (ns: string, id: string) => `${objectPrefix(ns, 'leaseres')}${id}/`;
const resourceKey = (ns: string, id: string, r: LeaseResource) => `${resourcePrefix(ns, id)}${r.type}/${r.id}`;

function splitResource(rest: string): LeaseResource {
  const parts = rest.split('/');
  const typeLen = parts[0] === 'snapshots' ? 2 : 1;
  return { type: parts.slice(0, typeLen).join('/'), id: parts.slice(typeLen).join('/') };
}

export class LeaseStore {
  constructor(private readonly db: MetadataDB) {}

  async create(tx: Transaction, ns: string, id: string, labels: Record<string, string>): Promise<Lease> {
    if (!id) throw new BerthError('InvalidArgument', 'lease id must be provided');
    if (id.includes('/')) throw new BerthError('InvalidArgument', `lease id ${JSON.stringify(id)} must not contain "/"`);
    validateLabels(labels);
    if ((await tx.get(leaseKey(ns, id))) !== undefined) throw new BerthError('AlreadyExists', `lease ${JSON.stringify(id)}`);
    const record: LeaseRecord = {
      createdAt: timestampFromNanos(nowNanos()),
      labels: Object.fromEntries(Object.entries(labels).filter(([, v]) => v !== '')),
    };
    await tx.putObject(ns, 'leases', id, record);
    return { id, ...record };
  }

  async get(ns: string, id: string): Promise<Lease | undefined> {
    const rec = await this.db.get<LeaseRecord>(leaseKey(ns, id));
    return rec && { id, ...rec };
  }

  async list(ns: string): Promise<Lease[]> {
    const out: Lease[] = [];
    for await (const [id, rec] of this.db.scan<LeaseRecord>(objectPrefix(ns, 'leases'))) out.push({ id, ...rec });
    return out;
  }

  /** Removes the lease and its resource links (what they held is left to the collector). */
  async delete(tx: Transaction, ns: string, id: string): Promise<void> {
    if ((await tx.get(leaseKey(ns, id))) === undefined) throw new BerthError('NotFound', `lease ${JSON.stringify(id)}`);
    for await (const [rest] of tx.scan(resourcePrefix(ns, id))) tx.del(resourcePrefix(ns, id) + rest);
    tx.del(leaseKey(ns, id));
  }

  private async mustExist(tx: Transaction, ns: string, id: string): Promise<void> {
    if ((await tx.get(leaseKey(ns, id))) === undefined) throw new BerthError('NotFound', `lease ${JSON.stringify(id)}`);
  }

  async addResource(tx: Transaction, ns: string, id: string, resource: LeaseResource): Promise<void> {
    await this.mustExist(tx, ns, id);
    const r = parseLeaseResource(resource);
    tx.put(resourceKey(ns, id, r), {});
  }

  async deleteResource(tx: Transaction, ns: string, id: string, resource: LeaseResource): Promise<void> {
    await this.mustExist(tx, ns, id);
    const r = parseLeaseResource(resource);
    tx.del(resourceKey(ns, id, r));
  }

  async listResources(ns: string, id: string): Promise<LeaseResource[]> {
    if ((await this.db.get(leaseKey(ns, id))) === undefined) throw new BerthError('NotFound', `lease ${JSON.stringify(id)}`);
    const out: LeaseResource[] = [];
    for await (const [rest] of this.db.scan(resourcePrefix(ns, id))) out.push(splitResource(rest));
    return out;
  }

  /** Every resource held by a lease in a namespace, with the lease id (for the collector). */
  async *allResources(tx: Transaction, ns: string): AsyncIterable<{ lease: string; resource: LeaseResource }> {
    for await (const [rest] of tx.scan(objectPrefix(ns, 'leaseres'))) {
      const slash = rest.indexOf('/');
      yield { lease: rest.slice(0, slash), resource: splitResource(rest.slice(slash + 1)) };
    }
  }
}
