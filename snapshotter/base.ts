// What overlay and native share (containerd's overlay.go and native.go have the same shape):
// the root layout, the metadata, the lock, and the life cycle of snapshot directories. Each
// implementation supplies how a new directory is filled and which mounts describe it.
//
//   <root>/metadata.json        key → id, kind, parent, labels, times, usage (metastore.ts)
//   <root>/lock                 flock'ed while a snapshotter has the root open
//   <root>/snapshots/<id>/fs    the snapshot's files (overlay: its upper dir)
//   <root>/snapshots/<id>/work  overlay work dir (active overlay snapshots only)
//   <root>/snapshots/new-*      a snapshot being created (renamed to <id> when complete)
//
// Creating a snapshot: fill `snapshots/new-XXXXXX`, rename it to `snapshots/<id>`, then record
// it in metadata.json (atomic replace). A crash before the record leaves a directory no record
// names, which cleanup() removes; a crash never leaves a record without its directory.
// Removing: the record goes first, then the directory (a failure there is left to cleanup()).
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { objectAdaptor, parseAll } from '../services/filters';
import { diskUsage } from './du';
import * as errs from './errors';
import { MetaStore, type SnapshotRecord } from './metastore';
import { tryLockExclusive, unlock } from './sys';
import type { Info, Kind, Labels, Mount, SnapshotOptions, Snapshotter, Usage, WalkFn } from './types';

/** Runs async sections one at a time, in call order. */
class Mutex {
  private tail: Promise<unknown> = Promise.resolve();
  run<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.tail.then(fn);
    this.tail = result.catch(() => undefined);
    return result;
  }
}

/** A snapshot about to be created, as handed to `populate` and `mountsFor`. */
export interface SnapshotDir {
  /** The directory id (`snapshots/<id>`). */
  id: string;
  kind: Kind;
  /** Parent chain ids, nearest first. */
  parentIds: string[];
}

/** The root opened and locked, with its metadata loaded. */
export interface OpenedRoot {
  root: string;
  ms: MetaStore;
  lockFd: number;
}

/** Creates `root` and `root/snapshots`, takes the root's lock and loads the metadata. */
export async function openRoot(root: string): Promise<OpenedRoot> {
  root = path.resolve(root);
  await fsp.mkdir(root, { recursive: true, mode: 0o700 });
  await fsp.mkdir(path.join(root, 'snapshots'), { recursive: true, mode: 0o700 });
  const lockFd = fs.openSync(path.join(root, 'lock'), fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600);
  try {
    if (!tryLockExclusive(lockFd)) throw errs.rootInUse(root);
    const ms = await MetaStore.open(root);
    return { root, ms, lockFd };
  } catch (err) {
    fs.closeSync(lockFd);
    throw err;
  }
}

function copyLabels(labels: Labels | undefined): Labels {
  const out: Labels = {};
  if (labels) for (const [k, v] of Object.entries(labels)) if (v !== '') out[k] = v;
  return out;
}

export abstract class DirectorySnapshotter implements Snapshotter {
  readonly root: string;
  protected readonly ms: MetaStore;
  private lockFd: number;
  private readonly mutex = new Mutex();
  private closed = false;

  protected constructor(opened: OpenedRoot) {
    this.root = opened.root;
    this.ms = opened.ms;
    this.lockFd = opened.lockFd;
  }

  /** Fills a new snapshot's temporary directory `dir` (it exists, empty, mode 0700). */
  protected abstract populate(dir: string, s: SnapshotDir): Promise<void>;

  /** The mounts of an active snapshot or view. */
  protected abstract mountsFor(s: SnapshotDir): Mount[];

  /** Whether remove() leaves the directory to cleanup(). */
  protected asyncRemove = false;

  /** Adds implementation labels to infos handed out (overlay's upperdir label). */
  protected decorate(info: Info, _id: string): Info {
    return info;
  }

  /** `<root>/snapshots` */
  get snapshotsDir(): string {
    return path.join(this.root, 'snapshots');
  }

  /** A snapshot directory's `fs` (the files; overlay's upper dir). */
  fsPath(id: string): string {
    return path.join(this.root, 'snapshots', id, 'fs');
  }

  workPath(id: string): string {
    return path.join(this.root, 'snapshots', id, 'work');
  }

  private checkOpen(): void {
    if (this.closed) throw errs.closed();
  }

  private record(key: string): SnapshotRecord {
    this.checkOpen();
    const r = this.ms.get(key);
    if (!r) throw errs.snapshotNotFound(key);
    return r;
  }

  private info(key: string, r: SnapshotRecord): Info {
    return this.decorate(
      {
        kind: r.kind,
        name: key,
        parent: r.parent,
        labels: { ...r.labels },
        createdAt: new Date(r.created),
        updatedAt: new Date(r.updated),
      },
      r.id,
    );
  }

  async stat(key: string): Promise<Info> {
    return this.info(key, this.record(key));
  }

  async update(info: Pick<Info, 'name'> & Partial<Info>, fieldpaths: readonly string[] = []): Promise<Info> {
    return this.mutex.run(async () => {
      const key = info.name;
      this.record(key);
      const updated = await this.ms.update((draft) => {
        const r = draft.snapshots.get(key)!;
        let labels = { ...r.labels };
        if (fieldpaths.length === 0) {
          labels = copyLabels(info.labels);
        } else {
          for (const p of fieldpaths) {
            if (p.startsWith('labels.')) {
              const k = p.slice('labels.'.length);
              const v = info.labels?.[k];
              if (v === undefined || v === '') delete labels[k];
              else labels[k] = v;
            } else if (p === 'labels') {
              labels = copyLabels(info.labels);
            } else {
              throw errs.immutableField(p, key);
            }
          }
        }
        r.labels = labels;
        r.updated = new Date().toISOString();
        return r;
      });
      return this.info(key, updated);
    });
  }

  async usage(key: string): Promise<Usage> {
    const r = this.record(key);
    if (r.kind === 'Active') {
      try {
        return await diskUsage(this.fsPath(r.id));
      } catch (err) {
        if ((err as { code?: string }).code === 'ENOENT' && !this.ms.get(key)) throw errs.snapshotNotFound(key);
        throw err;
      }
    }
    return { size: r.size ?? 0, inodes: r.inodes ?? 0 };
  }

  async mounts(key: string): Promise<Mount[]> {
    const r = this.record(key);
    if (r.kind !== 'Active' && r.kind !== 'View') throw errs.notActiveOrView(key);
    return this.mountsFor({ id: r.id, kind: r.kind, parentIds: this.ms.parentIds(key) });
  }

  prepare(key: string, parent = '', opts: SnapshotOptions = {}): Promise<Mount[]> {
    return this.create('Active', key, parent, opts);
  }

  view(key: string, parent = '', opts: SnapshotOptions = {}): Promise<Mount[]> {
    return this.create('View', key, parent, opts);
  }

  private create(kind: Kind, key: string, parent: string, opts: SnapshotOptions): Promise<Mount[]> {
    return this.mutex.run(async () => {
      this.checkOpen();
      if (!key) throw errs.emptyKey('key');
      if (this.ms.get(key)) throw errs.snapshotExists(key);
      let parentIds: string[] = [];
      if (parent) {
        const p = this.ms.get(parent);
        if (!p) throw errs.parentNotFound(parent);
        if (p.kind !== 'Committed') throw errs.parentNotCommitted(parent);
        parentIds = [p.id, ...this.ms.parentIds(parent)];
      }

      const tmp = await fsp.mkdtemp(path.join(this.snapshotsDir, 'new-'));
      let final: string | undefined;
      try {
        // the id is chosen now (skipping directories a crash may have left) and recorded last
        const id = this.freeId();
        const s: SnapshotDir = { id, kind, parentIds };
        await this.populate(tmp, s);
        final = path.join(this.snapshotsDir, id);
        await fsp.rename(tmp, final);
        const now = new Date().toISOString();
        await this.ms.update((draft) => {
          draft.nextId = Math.max(draft.nextId, Number(id) + 1);
          draft.snapshots.set(key, { id, kind, parent, labels: copyLabels(opts.labels), created: now, updated: now });
        });
        return this.mountsFor(s);
      } catch (err) {
        await fsp.rm(final ?? tmp, { recursive: true, force: true }).catch(() => undefined);
        throw err;
      }
    });
  }

  /** The next id of the sequence that names no record and no directory (a crash may leave one). */
  private freeId(): string {
    const used = this.ms.ids();
    let n = Math.max(1, this.ms.nextIdHint);
    while (used.has(String(n)) || fs.existsSync(path.join(this.snapshotsDir, String(n)))) n++;
    return String(n);
  }

  async commit(name: string, key: string, opts: SnapshotOptions = {}): Promise<void> {
    return this.mutex.run(async () => {
      this.checkOpen();
      if (!name) throw errs.emptyKey('name');
      if (this.ms.get(name)) throw errs.snapshotExists(name);
      const r = this.record(key);
      if (r.kind !== 'Active') throw errs.notActive(key);
      const usage = await diskUsage(this.fsPath(r.id));
      const now = new Date().toISOString();
      await this.ms.update((draft) => {
        draft.snapshots.delete(key);
        draft.snapshots.set(name, {
          id: r.id,
          kind: 'Committed',
          parent: r.parent,
          labels: copyLabels(opts.labels),
          created: now,
          updated: now,
          size: usage.size,
          inodes: usage.inodes,
        });
      });
    });
  }

  async remove(key: string): Promise<void> {
    return this.mutex.run(async () => {
      const r = this.record(key);
      if (this.ms.hasChildren(key)) throw errs.hasChildren();
      await this.ms.update((draft) => {
        draft.snapshots.delete(key);
      });
      if (!this.asyncRemove) {
        // the record is gone: a failure here only leaves work for cleanup()
        await fsp.rm(path.join(this.snapshotsDir, r.id), { recursive: true, force: true }).catch(() => undefined);
      }
    });
  }

  async walk(fn: WalkFn, filters: readonly string[] = []): Promise<void> {
    this.checkOpen();
    const filter = parseAll(filters);
    for (const [key, r] of this.ms.list()) {
      const info = this.info(key, r);
      const adaptor = objectAdaptor({ kind: info.kind.toLowerCase(), name: info.name, parent: info.parent, labels: info.labels });
      if (!filter.match(adaptor)) continue;
      await fn(info);
    }
  }

  /** Directories under `snapshots/` that no record names (orphans of crashes or failed removes). */
  async orphans(): Promise<string[]> {
    const ids = this.ms.ids();
    const names = await fsp.readdir(this.snapshotsDir);
    return names.filter((n) => !ids.has(n)).map((n) => path.join(this.snapshotsDir, n));
  }

  async cleanup(): Promise<void> {
    return this.mutex.run(async () => {
      this.checkOpen();
      for (const dir of await this.orphans()) {
        await fsp.rm(dir, { recursive: true, force: true });
      }
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.mutex.run(async () => undefined);
    if (this.lockFd >= 0) {
      unlock(this.lockFd);
      fs.closeSync(this.lockFd);
      this.lockFd = -1;
    }
  }
}
