// The metadata layer of a berthd root: one database, and the namespaced stores built on it.
import * as path from 'node:path';
import type { Logger } from 'pino';
import type { ContentStore } from '../../content-store';
import { MetadataContent } from './content';
import { MetadataDB } from './db';
import { GarbageCollector } from './gc';
import { ContainerStore } from './containers';
import { ImageStore } from './images';
import { LeaseStore } from './leases';
import { NamespaceStore } from './namespaces';
import { MetadataSnapshots } from './snapshots';
import type { Snapshotter } from '../../snapshotter';

export class Metadata {
  readonly namespaces: NamespaceStore;
  readonly leases: LeaseStore;
  readonly images: ImageStore;
  readonly containers: ContainerStore;
  readonly snapshots: MetadataSnapshots;
  readonly content: MetadataContent;
  readonly gc: GarbageCollector;

  private constructor(
    readonly db: MetadataDB,
    contentStore: ContentStore,
    snapshotters: Map<string, Snapshotter>,
    log: Logger,
  ) {
    this.namespaces = new NamespaceStore(db);
    this.leases = new LeaseStore(db);
    this.images = new ImageStore(db);
    this.containers = new ContainerStore(db);
    this.content = new MetadataContent(db, contentStore, this.leases);
    this.snapshots = new MetadataSnapshots(db, this.leases, snapshotters);
    this.gc = new GarbageCollector(db, this.content, this.leases, log);
    this.gc.snapshots = {
      list: (tx, ns) => this.snapshots.all(tx, ns),
      remove: (tx, ns, snapshotter, key) => this.snapshots.removeIn(tx, ns, snapshotter, key),
      reconcile: (tx) => this.snapshots.reconcile(tx),
    };
  }

  /** Opens the database in `<root>/db`, removes backend snapshots a crash left without a record,
   * and arms collection for the next lease expiry. */
  static async open(root: string, contentStore: ContentStore, log: Logger, snapshotters = new Map<string, Snapshotter>()): Promise<Metadata> {
    const db = await MetadataDB.open(path.join(root, 'db'));
    const m = new Metadata(db, contentStore, snapshotters, log);
    const stray = await db.update((tx) => m.snapshots.reconcile(tx));
    if (stray.length) log.info({ snapshots: stray }, 'removed snapshots that no record named');
    await m.gc.armFromLeases();
    return m;
  }

  async close(): Promise<void> {
    this.gc.close();
    await this.snapshots.settled();
    await this.db.close();
  }
}
