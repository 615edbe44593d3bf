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
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Level } from 'level';
import { BerthError } from '../errdefs';

export interface NamespaceRecord {
  labels: Record<string, string>;
}

type Op = { type: 'put'; key: string; value: unknown } | { type: 'del'; key: string };

/** The smallest key greater than every key starting with `prefix` (prefix scan bound). */
function prefixEnd(prefix: string): string {
  return prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1);
}

export const namespaceKey = (ns: string) => `ns/${ns}`;
export const objectPrefix = (ns: string, kind?: string) => (kind ? `o/${ns}/${kind}/` : `o/${ns}/`);
export const objectKey = (ns: string, kind: string, id: string) => `o/${ns}/${kind}/${id}`;

export class MetadataDB {
  private writeQueue: Promise<unknown> = Promise.resolve();

  private constructor(private readonly db: Level<string, any>) {}

  /** Opens (creating if needed) the database in `dir`; a second daemon on the same root is refused. */
  static async open(dir: string): Promise<MetadataDB> {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const db = new Level<string, any>(dir, { valueEncoding: 'json' });
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
    return new MetadataDB(db);
  }

  async close(): Promise<void> {
    await this.writeQueue.catch(() => undefined);
    await this.db.close();
  }

  async get<T>(key: string): Promise<T | undefined> {
    return (await this.db.get(key)) as T | undefined;
  }

  /** Entries whose key starts with `prefix`, in key order, with the prefix removed from the key. */
  async *scan<T>(prefix: string): AsyncIterable<[string, T]> {
    for await (const [key, value] of this.db.iterator({ gte: prefix, lt: prefixEnd(prefix) })) {
      yield [key.slice(prefix.length), value as T];
    }
  }

  async hasPrefix(prefix: string): Promise<boolean> {
    for await (const _ of this.db.keys({ gte: prefix, lt: prefixEnd(prefix), limit: 1 })) return true;
    return false;
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
        await tx.commit(this.db);
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
  async commit(db: Level<string, any>): Promise<void> {
    if (this.pending.size > 0) {
      await db.batch(
        [...this.pending.values()].map((op) =>
          op.type === 'put' ? { type: 'put' as const, key: op.key, value: op.value } : { type: 'del' as const, key: op.key },
        ),
        { sync: true },
      );
    }
    for (const fn of this.committed) fn();
  }
}
