// Label updates by field path, as every containerd Update call takes them, and the
// garbage-collection labels that link objects together.
import { BerthError } from '../errdefs';
import { validateLabels } from './validate';

export type Labels = Record<string, string>;

/**
 * The labels after an update: with no paths the incoming labels replace the current ones;
 * `labels` replaces them too; `labels.<key>` sets or (empty or absent value) removes one key.
 * Other paths go to `other`, which returns true when it handled the path; unhandled paths are
 * InvalidArgument with the message `describe` gives.
 */
export function applyLabelPaths(
  current: Labels,
  incoming: Labels,
  paths: readonly string[],
  other: (path: string) => boolean,
  describe: (path: string) => string,
): Labels {
  let labels: Labels;
  if (paths.length === 0) {
    labels = { ...incoming };
  } else {
    labels = { ...current };
    for (const path of paths) {
      if (path.startsWith('labels.')) {
        const key = path.slice('labels.'.length);
        const value = incoming[key];
        if (value === undefined || value === '') delete labels[key];
        else labels[key] = value;
      } else if (path === 'labels') {
        labels = { ...incoming };
      } else if (!other(path)) {
        throw new BerthError('InvalidArgument', describe(path));
      }
    }
  }
  const cleaned = Object.fromEntries(Object.entries(labels).filter(([, v]) => v !== ''));
  validateLabels(cleaned);
  return cleaned;
}

export const LABEL_GC_ROOT = 'containerd.io/gc.root';
export const LABEL_GC_EXPIRE = 'containerd.io/gc.expire';
const CONTENT_REF = 'containerd.io/gc.ref.content';
const SNAPSHOT_REF = 'containerd.io/gc.ref.snapshot.';

/** Digests a labelled object references: `containerd.io/gc.ref.content` and `….content.<name>`
 * or `….content/<name>` (containerd allows either separator). */
export function contentRefs(labels: Labels | undefined): string[] {
  const out: string[] = [];
  for (const [k, v] of Object.entries(labels ?? {})) {
    if (!k.startsWith(CONTENT_REF)) continue;
    const rest = k.slice(CONTENT_REF.length);
    if (rest === '' || rest[0] === '.' || rest[0] === '/') out.push(v);
  }
  return out;
}

/** Snapshots a labelled object references: `containerd.io/gc.ref.snapshot.<snapshotter>[/<name>]`. */
export function snapshotRefs(labels: Labels | undefined): Array<{ snapshotter: string; key: string }> {
  const out: Array<{ snapshotter: string; key: string }> = [];
  for (const [k, v] of Object.entries(labels ?? {})) {
    if (!k.startsWith(SNAPSHOT_REF)) continue;
    const snapshotter = k.slice(SNAPSHOT_REF.length).split('/')[0];
    if (snapshotter) out.push({ snapshotter, key: v });
  }
  return out;
}

/** A lease or object whose `containerd.io/gc.expire` time (RFC 3339) has passed. */
export function isExpired(labels: Labels | undefined, now = Date.now()): boolean {
  const at = expiresAt(labels);
  return at !== undefined && at <= now;
}

export function expiresAt(labels: Labels | undefined): number | undefined {
  const v = labels?.[LABEL_GC_EXPIRE];
  if (!v) return undefined;
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : t;
}
