// Namespaces: records with labels, created explicitly or by the first write in them, and
// deletable only when they hold no images, blobs, containers or snapshots (leases go with them).
import { BerthError } from '../errdefs';
import { MetadataDB, namespaceKey, objectPrefix, type NamespaceRecord, type Transaction } from './db';
import { validateIdentifier, validateLabel, validateLabels } from './validate';

export interface Namespace {
  name: string;
  labels: Record<string, string>;
}

/** Object kinds whose presence keeps a namespace from being deleted, and how containerd names them. */
const BLOCKING_KINDS: Array<{ prefix: string; describe: (rest: string) => string }> = [
  { prefix: 'images/', describe: () => 'images' },
  { prefix: 'content/', describe: () => 'blobs' },
  { prefix: 'containers/', describe: () => 'containers' },
  { prefix: 'snapshots/', describe: (rest) => `snapshots on ${JSON.stringify(rest.split('/')[0])} snapshotter` },
];

export class NamespaceStore {
  constructor(private readonly db: MetadataDB) {}

  /** Labels of a namespace; an unknown namespace has none (containerd answers Get with OK). */
  async labels(name: string): Promise<Record<string, string>> {
    const rec = await this.db.get<NamespaceRecord>(namespaceKey(name));
    return { ...(rec?.labels ?? {}) };
  }

  async list(): Promise<Namespace[]> {
    const out: Namespace[] = [];
    for await (const [name, rec] of this.db.scan<NamespaceRecord>('ns/')) {
      out.push({ name, labels: { ...rec.labels } });
    }
    return out;
  }

  async exists(name: string): Promise<boolean> {
    return (await this.db.get(namespaceKey(name))) !== undefined;
  }

  async create(tx: Transaction, name: string, labels: Record<string, string>): Promise<void> {
    validateIdentifier(name);
    validateLabels(labels, 'namespace.Labels');
    if ((await tx.get(namespaceKey(name))) !== undefined) {
      throw new BerthError('AlreadyExists', `namespace ${JSON.stringify(name)}`);
    }
    tx.put(namespaceKey(name), { labels: dropEmpty(labels) } satisfies NamespaceRecord);
  }

  /** Sets (or with an empty value removes) one label; like containerd, creates the namespace if needed. */
  async setLabel(tx: Transaction, name: string, key: string, value: string): Promise<void> {
    validateLabel(key, value);
    const rec = (await tx.get<NamespaceRecord>(namespaceKey(name))) ?? { labels: {} };
    const labels = { ...rec.labels };
    if (value === '') delete labels[key];
    else labels[key] = value;
    tx.put(namespaceKey(name), { ...rec, labels } satisfies NamespaceRecord);
  }

  async replaceLabels(tx: Transaction, name: string, labels: Record<string, string>): Promise<void> {
    validateLabels(labels, 'namespace.Labels');
    const rec = (await tx.get<NamespaceRecord>(namespaceKey(name))) ?? { labels: {} };
    tx.put(namespaceKey(name), { ...rec, labels: dropEmpty(labels) } satisfies NamespaceRecord);
  }

  async delete(tx: Transaction, name: string): Promise<void> {
    const found = BLOCKING_KINDS.map(() => [] as string[]);
    const leftovers: string[] = [];
    for await (const [rest] of tx.scan(objectPrefix(name))) {
      const i = BLOCKING_KINDS.findIndex((k) => rest.startsWith(k.prefix));
      if (i < 0) {
        leftovers.push(rest);
        continue;
      }
      const what = BLOCKING_KINDS[i].describe(rest.slice(BLOCKING_KINDS[i].prefix.length));
      if (!found[i].includes(what)) found[i].push(what);
    }
    // Listed in containerd's order: images, blobs, containers, snapshots.
    const remaining = found.flat();
    if (remaining.length > 0) {
      throw new BerthError(
        'FailedPrecondition',
        `namespace ${JSON.stringify(name)} must be empty, but it still has ${remaining.join(', ')}`,
      );
    }
    if ((await tx.get(namespaceKey(name))) === undefined) {
      throw new BerthError('NotFound', `namespace ${JSON.stringify(name)}`);
    }
    for (const rest of leftovers) tx.del(objectPrefix(name) + rest);
    tx.del(namespaceKey(name));
  }
}

function dropEmpty(labels: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(labels ?? {}).filter(([, v]) => v !== ''));
}
