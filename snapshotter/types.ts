// The snapshotter model (containerd's snapshots.Snapshotter): plain data types and the one
// interface every snapshotter implements. The gRPC Snapshots service and the metadata layer
// (namespaces, GC labels) sit above this and never know which implementation they hold.

/** What a snapshot is: a read-only View, a writable Active one, or an immutable Committed one. */
export type Kind = 'View' | 'Active' | 'Committed';

/** containerd's numeric Kind (the wire enum: UNKNOWN 0, VIEW 1, ACTIVE 2, COMMITTED 3). */
export const KIND_NUMBER: Readonly<Record<Kind, number>> = { View: 1, Active: 2, Committed: 3 };

export function kindFromNumber(n: number): Kind | undefined {
  return n === 1 ? 'View' : n === 2 ? 'Active' : n === 3 ? 'Committed' : undefined;
}

export type Labels = Record<string, string>;

export interface Info {
  kind: Kind;
  /** The key (active, view) or name (committed). */
  name: string;
  /** The committed parent's name; '' when there is none. */
  parent: string;
  labels: Labels;
  createdAt: Date;
  updatedAt: Date;
}

/** Disk use, as containerd reports it: allocated bytes (st_blocks × 512) and distinct inodes. */
export interface Usage {
  size: number;
  inodes: number;
}

/** A mount, as containerd's mount.Mount: what a client passes to mount(2) (see mount.ts). */
export interface Mount {
  type: string;
  source: string;
  options: string[];
}

export interface SnapshotOptions {
  /** Labels of the new (prepared, viewed or committed) snapshot. Commit does not inherit. */
  labels?: Labels;
}

/** Called once per snapshot by walk(); may be async (walk waits). */
export type WalkFn = (info: Info) => void | Promise<void>;

/**
 * containerd's snapshots.Snapshotter (plus Cleaner). Keys are opaque strings chosen by the
 * caller; the metadata layer above prefixes them per namespace.
 *
 * Errors are BerthErrors with containerd's kinds and wording:
 *  - unknown key: NotFound `snapshot <key> does not exist`
 *  - key or name taken: AlreadyExists `snapshot "<key>"`
 *  - parent missing: NotFound `parent snapshot <parent> does not exist`
 *  - parent not committed: InvalidArgument `parent "<parent>" is not committed snapshot`
 *  - commit of a view/committed: FailedPrecondition `snapshot "<key>" is not active`
 *  - mounts of a committed snapshot: FailedPrecondition `snapshot "<key>" is not active or view`
 *  - remove with children: FailedPrecondition `cannot remove snapshot with child`
 *  - update of another field than labels: InvalidArgument `cannot update "<f>" field on snapshot "<name>"`
 */
export interface Snapshotter {
  /** Info of a snapshot of any kind. */
  stat(key: string): Promise<Info>;
  /**
   * Changes labels (the only mutable field). Without fieldpaths the labels are replaced;
   * `labels` replaces them too; `labels.<k>` sets one (an empty or missing value deletes it).
   */
  update(info: Pick<Info, 'name'> & Partial<Info>, fieldpaths?: readonly string[]): Promise<Info>;
  /** For an active snapshot, measured now; for a committed one, as measured at commit. */
  usage(key: string): Promise<Usage>;
  /** The mounts of an active snapshot or a view. */
  mounts(key: string): Promise<Mount[]>;
  /** A new writable snapshot on top of the committed `parent` ('' for none). */
  prepare(key: string, parent?: string, opts?: SnapshotOptions): Promise<Mount[]>;
  /** A new read-only snapshot of the committed `parent` ('' for an empty one). */
  view(key: string, parent?: string, opts?: SnapshotOptions): Promise<Mount[]>;
  /** Turns the active snapshot `key` into the committed snapshot `name`; `key` is gone after. */
  commit(name: string, key: string, opts?: SnapshotOptions): Promise<void>;
  /** Removes a snapshot that has no children; its directory goes at once (or at cleanup). */
  remove(key: string): Promise<void>;
  /**
   * Calls `fn` for every snapshot matching any of the filters (containerd's filter syntax over
   * `kind`, `name`, `parent`, `labels.<k>`; none: all).
   */
  walk(fn: WalkFn, filters?: readonly string[]): Promise<void>;
  /** Removes directories no snapshot refers to (left by crashes or failed removals). */
  cleanup(): Promise<void>;
  /** Releases the root; a second close is a no-op. Other calls fail afterwards. */
  close(): Promise<void>;
}
