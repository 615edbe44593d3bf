// The CLI's connection to berthd (or any containerd-compatible daemon): one gRPC channel over the
// unix socket, calls carrying the containerd-namespace header, errors with their daemon message.
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { serviceDefinition } from '../proto/grpc';
import type { Message } from '../proto/codec';

export const SERVICES = {
  version: 'containerd.services.version.v1.Version',
  namespaces: 'containerd.services.namespaces.v1.Namespaces',
  events: 'containerd.services.events.v1.Events',
  introspection: 'containerd.services.introspection.v1.Introspection',
  content: 'containerd.services.content.v1.Content',
  images: 'containerd.services.images.v1.Images',
  snapshots: 'containerd.services.snapshots.v1.Snapshots',
  diff: 'containerd.services.diff.v1.Diff',
  containers: 'containerd.services.containers.v1.Containers',
  tasks: 'containerd.services.tasks.v1.Tasks',
  leases: 'containerd.services.leases.v1.Leases',
  transfer: 'berth.services.transfer.v1.Transfer',
  health: 'grpc.health.v1.Health',
} as const;

type ServiceKey = keyof typeof SERVICES;

export class ApiError extends Error {
  constructor(
    readonly code: number,
    readonly details: string,
    readonly method: string,
  ) {
    super(details);
  }
}

/** `unix:///abs` for socket paths, anything with a scheme or host:port as given. */
export function target(address: string): string {
  if (address.startsWith('unix:') || /^[a-z]+:\/\//.test(address)) return address;
  if (address.startsWith('/') || address.startsWith('.')) return `unix://${path.resolve(address)}`;
  return address;
}

export class Client {
  private readonly clients = new Map<ServiceKey, grpc.Client & Record<string, Function>>();
  private readonly channelCredentials: grpc.ChannelCredentials;

  constructor(
    readonly address: string,
    readonly namespace: string,
    credentials?: grpc.ChannelCredentials,
    private readonly timeoutMs?: number,
  ) {
    this.channelCredentials = credentials ?? grpc.credentials.createInsecure();
  }

  private metadata(extra?: Record<string, string>): grpc.Metadata {
    const md = new grpc.Metadata();
    if (this.namespace) md.set('containerd-namespace', this.namespace);
    for (const [k, v] of Object.entries(extra ?? {})) md.set(k, v);
    return md;
  }

  private client(service: ServiceKey) {
    let c = this.clients.get(service);
    if (!c) {
      const Ctor = grpc.makeGenericClientConstructor(serviceDefinition(SERVICES[service]), SERVICES[service]);
      const first = this.clients.values().next().value;
      // All services share one channel (one connection), like ctr.
      const options = first ? { channelOverride: first.getChannel() } : {};
      c = new Ctor(target(this.address), this.channelCredentials, options) as unknown as grpc.Client & Record<string, Function>;
      this.clients.set(service, c);
    }
    return c;
  }

  private callOptions(): grpc.CallOptions {
    return this.timeoutMs ? { deadline: Date.now() + this.timeoutMs } : {};
  }

  /** A unary call; aborting `signal` cancels it (the promise rejects with CANCELLED). */
  unary(service: ServiceKey, method: string, request: Message = {}, signal?: AbortSignal): Promise<Message> {
    return this.unaryWith(service, method, request, {}, signal);
  }

  /** A server stream as an async iterator; cancelling it (break/return) cancels the call. */
  async *stream(service: ServiceKey, method: string, request: Message = {}, headers?: Record<string, string>): AsyncIterable<Message> {
    const call = this.client(service)[method](request, this.metadata(headers)) as grpc.ClientReadableStream<Message>;
    try {
      for await (const message of call) yield message as Message;
    } catch (err) {
      const e = err as grpc.ServiceError;
      if (typeof e.code === 'number') throw new ApiError(e.code, e.details, `${SERVICES[service]}/${method}`);
      throw err;
    } finally {
      call.cancel();
    }
  }

  /** A bidirectional call: write requests, iterate replies; errors come out of the iterator. */
  duplex(service: ServiceKey, method: string, extraHeaders?: Record<string, string>) {
    const call = this.client(service)[method](this.metadata(extraHeaders)) as grpc.ClientDuplexStream<Message, Message>;
    const name = `${SERVICES[service]}/${method}`;
    async function* replies(): AsyncIterable<Message> {
      try {
        for await (const message of call) yield message as Message;
      } catch (err) {
        const e = err as grpc.ServiceError;
        if (typeof e.code === 'number') throw new ApiError(e.code, e.details, name);
        throw err;
      }
    }
    return {
      /** Resolves once the transport accepted the message (back-pressure). */
      write: (message: Message) =>
        new Promise<void>((resolve) => {
          if (call.write(message)) resolve();
          else call.once('drain', resolve);
        }),
      end: () => call.end(),
      cancel: () => call.cancel(),
      replies: replies(),
    };
  }

  /** Unary call with extra headers (e.g. containerd-lease). */
  unaryWith(service: ServiceKey, method: string, request: Message, headers: Record<string, string>, signal?: AbortSignal): Promise<Message> {
    const c = this.client(service);
    return new Promise((resolve, reject) => {
      const call = c[method](request, this.metadata(headers), this.callOptions(), (err: grpc.ServiceError | null, res: Message) => {
        signal?.removeEventListener('abort', cancel);
        if (err) reject(new ApiError(err.code, err.details, `${SERVICES[service]}/${method}`));
        else resolve(res);
      }) as grpc.ClientUnaryCall;
      const cancel = () => call.cancel();
      if (signal?.aborted) cancel();
      else signal?.addEventListener('abort', cancel, { once: true });
    });
  }

  close(): void {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }
}
