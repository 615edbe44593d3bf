// ttrpc client (containerd/ttrpc 1.1 client.go): one unix-socket connection, calls multiplexed on
// odd, increasing stream ids (1, 3, 5, …), responses matched by id in whatever order they come.
//
// Errors are BerthErrors: a status from the server becomes a TtrpcError whose kind comes from the
// status code (errdefs kindFromCode) and whose message is the status message with containerd's
// kind suffix (": not found"); a lost connection fails every pending call with Unavailable; a
// client-side deadline gives DeadlineExceeded, an aborted signal Canceled.
import { EventEmitter } from 'node:events';
import * as net from 'node:net';
import type { Logger } from 'pino';
import type { Message } from '../../proto/codec';
import { BerthError, kindFromCode } from '../../services/errdefs';
import { NAMESPACE_HEADER_TTRPC } from '../../services/server/rpc';
import { decodeResponse, encodeRequest, type KeyValue } from './envelope';
import {
  FrameReader,
  HEADER_LENGTH,
  MAX_MESSAGE_LENGTH,
  MessageType,
  type FrameHeader,
  oversizeMessage,
} from './frame';

type Codec = typeof import('../../proto/codec');
type ProtoIndex = typeof import('../../proto/index');
let codecModule: Codec | undefined;
let protoModule: ProtoIndex | undefined;
// Loaded on first use: importing the client does not load the wire Root.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const codec = (): Codec => (codecModule ??= require('../../proto/codec') as Codec);
// eslint-disable-next-line @typescript-eslint/no-require-imports
const proto = (): ProtoIndex => (protoModule ??= require('../../proto/index') as ProtoIndex);

export interface CallOptions {
  /** Deadline for the call; sent to the server as timeout_nano and enforced here as well. */
  timeoutMs?: number;
  /** Request metadata (ttrpc KeyValue pairs; keys are lower-cased as ttrpc's MD does). */
  metadata?: Record<string, string | readonly string[]>;
  /** Shorthand for the `containerd-namespace-ttrpc` metadata key. */
  namespace?: string;
  /** Aborting fails the call with Canceled (ttrpc 1.1 has no way to tell the server). */
  signal?: AbortSignal;
}

export interface ConnectOptions {
  /** Give up dialling after this long (Unavailable). Default: no limit beyond the kernel's. */
  timeoutMs?: number;
  log?: Logger;
}

/** A non-OK status received from the server, as a BerthError with the status kept verbatim. */
export class TtrpcError extends BerthError {
  /** The gRPC code and message exactly as the server sent them. */
  readonly status: { readonly code: number; readonly message: string };

  constructor(code: number, message: string) {
    super(kindFromCode(code), message);
    this.name = 'TtrpcError';
    this.status = { code, message };
  }
}

/** One unary method of a service, resolved through our Root. */
export type UnaryMethod = (request?: Message, opts?: CallOptions) => Promise<Message>;
/** Method name (as in the .proto, e.g. `State`) → call. */
export type TtrpcServiceClient = Readonly<Record<string, UnaryMethod>>;

interface PendingCall {
  resolve(payload: Buffer): void;
  reject(err: Error): void;
}

/** Strips the `unix://` scheme containerd writes in shim address files. */
export function socketPathOf(address: string): string {
  return address.startsWith('unix://') ? address.slice('unix://'.length) : address;
}

function closedError(cause?: unknown): BerthError {
  const detail = cause instanceof Error && cause.message ? ` (${cause.message})` : '';
  return new BerthError('Unavailable', `ttrpc: closed${detail}`, cause ? { cause } : undefined);
}

/**
 * A ttrpc client connection. Events: `close` (once, with the error that ended the connection, if
 * any) after which every pending and later call fails with Unavailable.
 */
export class TtrpcClient extends EventEmitter {
  private readonly socket: net.Socket;
  private readonly reader: FrameReader;
  private readonly pendingCalls = new Map<number, PendingCall>();
  private readonly services = new Map<string, TtrpcServiceClient>();
  private nextStreamId = 1;
  private closeError: BerthError | undefined;
  private isClosed = false;
  private readonly closedPromise: Promise<void>;
  private readonly log: Logger | undefined;

  /** Dials a ttrpc server on a unix socket path (a `unix://` prefix is accepted). */
  static connect(address: string, opts: ConnectOptions = {}): Promise<TtrpcClient> {
    const path = socketPathOf(address);
    return new Promise((resolve, reject) => {
      const socket = net.createConnection({ path });
      let timer: NodeJS.Timeout | undefined;
      const fail = (err: Error) => {
        if (timer) clearTimeout(timer);
        socket.destroy();
        reject(
          err instanceof BerthError
            ? err
            : new BerthError('Unavailable', `dial unix ${path}: ${err.message}`, { cause: err }),
        );
      };
      socket.once('error', fail);
      if (opts.timeoutMs !== undefined) {
        timer = setTimeout(
          () => fail(new BerthError('Unavailable', `dial unix ${path}: timed out after ${opts.timeoutMs} ms`)),
          opts.timeoutMs,
        );
      }
      socket.once('connect', () => {
        if (timer) clearTimeout(timer);
        socket.removeListener('error', fail);
        resolve(new TtrpcClient(socket, opts.log));
      });
    });
  }

  /** Wraps an already connected stream socket (e.g. one end of a socketpair). */
  constructor(socket: net.Socket, log?: Logger) {
    super();
    this.socket = socket;
    this.log = log;
    this.reader = new FrameReader((header, payload) => this.onFrame(header, payload));
    let resolveClosed!: () => void;
    this.closedPromise = new Promise((r) => (resolveClosed = r));
    let socketError: Error | undefined;
    socket.on('data', (chunk: Buffer) => this.reader.push(chunk));
    socket.on('error', (err) => {
      socketError = err;
    });
    socket.on('close', () => {
      this.shutdown(socketError);
      resolveClosed();
      this.emit('close', socketError);
    });
  }

  /** Calls still waiting for their response. */
  get pending(): number {
    return this.pendingCalls.size;
  }

  get closed(): boolean {
    return this.isClosed;
  }

  /**
   * One unary call with an already encoded payload; resolves with the response payload bytes.
   * A non-OK status rejects with a TtrpcError.
   */
  callRaw(service: string, method: string, payload: Uint8Array, opts: CallOptions = {}): Promise<Buffer> {
    if (this.isClosed) return Promise.reject(this.closeError ?? closedError());
    const signal = opts.signal;
    if (signal?.aborted) {
      return Promise.reject(new BerthError('Canceled', `ttrpc call ${service}/${method} cancelled`, { cause: signal.reason }));
    }
    const streamId = this.nextStreamId;
    if (streamId > 0xffffffff) {
      return Promise.reject(new BerthError('Unavailable', 'ttrpc: stream ids exhausted on this connection'));
    }

    const metadata: KeyValue[] = [];
    if (opts.namespace !== undefined) metadata.push({ key: NAMESPACE_HEADER_TTRPC, value: opts.namespace });
    if (opts.metadata) {
      for (const [k, v] of Object.entries(opts.metadata)) {
        const key = k.toLowerCase();
        for (const value of typeof v === 'string' ? [v] : v) metadata.push({ key, value });
      }
    }
    const timeoutMs = opts.timeoutMs;
    const body = encodeRequest({
      service,
      method,
      payload: Buffer.isBuffer(payload) ? payload : Buffer.from(payload.buffer, payload.byteOffset, payload.length),
      timeoutNano: timeoutMs !== undefined && timeoutMs > 0 ? timeoutMs * 1e6 : 0,
      metadata,
    });
    if (body.length > MAX_MESSAGE_LENGTH) {
      return Promise.reject(new BerthError('ResourceExhausted', oversizeMessage(body.length)));
    }
    this.nextStreamId += 2;

    return new Promise<Buffer>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const onAbort = () =>
        finish(new BerthError('Canceled', `ttrpc call ${service}/${method} cancelled`, { cause: signal?.reason }));
      const finish = (err: Error | undefined, result?: Buffer) => {
        if (!this.pendingCalls.delete(streamId)) return;
        if (timer) clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        if (err) reject(err);
        else resolve(result!);
      };
      this.pendingCalls.set(streamId, {
        resolve: (p) => finish(undefined, p),
        reject: (e) => finish(e),
      });
      if (timeoutMs !== undefined && timeoutMs > 0) {
        timer = setTimeout(
          () => finish(new BerthError('DeadlineExceeded', `ttrpc call ${service}/${method} timed out after ${timeoutMs} ms`)),
          timeoutMs,
        );
      }
      signal?.addEventListener('abort', onAbort, { once: true });
      this.writeFrame(streamId, body);
    });
  }

  /**
   * One unary call: `request` (a plain object) is encoded as `requestType`, the response decoded
   * from `responseType` with proto/codec's TO_OBJECT options.
   */
  async call(
    service: string,
    method: string,
    requestType: string,
    responseType: string,
    request: Message,
    opts?: CallOptions,
  ): Promise<Message> {
    const payload = codec().encode(requestType, request);
    const reply = await this.callRaw(service, method, payload, opts);
    return codec().decode(responseType, reply);
  }

  /** The methods of a service of our Root, with request/response types taken from its definition. */
  service(name: string): TtrpcServiceClient {
    let client = this.services.get(name);
    if (client) return client;
    const definition = proto().serviceType(name);
    const methods: Record<string, UnaryMethod> = {};
    for (const m of definition.methodsArray) {
      m.resolve();
      const req = m.resolvedRequestType!.fullName.replace(/^\./, '');
      const res = m.resolvedResponseType!.fullName.replace(/^\./, '');
      methods[m.name] = (request: Message = {}, opts?: CallOptions) => this.call(name, m.name, req, res, request, opts);
    }
    client = Object.freeze(methods);
    this.services.set(name, client);
    return client;
  }

  /** Lets the process exit while this connection is open (net.Socket.unref). */
  unref(): this {
    this.socket.unref();
    return this;
  }

  ref(): this {
    this.socket.ref();
    return this;
  }

  /** Closes the connection; pending calls fail with Unavailable. Resolves once the socket is closed. */
  close(): Promise<void> {
    if (!this.isClosed) {
      this.shutdown(undefined);
      this.socket.end();
      // A peer that never closes its end must not keep us waiting.
      const t = setTimeout(() => this.socket.destroy(), 1000);
      t.unref();
    }
    return this.closedPromise;
  }

  private writeFrame(streamId: number, body: Uint8Array): void {
    const header = Buffer.allocUnsafe(HEADER_LENGTH);
    header.writeUInt32BE(body.length, 0);
    header.writeUInt32BE(streamId, 4);
    header[8] = MessageType.Request;
    header[9] = 0;
    // cork/uncork: both buffers leave in one writev.
    this.socket.cork();
    this.socket.write(header);
    this.socket.write(body);
    this.socket.uncork();
  }

  private onFrame(header: FrameHeader, payload: Buffer | undefined): void {
    const call = this.pendingCalls.get(header.streamId);
    if (!call) {
      // A late reply to a call that timed out or was cancelled here, or a stray id.
      this.log?.debug({ streamId: header.streamId, type: header.type }, 'ttrpc: received message for unknown stream');
      return;
    }
    if (payload === undefined) {
      call.reject(new BerthError('ResourceExhausted', oversizeMessage(header.length)));
      return;
    }
    if (header.type !== MessageType.Response) {
      call.reject(new BerthError('Internal', `ttrpc: unknown message type ${header.type} received`));
      return;
    }
    let response;
    try {
      response = decodeResponse(payload);
    } catch (err) {
      call.reject(new BerthError('Internal', `ttrpc: malformed response: ${(err as Error).message}`, { cause: err }));
      return;
    }
    if (response.status) call.reject(new TtrpcError(response.status.code, response.status.message));
    else call.resolve(response.payload);
  }

  private shutdown(cause: Error | undefined): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.closeError = closedError(cause);
    const calls = [...this.pendingCalls.values()];
    for (const call of calls) call.reject(this.closeError);
  }
}
