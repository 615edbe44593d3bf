// Encoding helpers shared by the daemon, the CLI and the shim: messages to and from bytes,
// google.protobuf.Any with containerd's type URLs, and Timestamps.
import type * as protobuf from 'protobufjs';
import { messageType } from './index';

/** How decoded messages look everywhere in Berth: plain objects, numbers for 64-bit ints,
 * enum names, every field present with its default, raw Buffers for bytes. */
export const TO_OBJECT: protobuf.IConversionOptions = {
  longs: Number,
  enums: String,
  defaults: true,
  arrays: true,
  objects: true,
};

export type Message = Record<string, any>;

export function encode(typeName: string, value: Message): Buffer {
  const type = messageType(typeName);
  return Buffer.from(type.encode(type.fromObject(value)).finish());
}

export function decode(typeName: string, bytes: Uint8Array): Message {
  const type = messageType(typeName);
  return type.toObject(type.decode(bytes), TO_OBJECT);
}

/** A google.protobuf.Any as it travels: containerd's type URLs carry no type.googleapis.com/ prefix. */
export interface AnyMessage {
  type_url: string;
  value: Buffer;
}

export function toAny(typeName: string, value: Message): AnyMessage {
  return { type_url: typeName, value: encode(typeName, value) };
}

/** Decodes an Any whose type we know; undefined for foreign types (JSON specs, unknown events). */
export function fromAny(any: AnyMessage | null | undefined): Message | undefined {
  if (!any || !any.type_url) return undefined;
  const name = any.type_url.slice(any.type_url.lastIndexOf('/') + 1);
  let type: protobuf.Type;
  try {
    type = messageType(name);
  } catch {
    return undefined;
  }
  return type.toObject(type.decode(any.value ?? Buffer.alloc(0)), TO_OBJECT);
}

/**
 * The same message with its keys in field-number order, recursively, so that JSON output reads as
 * Go's encoding/json prints it (decoding puts map and repeated fields first).
 */
export function inFieldOrder(typeName: string, value: Message): Message {
  const type = messageType(typeName);
  const out: Message = {};
  for (const field of [...type.fieldsArray].sort((a, b) => a.id - b.id)) {
    if (!(field.name in value)) continue;
    const v = value[field.name];
    const sub = field.resolve().resolvedType;
    const nested = sub && 'fieldsArray' in sub ? (sub as protobuf.Type).fullName.slice(1) : undefined;
    if (!nested || v === null || v === undefined || nested === 'google.protobuf.Any') out[field.name] = v;
    else if (field.map) out[field.name] = Object.fromEntries(Object.entries(v).map(([k, x]) => [k, inFieldOrder(nested, x as Message)]));
    else if (field.repeated) out[field.name] = (v as Message[]).map((x) => inFieldOrder(nested, x));
    else out[field.name] = inFieldOrder(nested, v);
  }
  return out;
}

/** Decodes an Any we know into field order, for printing; undefined for foreign types. */
export function fromAnyInFieldOrder(any: AnyMessage | null | undefined): Message | undefined {
  const decoded = fromAny(any);
  return decoded && inFieldOrder(any!.type_url.slice(any!.type_url.lastIndexOf('/') + 1), decoded);
}

export interface Timestamp {
  seconds: number;
  nanos: number;
}

/** 0001-01-01T00:00:00Z, Go's zero time: what containerd sends for "unset" non-nullable timestamps. */
export const ZERO_TIMESTAMP: Timestamp = Object.freeze({ seconds: -62135596800, nanos: 0 });

/** A wall-clock instant with nanosecond precision, as a protobuf Timestamp. */
export function timestampFromNanos(nanos: bigint): Timestamp {
  const seconds = nanos / 1_000_000_000n;
  return { seconds: Number(seconds), nanos: Number(nanos - seconds * 1_000_000_000n) };
}

export function nowTimestamp(): Timestamp {
  return timestampFromNanos(nowNanos());
}

/** Current time in nanoseconds since the epoch (Date gives milliseconds; hrtime supplies the rest). */
export function nowNanos(): bigint {
  return BigInt(Date.now()) * 1_000_000n + (process.hrtime.bigint() % 1_000_000n);
}

export function timestampToDate(ts: Timestamp | null | undefined): Date | undefined {
  if (!ts || isZeroTimestamp(ts)) return undefined;
  return new Date(ts.seconds * 1000 + Math.floor(ts.nanos / 1e6));
}

export function isZeroTimestamp(ts: Timestamp | null | undefined): boolean {
  return !ts || (ts.seconds === ZERO_TIMESTAMP.seconds && ts.nanos === 0) || (ts.seconds === 0 && ts.nanos === 0);
}

/** RFC 3339 with nanoseconds, as Go prints time.Time (used in CLI output and stored records). */
export function formatTimestamp(ts: Timestamp): string {
  const date = new Date(ts.seconds * 1000);
  const base = date.toISOString().slice(0, 19);
  const frac = ts.nanos ? '.' + String(ts.nanos).padStart(9, '0').replace(/0+$/, '') : '';
  return `${base}${frac}Z`;
}
