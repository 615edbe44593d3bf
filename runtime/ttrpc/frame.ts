// ttrpc framing (github.com/containerd/ttrpc 1.1, channel.go): every message is a 10-byte header
// followed by its payload.
//
//   bytes 0-3  payload length, uint32 big-endian (at most 4 MiB)
//   bytes 4-7  stream id, uint32 big-endian (client-initiated ids are odd: 1, 3, 5, …)
//   byte  8    message type: 1 request, 2 response (ttrpc ≥ 1.2 adds 3 = data; 1.1 has no streams)
//   byte  9    flags, 0
//
// A frame longer than the maximum is not read into memory: its payload is skipped as it arrives
// and the reader reports it as oversized, so the peer can answer ResourceExhausted on that stream
// and the connection stays in sync (what ttrpc's channel.recv does).

export const HEADER_LENGTH = 10;
/** ttrpc's messageLengthMax: 4 MiB. */
export const MAX_MESSAGE_LENGTH = 4 << 20;

export const MessageType = {
  Request: 1,
  Response: 2,
} as const;

export interface FrameHeader {
  length: number;
  streamId: number;
  type: number;
  flags: number;
}

/** What a FrameReader hands on: a whole frame, or the header of one too large to read. */
export type FrameHandler = (header: FrameHeader, payload: Buffer | undefined) => void;

/** The one frame holding `payload`, header included, in a single buffer. */
export function encodeFrame(streamId: number, type: number, payload: Uint8Array, flags = 0): Buffer {
  const frame = Buffer.allocUnsafe(HEADER_LENGTH + payload.length);
  frame.writeUInt32BE(payload.length, 0);
  frame.writeUInt32BE(streamId >>> 0, 4);
  frame[8] = type;
  frame[9] = flags;
  frame.set(payload, HEADER_LENGTH);
  return frame;
}

/** The error text ttrpc uses for an oversized frame (channel.go). */
export function oversizeMessage(length: number): string {
  return `message length ${length} exceed maximum message size of ${MAX_MESSAGE_LENGTH}`;
}

const enum State {
  Header,
  Body,
  Discard,
}

/**
 * Incremental frame parser: push() the chunks a socket delivers, in order; complete frames are
 * passed to the handler synchronously. A frame that arrives whole in one chunk is handed on as a
 * view of that chunk (no copy); otherwise its payload is assembled into one buffer of the exact
 * size. Frames over `maxLength` are skipped and reported with `payload` undefined.
 */
export class FrameReader {
  private state = State.Header;
  private readonly header = Buffer.allocUnsafe(HEADER_LENGTH);
  private headerFill = 0;
  private current: FrameHeader = { length: 0, streamId: 0, type: 0, flags: 0 };
  private body: Buffer = Buffer.alloc(0);
  private bodyFill = 0;
  private discardLeft = 0;

  constructor(
    private readonly onFrame: FrameHandler,
    private readonly maxLength = MAX_MESSAGE_LENGTH,
  ) {}

  /** True when the reader sits between frames (no partial frame buffered). */
  get idle(): boolean {
    return this.state === State.Header && this.headerFill === 0;
  }

  push(chunk: Buffer): void {
    let pos = 0;
    const end = chunk.length;
    while (pos < end) {
      switch (this.state) {
        case State.Header: {
          if (this.headerFill === 0 && end - pos >= HEADER_LENGTH) {
            const next = this.startFrame(chunk, pos);
            pos += HEADER_LENGTH;
            // Fast path: the whole body is in this chunk — hand on a view of it.
            if (next === State.Body && end - pos >= this.current.length) {
              const payload = chunk.subarray(pos, pos + this.current.length);
              pos += this.current.length;
              this.state = State.Header;
              this.onFrame(this.current, payload);
            }
            continue;
          }
          const n = Math.min(HEADER_LENGTH - this.headerFill, end - pos);
          chunk.copy(this.header, this.headerFill, pos, pos + n);
          this.headerFill += n;
          pos += n;
          if (this.headerFill === HEADER_LENGTH) {
            this.headerFill = 0;
            if (this.startFrame(this.header, 0) === State.Body && this.current.length === 0) {
              this.state = State.Header;
              this.onFrame(this.current, Buffer.alloc(0));
            }
          }
          break;
        }
        case State.Body: {
          if (this.bodyFill === 0 && this.body.length !== this.current.length) {
            this.body = Buffer.allocUnsafe(this.current.length);
          }
          const n = Math.min(this.current.length - this.bodyFill, end - pos);
          chunk.copy(this.body, this.bodyFill, pos, pos + n);
          this.bodyFill += n;
          pos += n;
          if (this.bodyFill === this.current.length) {
            const payload = this.body;
            this.body = Buffer.alloc(0);
            this.bodyFill = 0;
            this.state = State.Header;
            this.onFrame(this.current, payload);
          }
          break;
        }
        case State.Discard: {
          const n = Math.min(this.discardLeft, end - pos);
          this.discardLeft -= n;
          pos += n;
          if (this.discardLeft === 0) {
            this.state = State.Header;
            this.onFrame(this.current, undefined);
          }
          break;
        }
      }
    }
  }

  /** Reads a header at `at` and enters the state for its body; returns that state. */
  private startFrame(buf: Buffer, at: number): State {
    this.current = {
      length: buf.readUInt32BE(at),
      streamId: buf.readUInt32BE(at + 4),
      type: buf[at + 8],
      flags: buf[at + 9],
    };
    if (this.current.length > this.maxLength) {
      this.discardLeft = this.current.length;
      this.state = State.Discard;
    } else {
      this.bodyFill = 0;
      this.state = State.Body;
    }
    return this.state;
  }
}
