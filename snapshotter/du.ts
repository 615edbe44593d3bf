// Disk usage of a tree, as containerd's continuity fs.DiskUsage: every inode counted once (hard
// links too), size = allocated blocks × 512, the root directory included.
import * as fs from 'node:fs';
import type { Usage } from './types';

const SLASH = Buffer.from('/');

/** Yields to the event loop every `every` calls, so long walks do not starve other work. */
export class Yielder {
  private n = 0;
  constructor(private readonly every = 512) {}
  async tick(signal?: AbortSignal): Promise<void> {
    if (++this.n % this.every === 0) {
      await new Promise<void>((r) => setImmediate(r));
      signal?.throwIfAborted();
    }
  }
}

export async function diskUsage(root: string, signal?: AbortSignal): Promise<Usage> {
  const seen = new Set<string>();
  let size = 0;
  const y = new Yielder();
  const visit = async (p: Buffer): Promise<void> => {
    await y.tick(signal);
    const st = fs.lstatSync(p);
    const key = `${st.dev}:${st.ino}`;
    if (!seen.has(key)) {
      seen.add(key);
      size += st.blocks * 512;
    }
    if (!st.isDirectory()) return;
    for (const name of fs.readdirSync(p, { encoding: 'buffer' })) {
      await visit(Buffer.concat([p, SLASH, name]));
    }
  };
  await visit(Buffer.from(root));
  return { size, inodes: seen.size };
}
