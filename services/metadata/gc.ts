// Garbage collection: mark and sweep per namespace, as containerd does it.
//
// Roots: images, containers, unexpired leases (what they hold), and anything labelled
// `containerd.io/gc.root`. Edges: `containerd.io/gc.ref.content*` and
// `containerd.io/gc.ref.snapshot.<snapshotter>` labels, and snapshot parents. Swept: unmarked
// content records, expired leases, ingests whose lease is gone or whose data expired, and blobs
// no namespace refers to any more (unless being read). A collection runs as one metadata update,
// so it never interleaves with a commit. GC removals publish no events (containerd neither).
import type { Logger } from 'pino';
import { namespaceKey, objectPrefix, type MetadataDB, type Transaction } from './db';
import { contentKey, storeRef, type ContentRecord, type MetadataContent } from './content';
import { contentRefs, expiresAt, isExpired, LABEL_GC_ROOT, snapshotRefs, type Labels } from './labels';
import type { LeaseRecord, LeaseStore } from './leases';

export interface GcReport {
  content: Array<{ namespace: string; digest: string }>;
  blobs: string[];
  leases: Array<{ namespace: string; id: string }>;
  ingests: Array<{ namespace: string; ref: string }>;
  /** Backend snapshots no record named: "<snapshotter>/<backend key>". */
  snapshots: string[];
  durationMs: number;
}

/** What the collector needs to know of snapshots (the snapshot layer registers it). */
export interface SnapshotGraph {
  /** Snapshots of a namespace: key → parent key and labels, per snapshotter. */
  list(tx: Transaction, ns: string): AsyncIterable<{ snapshotter: string; key: string; parent: string; labels: Labels }>;
  /** Removes an unmarked snapshot inside the collection's update. */
  remove(tx: Transaction, ns: string, snapshotter: string, key: string): Promise<void>;
  /** Removes backend snapshots that no record names; returns "<snapshotter>/<backend key>"s. */
  reconcile(tx: Transaction): Promise<string[]>;
}

interface ImageLike {
  target?: { digest?: string };
  labels?: Labels;
}
interface ContainerLike {
  snapshotter?: string;
  snapshotKey?: string;
  labels?: Labels;
}

const snapshotNode = (snapshotter: string, key: string) => `${snapshotter}/${key}`;

export class GarbageCollector {
  private timer: NodeJS.Timeout | undefined;
  private expiryTimer: NodeJS.Timeout | undefined;
  private running: Promise<GcReport> | undefined;
  private closed = false;
  snapshots: SnapshotGraph | undefined;

  constructor(
    private readonly db: MetadataDB,
    private readonly content: MetadataContent,
    private readonly leases: LeaseStore,
    private readonly log: Logger,
    private readonly delayMs = 100,
  ) {}

  /** Asks for a collection soon; deletions in quick succession share one. */
  schedule(): void {
    if (this.closed || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.collect().catch((err) => this.log.error({ err }, 'garbage collection failed'));
    }, this.delayMs);
    this.timer.unref();
  }

  /** Runs a collection now (after the one in progress, if any) and reports what it removed. */
  collect(): Promise<GcReport> {
    // One already running may have marked before the caller's deletion: queue a fresh one.
    const next = (this.running ?? Promise.resolve()).catch(() => undefined).then(() => this.run());
    this.running = next;
    return next;
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
  }

  private async run(): Promise<GcReport> {
    const started = Date.now();
    const report: GcReport = { content: [], blobs: [], leases: [], ingests: [], snapshots: [], durationMs: 0 };
    let nextExpiry: number | undefined;
    await this.db.update(async (tx) => {
      const referenced = new Set<string>();
      for await (const [ns] of tx.scan(namespaceKey(''))) {
        const expiry = await this.collectNamespace(tx, ns, report, referenced);
        if (expiry !== undefined && (nextExpiry === undefined || expiry < nextExpiry)) nextExpiry = expiry;
      }
      if (this.snapshots) report.snapshots = await this.snapshots.reconcile(tx);
      for await (const info of this.content.store.walk()) {
        if (referenced.has(info.digest) || this.content.isBeingRead(info.digest)) continue;
        try {
          await this.content.store.delete(info.digest);
          report.blobs.push(info.digest);
        } catch (err) {
          this.log.warn({ err, digest: info.digest }, 'could not remove blob');
        }
      }
    });
    report.durationMs = Date.now() - started;
    this.armExpiry(nextExpiry);
    if (report.content.length || report.blobs.length || report.leases.length || report.ingests.length || report.snapshots.length) {
      this.log.debug({ report }, 'garbage collected');
    }
    return report;
  }

  /** Marks and sweeps one namespace; returns the next lease expiry time in it. */
  private async collectNamespace(tx: Transaction, ns: string, report: GcReport, referenced: Set<string>): Promise<number | undefined> {
    const now = Date.now();
    const marked = new Set<string>(); // "c:<digest>" and "s:<snapshotter>/<key>"
    const queue: string[] = [];
    const markContent = (d: string | undefined) => {
      if (d && !marked.has(`c:${d}`)) {
        marked.add(`c:${d}`);
        queue.push(`c:${d}`);
      }
    };
    const markSnapshot = (snapshotter: string | undefined, key: string | undefined) => {
      if (!snapshotter || !key) return;
      const id = `s:${snapshotNode(snapshotter, key)}`;
      if (!marked.has(id)) {
        marked.add(id);
        queue.push(id);
      }
    };
    const markLabels = (labels: Labels | undefined) => {
      for (const d of contentRefs(labels)) markContent(d);
      for (const r of snapshotRefs(labels)) markSnapshot(r.snapshotter, r.key);
    };

    // Leases: live ones are roots for what they hold, expired ones go.
    const liveLeases = new Set<string>();
    let nextExpiry: number | undefined;
    for await (const [id, lease] of tx.scan<LeaseRecord>(objectPrefix(ns, 'leases'))) {
      if (isExpired(lease.labels, now)) {
        await this.leases.delete(tx, ns, id);
        report.leases.push({ namespace: ns, id });
        continue;
      }
      liveLeases.add(id);
      const at = expiresAt(lease.labels);
      if (at !== undefined && (nextExpiry === undefined || at < nextExpiry)) nextExpiry = at;
    }
    const leasedIngests = new Set<string>();
    for await (const { lease, resource } of this.leases.allResources(tx, ns)) {
      if (!liveLeases.has(lease)) continue;
      if (resource.type === 'content') markContent(resource.id);
      else if (resource.type === 'ingests') leasedIngests.add(resource.id);
      else if (resource.type.startsWith('snapshots/')) markSnapshot(resource.type.slice('snapshots/'.length), resource.id);
    }

    for await (const [, image] of tx.scan<ImageLike>(objectPrefix(ns, 'images'))) {
      markContent(image.target?.digest);
      markLabels(image.labels);
    }
    for await (const [, container] of tx.scan<ContainerLike>(objectPrefix(ns, 'containers'))) {
      markSnapshot(container.snapshotter, container.snapshotKey);
      markLabels(container.labels);
    }
    const records = new Map<string, ContentRecord>();
    for await (const [digest, rec] of tx.scan<ContentRecord>(objectPrefix(ns, 'content'))) {
      records.set(digest, rec);
      if (rec.labels?.[LABEL_GC_ROOT] !== undefined) markContent(digest);
    }
    const snapshots = new Map<string, { parent: string; labels: Labels; snapshotter: string; key: string }>();
    if (this.snapshots) {
      for await (const s of this.snapshots.list(tx, ns)) {
        snapshots.set(snapshotNode(s.snapshotter, s.key), s);
        if (s.labels?.[LABEL_GC_ROOT] !== undefined) markSnapshot(s.snapshotter, s.key);
      }
    }

    // Follow the edges.
    while (queue.length > 0) {
      const node = queue.pop()!;
      if (node.startsWith('c:')) {
        markLabels(records.get(node.slice(2))?.labels);
      } else {
        const s = snapshots.get(node.slice(2));
        if (s) {
          if (s.parent) markSnapshot(s.snapshotter, s.parent);
          markLabels(s.labels);
        }
      }
    }

    // Sweep.
    for (const digest of records.keys()) {
      if (marked.has(`c:${digest}`)) {
        referenced.add(digest);
      } else {
        tx.del(contentKey(ns, digest));
        report.content.push({ namespace: ns, digest });
      }
    }
    if (this.snapshots) {
      // Children before parents: repeat until a pass removes nothing more.
      let pending = [...snapshots].filter(([node]) => !marked.has(`s:${node}`)).map(([, s]) => s);
      while (pending.length > 0) {
        const left: typeof pending = [];
        for (const s of pending) {
          if (pending.some((o) => o !== s && o.snapshotter === s.snapshotter && o.parent === s.key)) left.push(s);
          else await this.snapshots.remove(tx, ns, s.snapshotter, s.key);
        }
        if (left.length === pending.length) break; // a cycle cannot happen; never loop for ever
        pending = left;
      }
    }
    for await (const [ref, rec] of tx.scan<{ lease?: string }>(objectPrefix(ns, 'ingests'))) {
      const leaseGone = rec.lease !== undefined && !leasedIngests.has(ref);
      let dataGone = false;
      if (!leaseGone) {
        try {
          await this.content.store.status(storeRef(ns, ref));
        } catch {
          dataGone = true;
        }
      }
      if (leaseGone || dataGone) {
        await this.content.dropIngest(tx, ns, ref);
        report.ingests.push({ namespace: ns, ref });
      }
    }
    return nextExpiry;
  }

  /** At start-up: collects when the first lease expires (now, if one already has). Nothing else
   * triggers a collection at start, so content just written by a client is not raced. */
  async armFromLeases(): Promise<void> {
    let next: number | undefined;
    for await (const [ns] of this.db.scan(namespaceKey(''))) {
      for await (const [, lease] of this.db.scan<LeaseRecord>(objectPrefix(ns, 'leases'))) {
        const at = expiresAt(lease.labels);
        if (at !== undefined && (next === undefined || at < next)) next = at;
      }
    }
    this.armExpiry(next);
  }

  /** Collects again when the next lease expires, so expired leases release what they held. */
  private armExpiry(at: number | undefined): void {
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    this.expiryTimer = undefined;
    if (at === undefined || this.closed) return;
    const delay = Math.min(Math.max(0, at - Date.now()) + 1000, 2 ** 31 - 1);
    this.expiryTimer = setTimeout(() => this.schedule(), delay);
    this.expiryTimer.unref();
  }
}
