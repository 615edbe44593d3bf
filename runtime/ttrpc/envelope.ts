// The two envelope messages of ttrpc 1.1 (types.go), built with protobufjs reflection in a Root
// of their own so that framing does not need the wire Root (proto/index) to be loaded:
//
//   Request  { string service = 1; string method = 2; bytes payload = 3; int64 timeout_nano = 4;
//              repeated KeyValue metadata = 5; }
//   KeyValue { string key = 1; string value = 2; }
//   Response { google.rpc.Status status = 1; bytes payload = 2; }
//   google.rpc.Status { int32 code = 1; string message = 2; repeated google.protobuf.Any details = 3; }
//
// protobufjs/light: reflection and generated (cached) encoders without the .proto parser.
import * as protobuf from 'protobufjs/light';

const root = protobuf.Root.fromJSON({
  nested: {
    ttrpc: {
      nested: {
        Request: {
          fields: {
            service: { type: 'string', id: 1 },
            method: { type: 'string', id: 2 },
            payload: { type: 'bytes', id: 3 },
            timeout_nano: { type: 'int64', id: 4 },
            metadata: { rule: 'repeated', type: 'KeyValue', id: 5 },
          },
        },
        KeyValue: {
          fields: {
            key: { type: 'string', id: 1 },
            value: { type: 'string', id: 2 },
          },
        },
        Response: {
          fields: {
            status: { type: 'Status', id: 1 },
            payload: { type: 'bytes', id: 2 },
          },
        },
        Status: {
          fields: {
            code: { type: 'int32', id: 1 },
            message: { type: 'string', id: 2 },
            details: { rule: 'repeated', type: 'Any', id: 3 },
          },
        },
        Any: {
          fields: {
            type_url: { type: 'string', id: 1 },
            value: { type: 'bytes', id: 2 },
          },
        },
      },
    },
  },
});

const RequestType = root.lookupType('ttrpc.Request');
const ResponseType = root.lookupType('ttrpc.Response');

const EMPTY = Buffer.alloc(0);

export interface KeyValue {
  key: string;
  value: string;
}

export interface RequestEnvelope {
  service: string;
  method: string;
  payload: Buffer;
  /** Nanoseconds; 0 = no deadline. */
  timeoutNano: number;
  metadata: KeyValue[];
}

export interface StatusEnvelope {
  code: number;
  message: string;
}

export interface ResponseEnvelope {
  /** Absent on success (ttrpc sends no status, or code 0). */
  status?: StatusEnvelope;
  payload: Buffer;
}

function toBuffer(b: Uint8Array | undefined | null): Buffer {
  if (!b || b.length === 0) return EMPTY;
  return Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.length);
}

function toNumber(v: unknown): number {
  if (typeof v === 'number') return v;
  if (v && typeof (v as { toNumber?: unknown }).toNumber === 'function') return (v as { toNumber(): number }).toNumber();
  return Number(v ?? 0);
}

export function encodeRequest(req: RequestEnvelope): Uint8Array {
  const msg: Record<string, unknown> = { service: req.service, method: req.method };
  if (req.payload.length > 0) msg.payload = req.payload;
  if (req.timeoutNano > 0) msg.timeout_nano = Math.round(req.timeoutNano);
  if (req.metadata.length > 0) msg.metadata = req.metadata;
  return RequestType.encode(msg).finish();
}

/** Throws (a protobufjs decoding error) on a malformed envelope. */
export function decodeRequest(bytes: Uint8Array): RequestEnvelope {
  const m = RequestType.decode(bytes) as unknown as {
    service: string;
    method: string;
    payload?: Uint8Array;
    timeout_nano?: unknown;
    metadata?: { key: string; value: string }[];
  };
  return {
    service: m.service ?? '',
    method: m.method ?? '',
    payload: toBuffer(m.payload),
    timeoutNano: toNumber(m.timeout_nano),
    metadata: (m.metadata ?? []).map((kv) => ({ key: kv.key ?? '', value: kv.value ?? '' })),
  };
}

export function encodeResponse(res: ResponseEnvelope): Uint8Array {
  const msg: Record<string, unknown> = {};
  if (res.status && res.status.code !== 0) msg.status = { code: res.status.code, message: res.status.message };
  if (res.payload.length > 0) msg.payload = res.payload;
  return ResponseType.encode(msg).finish();
}

/** Throws (a protobufjs decoding error) on a malformed envelope. */
export function decodeResponse(bytes: Uint8Array): ResponseEnvelope {
  const m = ResponseType.decode(bytes) as unknown as {
    status?: { code?: number; message?: string } | null;
    payload?: Uint8Array;
  };
  const out: ResponseEnvelope = { payload: toBuffer(m.payload) };
  if (m.status && m.status.code) out.status = { code: m.status.code, message: m.status.message ?? '' };
  return out;
}
