// The one metadata database of a berthd root: a level DB holding namespaces and every
// namespaced record (images, containers, leases, content and snapshot records), so that
// writes which belong together go in one atomic batch.
//
// Key layout (plain text, so a dump is readable):
//   ns/<namespace>                    namespace record (labels)
//   o/<namespace>/<kind>/<id>         an object of a kind ("images", "containers", …) in a namespace
//   s/<name>                          daemon-wide settings
//
// Writers are serialised (one update at a time, like bolt's single writer); each update reads
// through its own pending writes and commits them as one batch. Readers run concurrently.
//
// Reads are served from an in-memory copy of every committed entry (the JSON text level holds),
// loaded at open and updated after each batch is on disk, as bolt serves them from its mmap: a
// level read is a round trip through libuv's thread pool, and a Tasks/Get or Content/Info would
// wait for several. Each read parses the text anew, so callers may change what they get.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Level } from 'level';
import { BerthError } from '../errdefs';

export interface NamespaceRecord {
  labels: Record<string, string>;
}

type Op = { type: 'put'; key: string; value: unknown } | { type: 'del'; key: string };

export const namespaceKey = (ns: string) => `ns/${ns}`;
export const objectPrefix = (ns: string, kind?: string) => (kind ? `o/${ns}/${kind}/` : `o/${ns}/`);
export const objectKey = (ns: string, kind: string, id: string) => `o/${ns}/${kind}/${id}`;

/** Committed entries in key order: JSON text by key, and the sorted keys for prefix scans. */
class Mirror {
  private readonly values = new Map<string, string>();
  private keys: string[] = [];

  load(entries: Array<[string, string]>): void {
    for (const [k, v] of entries) this.values.set(k, v);
    this.keys = [...this.values.keys()].sort(compareKeys);
  }

  get(key: string): string | undefined {
    return this.values.get(key);
  }

  /** Entries whose key starts with `prefix`, copied (a scan sees the state when it began). */
  range(prefix: string): Array<[string, string]> {
    const out: Array<[string, string]> = [];
    for (let i = this.lowerBound(prefix); i < this.keys.length && this.keys[i]!.startsWith(prefix); i++) {
      out.push([this.keys[i]!, this.values.get(this.keys[i]!)!]);
    }
    return out;
  }

  hasPrefix(prefix: string): boolean {
    return this.keys[this.lowerBound(prefix)]?.startsWith(prefix) ?? false;
  }

  apply(ops: Array<{ type: 'put'; key: string; value: string } | { type: 'del'; key: string }>): void {
    // Many new or removed keys (an import, a garbage collection): one sort, not many splices.
    const bulk = ops.length > 64;
    for (const op of ops) {
      const had = this.values.has(op.key);
      if (op.type === 'put') {
        this.values.set(op.key, op.value);
        if (!had && !bulk) this.keys.splice(this.lowerBound(op.key), 0, op.key);
      } else if (had) {
        this.values.delete(op.key);
        if (!bulk) this.keys.splice(this.lowerBound(op.key), 1);
      }
    }
    if (bulk) this.keys = [...this.values.keys()].sort(compareKeys);
  }

  private lowerBound(key: string): number {
    let lo = 0;
    let hi = this.keys.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.keys[mid]! < key) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

// level orders keys by their UTF-8 bytes; for the keys we write (no surrogate pairs) UTF-16 code
// unit order, JavaScript's `<`, is the same.
const compareKeys = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

export class MetadataDB {
  private writeQueue: Promise<unknown> = Promise.resolve();
  private readonly mirror = new Mirror();

  private constructor(private readonly db: Level<string, string>) {}

  /** Opens (creating if needed) the database in `dir`; a second daemon on the same root is refused. */
  static async open(dir: string): Promise<MetadataDB> {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    // JSON text, encoded here (as level's 'json' encoding would): the same text goes to the mirror
    const db = new Level<string, string>(dir, { valueEncoding: 'utf8' });
    try {
      await db.open();
    } catch (err) {
      const cause = (err as { cause?: Error }).cause ?? err;
      const detail = String((cause as Error).message ?? cause);
      if (/lock/i.test(detail)) {
        throw new BerthError(
          'Unavailable',
          `metadata database ${path.resolve(dir)} is locked: is another berthd running with the same root?`,
          { cause: err },
        );
      }
      throw err;
    }
    const metadata = new MetadataDB(db);
    metadata.mirror.load(await db.iterator().all());
    return metadata;
  }

  async close(): Promise<void> {
    await this.writeQueue.catch(() => undefined);
    await this.db.close();
  }

  async get<T>(key: string): Promise<T | undefined> {
    const text = this.mirror.get(key);
    return text === undefined ? undefined : (JSON.parse(text) as T);
  }

  /** Entries whose key starts with `prefix`, in key order, with the prefix removed from the key. */
  async *scan<T>(prefix: string): AsyncIterable<[string, T]> {
    for (const [key, text] of this.mirror.range(prefix)) yield [key.slice(prefix.length), JSON.parse(text) as T];
  }

  async hasPrefix(prefix: string): Promise<boolean> {
    return this.mirror.hasPrefix(prefix);
  }

  /** @internal Writes a transaction's operations: to disk (one synced batch), then to the mirror. */
  async write(ops: Op[]): Promise<void> {
    const encoded = ops.map((op) => (op.type === 'put' ? { type: 'put' as const, key: op.key, value: JSON.stringify(op.value) } : op));
    await this.db.batch(encoded, { sync: true });
    this.mirror.apply(encoded);
  }

  /**
   * Runs `fn` as the only writer; its writes are committed in one batch if it resolves and
   * dropped if it throws. Callbacks registered with `tx.afterCommit` (event publication) run
   * only once the batch is on disk.
   */
  update<T>(fn: (tx: Transaction) => Promise<T>): Promise<T> {
    const run = this.writeQueue.then(async () => {
      const tx = new Transaction(this);
      try {
        const result = await fn(tx);
        await tx.commit();
        return result;
      } catch (err) {
        await tx.abort();
        throw err;
      }
    });
    this.writeQueue = run.catch(() => undefined);
    return run;
  }
}

export class Transaction {
  private readonly pending = new Map<string, Op>();
  private readonly committed: Array<() => void> = [];
  private readonly aborted: Array<() => Promise<unknown> | void> = [];

  constructor(private readonly db: MetadataDB) {}

  async get<T>(key: string): Promise<T | undefined> {
    const op = this.pending.get(key);
    if (op) return op.type === 'put' ? (op.value as T) : undefined;
    return this.db.get<T>(key);
  }

  put(key: string, value: unknown): void {
    this.pending.set(key, { type: 'put', key, value });
  }

  del(key: string): void {
    this.pending.set(key, { type: 'del', key });
  }

  /** Scans committed entries merged with this transaction's own pending writes. */
  async *scan<T>(prefix: string): AsyncIterable<[string, T]> {
    const seen = new Set<string>();
    const merged: Array<[string, T]> = [];
    for await (const [rest, value] of this.db.scan<T>(prefix)) {
      const op = this.pending.get(prefix + rest);
      seen.add(prefix + rest);
      if (!op) merged.push([rest, value]);
      else if (op.type === 'put') merged.push([rest, op.value as T]);
    }
    for (const [key, op] of this.pending) {
      if (op.type === 'put' && key.startsWith(prefix) && !seen.has(key)) {
        merged.push([key.slice(prefix.length), op.value as T]);
      }
    }
    merged.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    yield* merged;
  }

  async hasPrefix(prefix: string): Promise<boolean> {
    for await (const _ of this.scan(prefix)) return true;
    return false;
  }

  /** Brings a namespace into being if it does not exist yet (the first write in it does this). */
  async touchNamespace(ns: string): Promise<void> {
    if ((await this.get(namespaceKey(ns))) === undefined) {
      this.put(namespaceKey(ns), { labels: {} } satisfies NamespaceRecord);
    }
  }

  /** Writes a namespaced object, creating its namespace on first use. */
  async putObject(ns: string, kind: string, id: string, value: unknown): Promise<void> {
    await this.touchNamespace(ns);
    this.put(objectKey(ns, kind, id), value);
  }

  afterCommit(fn: () => void): void {
    this.committed.push(fn);
  }

  /** Undoes work done outside the database (a snapshot directory) when the update fails. */
  onAbort(fn: () => Promise<unknown> | void): void {
    this.aborted.push(fn);
  }

  /** @internal */
  async abort(): Promise<void> {
    for (const fn of this.aborted.reverse()) await fn();
  }

  /** @internal */
  async commit(): Promise<void> {
    if (this.pending.size > 0) await this.db.write([...this.pending.values()]);
    for (const fn of this.committed) fn();
  }
}
