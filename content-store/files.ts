// Small-file helpers for the on-disk layout: metadata files written whole or not at all,
// RFC 3339 timestamp files (the format containerd's Go code writes and reads), directory fsync.
import * as fsp from 'node:fs/promises';
import { isENOENT } from './errors';

/**
 * Writes `data` to `path` so that a crash leaves either the old or the new content: a synced
 * temporary file renamed over the target (containerd's writeToCompletion).
 */
export async function writeFileAtomic(path: string, data: string): Promise<void> {
  const tmp = `${path}.tmp`;
  const fh = await fsp.open(tmp, 'w', 0o644);
  try {
    await fh.writeFile(data);
    await fh.datasync();
  } finally {
    await fh.close();
  }
  await fsp.rename(tmp, path);
}

/** The file's text, or undefined if it does not exist. */
export async function readTextFile(path: string): Promise<string | undefined> {
  try {
    return await fsp.readFile(path, 'utf8');
  } catch (err) {
    if (isENOENT(err)) return undefined;
    throw err;
  }
}

export function formatTimestamp(t: Date): string {
  return t.toISOString();
}

/** Parses RFC 3339 (with any number of fractional digits, as Go writes them); undefined if bad. */
export function parseTimestamp(text: string): Date | undefined {
  const t = new Date(text.trim());
  return Number.isNaN(t.getTime()) ? undefined : t;
}

export async function writeTimestampFile(path: string, t: Date): Promise<void> {
  await writeFileAtomic(path, formatTimestamp(t));
}

/** Makes a rename or link inside `dir` durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await fsp.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
