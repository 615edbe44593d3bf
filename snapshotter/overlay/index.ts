// The overlay snapshotter (containerd's snapshots/overlay): each snapshot's own changes live in
// `snapshots/<id>/fs`, and a snapshot with parents is the overlay of its `fs` (upper, active
// only) over its parents' `fs` dirs (lower, nearest parent first).
//
// Mounts, exactly as containerd returns them:
//   active, no parent     bind    <root>/snapshots/N/fs                 rw,rbind
//   active with parents   overlay overlay  index=off, workdir=…/N/work, upperdir=…/N/fs, lowerdir=…/P1/fs:…/P2/fs
//   view, no parent       bind    <root>/snapshots/N/fs                 ro,rbind
//   view, one parent      bind    <root>/snapshots/P1/fs                ro,rbind
//   view, more parents    overlay overlay  index=off, lowerdir=…/P1/fs:…/P2/fs
// (`index=off` only when the kernel has the overlay `index` parameter, as containerd checks.)
// Deep chains produce lowerdir lists longer than a page: see mount.ts for how they are mounted.
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { DirectorySnapshotter, openRoot, type SnapshotDir } from '../base';
import type { Info, Mount } from '../types';

/** containerd's optional label carrying a snapshot's upper dir. */
export const UPPERDIR_LABEL = 'containerd.io/snapshot/overlay.upperdir';

export interface OverlayOptions {
  /** remove() leaves directories to cleanup() (containerd's AsynchronousRemove). */
  asyncRemove?: boolean;
  /** Add the `containerd.io/snapshot/overlay.upperdir` label to infos (containerd's WithUpperdirLabel). */
  upperdirLabel?: boolean;
}

function supportsIndexOff(): boolean {
  return fs.existsSync('/sys/module/overlay/parameters/index');
}

export class OverlaySnapshotter extends DirectorySnapshotter {
  private readonly indexOff = supportsIndexOff();
  private readonly upperdirLabel: boolean;

  private constructor(opened: Awaited<ReturnType<typeof openRoot>>, opts: OverlayOptions) {
    super(opened);
    this.asyncRemove = opts.asyncRemove ?? false;
    this.upperdirLabel = opts.upperdirLabel ?? false;
  }

  /** Opens (creating if needed) an overlay snapshotter rooted at `root`. */
  static async open(root: string, opts: OverlayOptions = {}): Promise<OverlaySnapshotter> {
    return new OverlaySnapshotter(await openRoot(root), opts);
  }

  /** The upper dir of a snapshot id: `<root>/snapshots/<id>/fs`. */
  upperPath(id: string): string {
    return this.fsPath(id);
  }

  protected override decorate(info: Info, id: string): Info {
    if (this.upperdirLabel) info.labels[UPPERDIR_LABEL] = this.upperPath(id);
    return info;
  }

  protected async populate(dir: string, s: SnapshotDir): Promise<void> {
    const fsDir = path.join(dir, 'fs');
    await fsp.mkdir(fsDir, 0o755);
    await fsp.chmod(fsDir, 0o755);
    if (s.kind === 'Active') {
      await fsp.mkdir(path.join(dir, 'work'), 0o711);
      await fsp.chmod(path.join(dir, 'work'), 0o711);
    }
    if (s.parentIds.length > 0) {
      // the upper's root takes the nearest parent's owner (containerd does the same)
      const st = await fsp.stat(this.upperPath(s.parentIds[0]));
      await fsp.lchown(fsDir, st.uid, st.gid);
    }
  }

  protected mountsFor(s: SnapshotDir): Mount[] {
    if (s.parentIds.length === 0) {
      return [{ type: 'bind', source: this.upperPath(s.id), options: [s.kind === 'View' ? 'ro' : 'rw', 'rbind'] }];
    }
    const options: string[] = [];
    if (this.indexOff) options.push('index=off');
    if (s.kind === 'Active') {
      options.push(`workdir=${this.workPath(s.id)}`, `upperdir=${this.upperPath(s.id)}`);
    } else if (s.parentIds.length === 1) {
      return [{ type: 'bind', source: this.upperPath(s.parentIds[0]), options: ['ro', 'rbind'] }];
    }
    options.push(`lowerdir=${s.parentIds.map((id) => this.upperPath(id)).join(':')}`);
    return [{ type: 'overlay', source: 'overlay', options }];
  }
}
