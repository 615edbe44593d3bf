// ttrpc server (containerd/ttrpc 1.1 server.go + services.go) serving the same transport-agnostic
// ServiceImplementation objects the gRPC server uses (services/server/rpc.ts), unary methods only.
//
// Behaviour kept from the Go implementation, since containerd and the stock shims are the peers:
//  - peer credentials are checked when a connection is accepted (SO_PEERCRED; here: same uid as
//    this process, or root) and a connection that fails the check is closed without a word;
//  - a frame over 4 MiB is skipped and answered on its stream id with ResourceExhausted
//    "message length N exceed maximum message size of 4194304"; the connection stays usable;
//  - frames that are not requests are ignored; an envelope that does not decode is answered
//    InvalidArgument "unmarshal request error: …", an even stream id InvalidArgument
//    "StreamID must be odd for client initiated streams";
//  - an unregistered service is answered Unimplemented "service <name>", an unknown method
//    Unimplemented "method <name>"; a payload that does not decode Internal
//    "ttrpc: error unmarshalling payload: …";
//  - requests run concurrently and are answered as they finish (out of order); a success carries
//    no status, only the payload;
//  - timeout_nano > 0 sets a deadline: the handler's AbortSignal fires when it passes (the handler
//    still answers, as in Go, where the handler returns ctx.Err()).
// Additions: the call's signal also fires when the connection closes; requests arriving after
// close() has begun are answered Unavailable "ttrpc: server closed".
import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import * as net from 'node:net';
import type { Logger } from 'pino';
import type * as protobuf from 'protobufjs';
import type { Message } from '../../proto/codec';
import { BerthError, GrpcCode, toStatus } from '../../services/errdefs';
import {
  LEASE_HEADER,
  NAMESPACE_HEADER,
  NAMESPACE_HEADER_TTRPC,
  type CallContext,
  type Handler,
  type ServiceImplementation,
} from '../../services/server/rpc';
import { decodeRequest, encodeResponse, type RequestEnvelope, type StatusEnvelope } from './envelope';
import { FrameReader, HEADER_LENGTH, MAX_MESSAGE_LENGTH, MessageType, oversizeMessage, type FrameHeader } from './frame';
import { peerCredentials, type PeerCredentials } from './peercred';

type Codec = typeof import('../../proto/codec');
type ProtoIndex = typeof import('../../proto/index');
let codecModule: Codec | undefined;
let protoModule: ProtoIndex | undefined;
// eslint-disable-next-line @typescript-eslint/no-require-imports
const codec = (): Codec => (codecModule ??= require('../../proto/codec') as Codec);
// eslint-disable-next-line @typescript-eslint/no-require-imports
const proto = (): ProtoIndex => (protoModule ??= require('../../proto/index') as ProtoIndex);

/** What a handler served over ttrpc sees beyond the transport-agnostic CallContext. */
export interface TtrpcCallContext extends CallContext {
  readonly service: string;
  readonly method: string;
  /** All request metadata, keys lower-cased, values in order. */
  readonly metadata: Readonly<Record<string, readonly string[]>>;
  /** The peer's credentials when they were checked. */
  readonly peer: PeerCredentials | undefined;
}

export type PeerCheck = (cred: PeerCredentials) => boolean;

export interface TtrpcServerOptions {
  /** Handed to handlers as ctx.log; a silent pino logger when absent. */
  log?: Logger;
  /**
   * Peer credential check on accept: true (default) admits the same uid as this process and root,
   * false admits everyone, a function decides itself.
   */
  checkPeerCredentials?: boolean | PeerCheck;
}

export interface ListenOptions {
  /** Socket file mode, applied right after bind. Default 0o600. */
  mode?: number;
}

interface MethodEntry {
  requestType: string;
  responseType: string;
  handler: Handler | undefined;
}

interface RegisteredService {
  name: string;
  methods: Map<string, MethodEntry>;
}

const noSend = async () => {
  throw new BerthError('Internal', 'a unary method cannot stream');
};

const sameUserOrRoot: PeerCheck = (cred) => cred.uid === 0 || cred.uid === (process.geteuid?.() ?? cred.uid);

function silentLogger(): Logger {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const pino = require('pino') as typeof import('pino');
  return pino.pino({ level: 'silent' });
}

class Connection {
  readonly reader: FrameReader;
  /** Controllers of the calls in progress. */
  readonly active = new Set<AbortController>();
  /** End the connection as soon as it has no call in progress (server closing). */
  endWhenIdle = false;
  closed = false;

  constructor(
    readonly socket: net.Socket,
    readonly peer: PeerCredentials | undefined,
    onFrame: (conn: Connection, header: FrameHeader, payload: Buffer | undefined) => void,
  ) {
    this.reader = new FrameReader((header, payload) => onFrame(this, header, payload));
  }

  send(streamId: number, body: Uint8Array): void {
    if (this.closed || this.socket.destroyed || !this.socket.writable) return;
    const header = Buffer.allocUnsafe(HEADER_LENGTH);
    header.writeUInt32BE(body.length, 0);
    header.writeUInt32BE(streamId >>> 0, 4);
    header[8] = MessageType.Response;
    header[9] = 0;
    this.socket.cork();
    this.socket.write(header);
    this.socket.write(body);
    this.socket.uncork();
  }

  end(): void {
    if (this.closed) return;
    this.socket.end(() => this.socket.destroy());
  }
}

/**
 * A ttrpc server. Register services, then listen on a socket path, on an inherited listening fd,
 * or serve() a net.Server made elsewhere. Events: `error` is never emitted for per-connection
 * problems (they are logged); `close` after close() has finished.
 */
export class TtrpcServer extends EventEmitter {
  private readonly log: Logger;
  private readonly peerCheck: PeerCheck | undefined;
  private readonly services = new Map<string, RegisteredService>();
  private readonly netServers = new Set<net.Server>();
  private readonly connections = new Set<Connection>();
  private closing: Promise<void> | undefined;
  private readonly onConnection = (socket: net.Socket) => this.accept(socket);

  constructor(opts: TtrpcServerOptions = {}) {
    super();
    this.log = opts.log ?? silentLogger();
    const check = opts.checkPeerCredentials ?? true;
    this.peerCheck = check === true ? sameUserOrRoot : check === false ? undefined : check;
  }

  /**
   * Adds a service. Request and response types come from `definition`, by default the service of
   * that name in our wire Root (proto/). Methods without a handler answer Unimplemented.
   */
  register(impl: ServiceImplementation, definition?: protobuf.Service): this {
    if (this.services.has(impl.name)) throw new BerthError('AlreadyExists', `ttrpc: duplicate service ${impl.name} registered`);
    const def = definition ?? proto().serviceType(impl.name);
    const methods = new Map<string, MethodEntry>();
    for (const m of def.methodsArray) {
      if (m.requestStream || m.responseStream) continue; // ttrpc 1.1 has no streams
      m.resolve();
      methods.set(m.name, {
        requestType: m.resolvedRequestType!.fullName.replace(/^\./, ''),
        responseType: m.resolvedResponseType!.fullName.replace(/^\./, ''),
        handler: impl.handlers[m.name],
      });
    }
    for (const name of Object.keys(impl.handlers)) {
      if (!methods.has(name)) throw new BerthError('InvalidArgument', `ttrpc: ${impl.name} has no unary method ${name}`);
    }
    this.services.set(impl.name, { name: impl.name, methods });
    return this;
  }

  /**
   * Binds a unix socket at `path` (mode 0600 by default) and serves on it. A stale socket file
   * nobody answers on is replaced; one with a live server behind it is AlreadyExists.
   */
  async listen(path: string, opts: ListenOptions = {}): Promise<void> {
    await removeStaleSocket(path);
    const server = net.createServer({ allowHalfOpen: false });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => {
        server.removeListener('error', reject);
        resolve();
      });
    });
    try {
      await fs.promises.chmod(path, opts.mode ?? 0o600);
    } catch (err) {
      server.close();
      throw err;
    }
    this.serve(server);
  }

  /** Serves on a listening socket inherited as a file descriptor (a shim's fd 3). */
  async listenFd(fd: number): Promise<void> {
    const server = net.createServer({ allowHalfOpen: false });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ fd }, () => {
        server.removeListener('error', reject);
        resolve();
      });
    });
    this.serve(server);
  }

  /** Serves the connections of a net.Server listening (or about to) elsewhere. */
  serve(server: net.Server): void {
    if (this.closing) throw new BerthError('Unavailable', 'ttrpc: server closed');
    this.netServers.add(server);
    server.on('connection', this.onConnection);
    server.on('error', (err) => this.log.error({ err }, 'ttrpc: listener failed'));
  }

  /** Serves one already connected stream socket (e.g. one end of a socketpair). */
  handleConnection(socket: net.Socket): void {
    this.accept(socket);
  }

  /** Connections currently open. */
  get connectionCount(): number {
    return this.connections.size;
  }

  /**
   * Stops accepting connections, ends idle connections at once and the others when their calls in
   * progress are answered; after `timeoutMs` whatever is left is closed (their calls' signals
   * fire). Resolves when every connection is closed.
   */
  close(timeoutMs = 5000): Promise<void> {
    if (this.closing) return this.closing;
    for (const server of this.netServers) {
      server.removeListener('connection', this.onConnection);
      server.close();
    }
    this.netServers.clear();
    this.closing = new Promise<void>((resolve) => {
      const pending = new Set(this.connections);
      if (pending.size === 0) {
        resolve();
        return;
      }
      const timer = setTimeout(() => {
        for (const conn of pending) conn.socket.destroy();
      }, Math.max(0, timeoutMs));
      for (const conn of pending) {
        conn.socket.once('close', () => {
          pending.delete(conn);
          if (pending.size === 0) {
            clearTimeout(timer);
            resolve();
          }
        });
        conn.endWhenIdle = true;
        if (conn.active.size === 0) conn.end();
      }
    }).then(() => {
      this.emit('close');
    });
    return this.closing;
  }

  private accept(socket: net.Socket): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    let peer: PeerCredentials | undefined;
    if (this.peerCheck) {
      try {
        peer = peerCredentials(socket);
      } catch (err) {
        this.log.error({ err }, 'ttrpc: refusing connection: cannot read peer credentials');
        socket.destroy();
        return;
      }
      if (!peer || !this.peerCheck(peer)) {
        this.log.warn({ peer }, 'ttrpc: refusing connection: invalid credentials');
        socket.destroy();
        return;
      }
    }
    const conn = new Connection(socket, peer, (c, h, p) => this.onFrame(c, h, p));
    this.connections.add(conn);
    socket.on('data', (chunk: Buffer) => conn.reader.push(chunk));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'ECONNRESET' && err.code !== 'EPIPE') this.log.warn({ err }, 'ttrpc: connection error');
    });
    socket.on('close', () => {
      conn.closed = true;
      this.connections.delete(conn);
      for (const controller of conn.active) {
        controller.abort(new BerthError('Canceled', 'ttrpc: connection closed'));
      }
    });
  }

  private onFrame(conn: Connection, header: FrameHeader, payload: Buffer | undefined): void {
    if (payload === undefined) {
      this.reply(conn, header.streamId, { code: GrpcCode.ResourceExhausted, message: oversizeMessage(header.length) });
      return;
    }
    if (header.type !== MessageType.Request) return; // ignored for future compatibility, as ttrpc does
    let req: RequestEnvelope;
    try {
      req = decodeRequest(payload);
    } catch (err) {
      this.reply(conn, header.streamId, {
        code: GrpcCode.InvalidArgument,
        message: `unmarshal request error: ${(err as Error).message}`,
      });
      return;
    }
    if (header.streamId % 2 !== 1) {
      this.reply(conn, header.streamId, {
        code: GrpcCode.InvalidArgument,
        message: 'StreamID must be odd for client initiated streams',
      });
      return;
    }
    if (this.closing) {
      this.reply(conn, header.streamId, { code: GrpcCode.Unavailable, message: 'ttrpc: server closed' });
      return;
    }
    this.dispatch(conn, header.streamId, req);
  }

  private dispatch(conn: Connection, streamId: number, req: RequestEnvelope): void {
    const service = this.services.get(req.service);
    if (!service) {
      this.reply(conn, streamId, { code: GrpcCode.Unimplemented, message: `service ${req.service}` });
      return;
    }
    const method = service.methods.get(req.method);
    if (!method) {
      this.reply(conn, streamId, { code: GrpcCode.Unimplemented, message: `method ${req.method}` });
      return;
    }
    const path = `/${req.service}/${req.method}`;
    if (!method.handler) {
      const err = new BerthError('NotImplemented', `${req.service}/${req.method} is not implemented by berth yet`);
      this.reply(conn, streamId, toStatus(err));
      return;
    }
    let request: Message;
    try {
      request = codec().decode(method.requestType, req.payload);
    } catch (err) {
      this.reply(conn, streamId, {
        code: GrpcCode.Internal,
        message: `ttrpc: error unmarshalling payload: ${(err as Error).message}`,
      });
      return;
    }

    const metadata: Record<string, string[]> = {};
    for (const { key, value } of req.metadata) (metadata[key.toLowerCase()] ??= []).push(value);
    const controller = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    if (req.timeoutNano > 0) {
      const ms = req.timeoutNano / 1e6;
      if (ms < 2 ** 31 - 1) {
        timer = setTimeout(() => controller.abort(new BerthError('DeadlineExceeded', 'deadline exceeded')), ms);
      }
    }
    const ctx: TtrpcCallContext = {
      namespaceHeader: metadata[NAMESPACE_HEADER_TTRPC]?.[0] ?? metadata[NAMESPACE_HEADER]?.[0],
      lease: metadata[LEASE_HEADER]?.[0],
      signal: controller.signal,
      log: this.log,
      service: req.service,
      method: req.method,
      metadata,
      peer: conn.peer,
    };
    conn.active.add(controller);
    const handler = method.handler;
    new Promise<Message | void>((resolve) => resolve(handler(request, ctx, noSend))).then(
      (result) => {
        let body: Buffer;
        try {
          body = codec().encode(method.responseType, result ?? {});
        } catch (err) {
          this.done(conn, controller, timer);
          this.log.error({ err, path }, 'ttrpc: cannot encode response');
          this.reply(conn, streamId, {
            code: GrpcCode.Internal,
            message: `ttrpc: error marshaling payload: ${(err as Error).message}`,
          });
          return;
        }
        this.done(conn, controller, timer);
        this.reply(conn, streamId, undefined, body);
      },
      (err) => {
        this.done(conn, controller, timer);
        const status = toStatus(err);
        if (status.code === GrpcCode.Unknown || status.code === GrpcCode.Internal) {
          this.log.error({ err, path }, 'ttrpc: call failed');
        } else {
          this.log.debug({ path, code: status.code, message: status.message }, 'ttrpc: call failed');
        }
        this.reply(conn, streamId, status);
      },
    );
  }

  private done(conn: Connection, controller: AbortController, timer: NodeJS.Timeout | undefined): void {
    if (timer) clearTimeout(timer);
    conn.active.delete(controller);
  }

  private reply(conn: Connection, streamId: number, status: StatusEnvelope | undefined, payload?: Buffer): void {
    let body = encodeResponse({ status, payload: payload ?? Buffer.alloc(0) });
    if (body.length > MAX_MESSAGE_LENGTH) {
      body = encodeResponse({
        status: { code: GrpcCode.ResourceExhausted, message: oversizeMessage(body.length) },
        payload: Buffer.alloc(0),
      });
    }
    conn.send(streamId, body);
    if (conn.endWhenIdle && conn.active.size === 0) conn.end();
  }
}

/** Removes a socket file nothing listens on any more; AlreadyExists when a server answers there. */
async function removeStaleSocket(path: string): Promise<void> {
  let stat: fs.Stats;
  try {
    stat = await fs.promises.lstat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  if (!stat.isSocket()) throw new BerthError('AlreadyExists', `ttrpc: ${path} exists and is not a socket`);
  const live = await new Promise<boolean>((resolve) => {
    const probe = net.createConnection({ path });
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (live) throw new BerthError('AlreadyExists', `ttrpc: ${path} is in use by a live server`);
  await fs.promises.unlink(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err;
  });
}
