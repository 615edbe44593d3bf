/** Resolves a field path against one object; undefined = field absent. */
export interface Adaptor {
  field(path: string[]): string | undefined;
}

/** Fields holding string maps, whose keys may contain dots (`labels.io.example/x`). */
const STRING_MAPS = new Set(['labels', 'annotations']);

/**
 * An adaptor over a plain object, following the conventions of containerd's adaptors and of the
 * Field methods generated for its API messages:
 *  - a string field is present when non-empty; path segments after it are ignored;
 *  - a boolean field is always present, as "true" or "false";
 *  - `labels` and `annotations` (and any Map) are string maps: the rest of the path, joined
 *    with dots, is the key; an empty value is present;
 *  - other objects are nested messages, resolved with the rest of the path;
 *  - numbers, arrays, bytes, null and undefined are never present.
 */
export function objectAdaptor(fields: Record<string, unknown>): Adaptor {
  return { field: (path) => resolve(fields, path, 0) };
}

function resolve(obj: object, path: readonly string[], at: number): string | undefined {
  if (at >= path.length) return undefined;
  const name = path[at];
  const v = ownValue(obj, name);
  switch (typeof v) {
    case 'string':
      return v === '' ? undefined : v;
    case 'boolean':
      return String(v);
    case 'object':
      if (v === null || Array.isArray(v) || ArrayBuffer.isView(v) || v instanceof Date) return undefined;
      if (v instanceof Map) return mapValue(v.size, v.get(path.slice(at + 1).join('.')));
      if (STRING_MAPS.has(name)) return mapValue(Object.keys(v).length, ownValue(v, path.slice(at + 1).join('.')));
      return resolve(v, path, at + 1);
    default:
      return undefined;
  }
}

function mapValue(size: number, value: unknown): string | undefined {
  return size > 0 && typeof value === 'string' ? value : undefined;
}

function ownValue(obj: object, key: string): unknown {
  return Object.prototype.hasOwnProperty.call(obj, key) ? (obj as Record<string, unknown>)[key] : undefined;
}
