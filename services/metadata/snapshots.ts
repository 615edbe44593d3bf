// Snapshots as clients see them: each snapshotter's snapshots seen through namespaces, as
// containerd's metadata layer does it. A namespace's key maps to a backend key
// "<ns>/<seq>/<key>" unique across namespaces and re-creations; labels live here; parents
// are recorded by their namespace keys so listing needs no backend call.
//
// Removal deletes the record at once and the backend snapshot just after, off the caller's
// path (containerd's metadata layer leaves it to the collector too). Backend snapshots that no
// record names — a crash between the two, or between a backend prepare and its record — are
// removed by reconcile(), which runs at start-up and in every collection.
//
//   o/<ns>/snapshots/<snapshotter>/<key>   SnapshotRecord
//   s/snapshot-seq                          the last sequence number handed out
import { nowTimestamp, type Timestamp } from '../../proto/codec';
import type { Kind, Mount, Snapshotter, Usage } from '../../snapshotter';
import { BerthError } from '../errdefs';
import { namespaceKey, objectKey, objectPrefix, type MetadataDB, type Transaction } from './db';
import { applyLabelPaths, type Labels } from './labels';
import type { LeaseStore } from './leases';
import { validateLabels } from './validate';

export interface SnapshotRecord {
  backendKey: string;
  kind: Kind;
  parent: string;
  labels: Labels;
  createdAt: Timestamp;
  updatedAt: Timestamp;
}

export interface SnapshotInfo {
  name: string;
  parent: string;
  kind: Kind;
  labels: Labels;
  createdAt: Timestamp;
  updatedAt: Timestamp;
}

const SEQ_KEY = 's/snapshot-seq';
const recordKey = (ns: string, snapshotter: string, key: string) => objectKey(ns, `snapshots/${snapshotter}`, key);
const recordPrefix = (ns: string, snapshotter: string) => objectPrefix(ns, `snapshots/${snapshotter}`);

export class MetadataSnapshots {
  /** Backend snapshots whose records are gone, in removal order (children before parents). */
  private readonly unrecorded: Array<{ snapshotter: string; backendKey: string }> = [];
  private sweeping: Promise<void> | undefined;

  constructor(
    private readonly db: MetadataDB,
    private readonly leases: LeaseStore,
    /** The snapshotters by name (ctr calls the overlay one "overlayfs"). */
    private readonly backends: Map<string, Snapshotter>,
  ) {}

  names(): string[] {
    return [...this.backends.keys()];
  }

  backend(name: string): Snapshotter {
    const b = this.backends.get(name);
    if (!b) throw new BerthError('NotFound', `snapshotter not loaded: ${name}`);
    return b;
  }

  private async record(tx: Transaction | MetadataDB, ns: string, snapshotter: string, key: string): Promise<SnapshotRecord> {
    const rec = await tx.get<SnapshotRecord>(recordKey(ns, snapshotter, key));
    if (!rec) throw new BerthError('NotFound', `snapshot ${key} does not exist`);
    return rec;
  }

  private async nextBackendKey(tx: Transaction, ns: string, key: string): Promise<string> {
    const seq = ((await tx.get<number>(SEQ_KEY)) ?? 0) + 1;
    tx.put(SEQ_KEY, seq);
    return `${ns}/${seq}/${key}`;
  }

  private async attach(tx: Transaction, ns: string, snapshotter: string, key: string, lease: string | undefined): Promise<void> {
    if (!lease) return;
    await this.leases.addResource(tx, ns, lease, { type: `snapshots/${snapshotter}`, id: key }).catch((err) => {
      throw err instanceof BerthError && err.kind === 'NotFound' ? new BerthError('NotFound', `lease ${JSON.stringify(lease)} does not exist`) : err;
    });
  }

  /** Prepare (writable) or View (read-only) a new snapshot on top of the committed `parent`. */
  async create(kind: 'Active' | 'View', ns: string, snapshotter: string, key: string, parent: string, labels: Labels, lease?: string): Promise<Mount[]> {
    if (!key) throw new BerthError('InvalidArgument', 'snapshot key must not be empty');
    validateLabels(labels);
    const backend = this.backend(snapshotter);
    return this.db.update(async (tx) => {
      if ((await tx.get(recordKey(ns, snapshotter, key))) !== undefined) throw new BerthError('AlreadyExists', `snapshot ${JSON.stringify(key)}`);
      let backendParent = '';
      if (parent) {
        const p = await tx.get<SnapshotRecord>(recordKey(ns, snapshotter, parent));
        if (!p) throw new BerthError('NotFound', `parent snapshot ${parent} does not exist`);
        if (p.kind !== 'Committed') throw new BerthError('InvalidArgument', `parent ${JSON.stringify(parent)} is not committed snapshot`);
        backendParent = p.backendKey;
      }
      const backendKey = await this.nextBackendKey(tx, ns, key);
      const mounts = kind === 'Active' ? await backend.prepare(backendKey, backendParent) : await backend.view(backendKey, backendParent);
      const now = nowTimestamp();
      await tx.putObject(ns, `snapshots/${snapshotter}`, key, { backendKey, kind, parent, labels: dropEmpty(labels), createdAt: now, updatedAt: now } satisfies SnapshotRecord);
      await this.attach(tx, ns, snapshotter, key, lease);
      // Undo the backend's work if the records do not make it to disk.
      tx.onAbort(() => backend.remove(backendKey).catch(() => undefined));
      return mounts;
    });
  }

  async mounts(ns: string, snapshotter: string, key: string): Promise<Mount[]> {
    const rec = await this.record(this.db, ns, snapshotter, key);
    return this.backend(snapshotter).mounts(rec.backendKey);
  }

  async commit(ns: string, snapshotter: string, name: string, key: string, labels: Labels, lease?: string): Promise<void> {
    validateLabels(labels);
    const backend = this.backend(snapshotter);
    await this.db.update(async (tx) => {
      const rec = await this.record(tx, ns, snapshotter, key);
      if (rec.kind !== 'Active') throw new BerthError('FailedPrecondition', `snapshot ${JSON.stringify(key)} is not active`);
      if ((await tx.get(recordKey(ns, snapshotter, name))) !== undefined) throw new BerthError('AlreadyExists', `snapshot ${JSON.stringify(name)}`);
      const backendName = await this.nextBackendKey(tx, ns, name);
      await backend.commit(backendName, rec.backendKey);
      const now = nowTimestamp();
      tx.del(recordKey(ns, snapshotter, key));
      await tx.putObject(ns, `snapshots/${snapshotter}`, name, {
        backendKey: backendName,
        kind: 'Committed',
        parent: rec.parent,
        labels: dropEmpty(labels),
        createdAt: now,
        updatedAt: now,
      } satisfies SnapshotRecord);
      await this.attach(tx, ns, snapshotter, name, lease);
    });
  }

  async remove(ns: string, snapshotter: string, key: string): Promise<void> {
    await this.db.update((tx) => this.removeIn(tx, ns, snapshotter, key));
  }

  /** Removal inside an update (the collector's sweep uses it too). */
  async removeIn(tx: Transaction, ns: string, snapshotter: string, key: string): Promise<void> {
    const rec = await this.record(tx, ns, snapshotter, key);
    for await (const [, other] of tx.scan<SnapshotRecord>(recordPrefix(ns, snapshotter))) {
      if (other.parent === key) throw new BerthError('FailedPrecondition', 'cannot remove snapshot with child');
    }
    tx.del(recordKey(ns, snapshotter, key));
    tx.afterCommit(() => {
      this.unrecorded.push({ snapshotter, backendKey: rec.backendKey });
      this.sweeping ??= new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.sweep());
    });
  }

  /** Removes the backend snapshots of removed records; what fails is left to reconcile(). */
  private async sweep(): Promise<void> {
    for (let next = this.unrecorded.shift(); next; next = this.unrecorded.shift()) {
      await this.backends.get(next.snapshotter)?.remove(next.backendKey).catch(() => undefined);
    }
    this.sweeping = undefined;
  }

  /** Resolves once the backend snapshots of records removed so far are gone (or left to reconcile). */
  async settled(): Promise<void> {
    while (this.sweeping) await this.sweeping;
  }

  /**
   * Removes backend snapshots that no record names, children first. Inside an update, so no
   * create (whose backend prepare runs inside its own update) is half done.
   */
  async reconcile(tx: Transaction): Promise<string[]> {
    await this.settled();
    const removed: string[] = [];
    for (const [name, backend] of this.backends) {
      const recorded = new Set<string>();
      for await (const [ns] of tx.scan(namespaceKey(''))) {
        for await (const [, rec] of tx.scan<SnapshotRecord>(recordPrefix(ns, name))) recorded.add(rec.backendKey);
      }
      const stray = new Map<string, string>(); // backend key → backend parent
      await backend.walk((info) => {
        if (!recorded.has(info.name)) stray.set(info.name, info.parent ?? '');
      });
      let pending = [...stray.keys()];
      while (pending.length > 0) {
        const parents = new Set(pending.map((k) => stray.get(k)));
        const leaves = pending.filter((k) => !parents.has(k));
        if (leaves.length === 0) break; // a recorded child keeps its stray parent: leave both
        for (const key of leaves) {
          await backend.remove(key).then(
            () => removed.push(`${name}/${key}`),
            () => undefined,
          );
        }
        pending = pending.filter((k) => !leaves.includes(k));
      }
    }
    return removed;
  }

  async stat(ns: string, snapshotter: string, key: string): Promise<SnapshotInfo> {
    return toInfo(key, await this.record(this.db, ns, snapshotter, key));
  }

  async update(ns: string, snapshotter: string, key: string, labels: Labels, paths: readonly string[]): Promise<SnapshotInfo> {
    return this.db.update(async (tx) => {
      const rec = await this.record(tx, ns, snapshotter, key);
      const updated: SnapshotRecord = {
        ...rec,
        labels: applyLabelPaths(rec.labels, labels, paths, () => false, (p) => `cannot update ${JSON.stringify(p)} field on snapshot ${JSON.stringify(key)}`),
        updatedAt: nowTimestamp(),
      };
      tx.put(recordKey(ns, snapshotter, key), updated);
      return toInfo(key, updated);
    });
  }

  async list(ns: string, snapshotter: string): Promise<SnapshotInfo[]> {
    this.backend(snapshotter);
    const out: SnapshotInfo[] = [];
    for await (const [key, rec] of this.db.scan<SnapshotRecord>(recordPrefix(ns, snapshotter))) out.push(toInfo(key, rec));
    return out;
  }

  async usage(ns: string, snapshotter: string, key: string): Promise<Usage> {
    const rec = await this.record(this.db, ns, snapshotter, key);
    return this.backend(snapshotter).usage(rec.backendKey);
  }

  /** Every snapshot of a namespace across snapshotters, for the collector. */
  async *all(tx: Transaction, ns: string): AsyncIterable<{ snapshotter: string; key: string; parent: string; labels: Labels }> {
    for (const snapshotter of this.backends.keys()) {
      for await (const [key, rec] of tx.scan<SnapshotRecord>(recordPrefix(ns, snapshotter))) {
        yield { snapshotter, key, parent: rec.parent, labels: rec.labels };
      }
    }
  }
}

function toInfo(name: string, rec: SnapshotRecord): SnapshotInfo {
  return { name, parent: rec.parent, kind: rec.kind, labels: { ...rec.labels }, createdAt: rec.createdAt, updatedAt: rec.updatedAt };
}

function dropEmpty(labels: Labels): Labels {
  return Object.fromEntries(Object.entries(labels ?? {}).filter(([, v]) => v !== ''));
}
