// The native snapshotter (containerd's snapshots/native): a copy-based fallback for
// filesystems overlay cannot sit on. Every snapshot is a full tree in `snapshots/<id>/fs`;
// prepare and view copy the parent's tree (owners, modes, xattrs, devices, symlinks, hard links
// and times preserved — copy.ts), and every mount is a bind mount of it:
//   [{ type: 'bind', source: '<root>/snapshots/<id>/fs', options: ['rw' | 'ro', 'rbind'] }]
// Layers are applied into it with real deletions for whiteouts (apply.ts, mode 'plain').
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { DirectorySnapshotter, openRoot, type SnapshotDir } from '../base';
import { copyTree } from '../copy';
import type { Mount } from '../types';

export class NativeSnapshotter extends DirectorySnapshotter {
  private constructor(opened: Awaited<ReturnType<typeof openRoot>>) {
    super(opened);
  }

  /** Opens (creating if needed) a native snapshotter rooted at `root`. */
  static async open(root: string): Promise<NativeSnapshotter> {
    return new NativeSnapshotter(await openRoot(root));
  }

  protected async populate(dir: string, s: SnapshotDir): Promise<void> {
    const fsDir = path.join(dir, 'fs');
    await fsp.mkdir(fsDir, 0o755);
    await fsp.chmod(fsDir, 0o755);
    if (s.parentIds.length > 0) await copyTree(this.fsPath(s.parentIds[0]), fsDir);
  }

  protected mountsFor(s: SnapshotDir): Mount[] {
    return [{ type: 'bind', source: this.fsPath(s.id), options: [s.kind === 'View' ? 'ro' : 'rw', 'rbind'] }];
  }
}
