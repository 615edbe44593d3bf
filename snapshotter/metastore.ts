// The snapshotter's own small metadata: key → numeric id, kind, parent, labels, times, and the
// usage measured at commit. containerd keeps this in a bbolt file (`metadata.db`); we keep one
// JSON document, `metadata.json`, rewritten whole on every change:
//
//   { "version": 1, "nextId": 7,
//     "snapshots": { "<key>": { "id": "3", "kind": "Committed", "parent": "<key>", "labels": {…},
//                               "created": "<RFC 3339>", "updated": "<RFC 3339>",
//                               "size": 4096, "inodes": 1 } } }
//
// Crash safety: a change is written to `metadata.json.tmp`, fsynced, renamed over
// `metadata.json`, and the directory fsynced — a crash leaves the old or the new document,
// never a torn one. Changes are made on a copy and become visible only once persisted, so a
// failed write changes nothing. One change at a time (callers hold the snapshotter's lock).
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { corruptMetadata } from './errors';
import type { Kind, Labels } from './types';

export interface SnapshotRecord {
  /** The directory name under `snapshots/`. */
  id: string;
  kind: Kind;
  /** Parent key, '' for none. */
  parent: string;
  labels: Labels;
  created: string;
  updated: string;
  /** Usage measured at commit (committed snapshots only). */
  size?: number;
  inodes?: number;
}

interface Document {
  version: 1;
  nextId: number;
  snapshots: Record<string, SnapshotRecord>;
}

export const METADATA_FILE = 'metadata.json';

/** The records, as one changeable copy handed to `MetaStore.update`. */
export class Draft {
  constructor(
    readonly snapshots: Map<string, SnapshotRecord>,
    public nextId: number,
  ) {}
}

export class MetaStore {
  private snapshots: Map<string, SnapshotRecord>;
  private nextId: number;

  private constructor(
    readonly file: string,
    doc: Document,
  ) {
    this.snapshots = new Map(Object.entries(doc.snapshots));
    this.nextId = doc.nextId;
  }

  /** Loads `<root>/metadata.json`, or starts empty when there is none. */
  static async open(root: string): Promise<MetaStore> {
    const file = path.join(root, METADATA_FILE);
    let text: string | undefined;
    try {
      text = await fsp.readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    let doc: Document = { version: 1, nextId: 1, snapshots: {} };
    if (text !== undefined) {
      try {
        doc = JSON.parse(text) as Document;
      } catch (err) {
        throw corruptMetadata(file, (err as Error).message);
      }
      if (doc.version !== 1 || typeof doc.nextId !== 'number' || typeof doc.snapshots !== 'object' || doc.snapshots === null) {
        throw corruptMetadata(file, `unknown format (version ${String(doc.version)})`);
      }
    }
    return new MetaStore(file, doc);
  }

  get(key: string): SnapshotRecord | undefined {
    return this.snapshots.get(key);
  }

  /** A snapshot of the records, safe to iterate while others change the store. */
  list(): Array<[string, SnapshotRecord]> {
    return [...this.snapshots];
  }

  /** Directory ids in use. */
  ids(): Set<string> {
    const ids = new Set<string>();
    for (const r of this.snapshots.values()) ids.add(r.id);
    return ids;
  }

  /** The next id the sequence would hand out (ids are never reused while recorded). */
  get nextIdHint(): number {
    return this.nextId;
  }

  hasChildren(key: string): boolean {
    for (const r of this.snapshots.values()) if (r.parent === key) return true;
    return false;
  }

  /** The ids of `key`'s parent chain, nearest first (empty for a parentless snapshot). */
  parentIds(key: string): string[] {
    const ids: string[] = [];
    let parent = this.snapshots.get(key)?.parent ?? '';
    const seen = new Set<string>();
    while (parent !== '') {
      const r = this.snapshots.get(parent);
      if (!r || seen.has(parent)) throw corruptMetadata(this.file, `broken parent chain at ${JSON.stringify(parent)}`);
      seen.add(parent);
      ids.push(r.id);
      parent = r.parent;
    }
    return ids;
  }

  /**
   * Applies `change` to a copy of the records and persists the result; the store changes only
   * when the write succeeded. Returns what `change` returned.
   */
  async update<T>(change: (draft: Draft) => T): Promise<T> {
    const copy = new Map<string, SnapshotRecord>();
    for (const [k, r] of this.snapshots) copy.set(k, { ...r, labels: { ...r.labels } });
    const draft = new Draft(copy, this.nextId);
    const result = change(draft);
    const doc: Document = { version: 1, nextId: draft.nextId, snapshots: Object.fromEntries(draft.snapshots) };
    await writeAtomic(this.file, JSON.stringify(doc));
    this.snapshots = draft.snapshots;
    this.nextId = draft.nextId;
    return result;
  }
}

async function writeAtomic(file: string, data: string): Promise<void> {
  const tmp = `${file}.tmp`;
  const fh = await fsp.open(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC, 0o600);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await fsp.rename(tmp, file);
  const dir = await fsp.open(path.dirname(file), fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}
