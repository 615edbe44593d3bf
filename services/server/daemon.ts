// berthd itself: loads the plugins, serves their wire services on the unix socket (and the
// optional mutual-TLS TCP listener), and shuts down gracefully.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { allServiceNames, serviceType } from '../../proto';
import { BerthError } from '../errdefs';
import type { Exchange } from '../events/exchange';
import type { Metadata } from '../metadata';
import type { TaskManager } from '../../runtime/manager/manager';
import type { ContentStore } from '../../content-store';
import type { Snapshotter } from '../../snapshotter';
import { builtinPlugins } from './builtins';
import type { Config } from './config';
import { grpcImplementation, serviceDefinition } from './grpc';
import { prepareUnixSocket, secureUnixSocket } from './listen';
import { PluginSet, PluginType, servesServices, type PluginRegistration } from './plugin';
import { requireNamespace, type Handler, type ServiceImplementation } from './rpc';

/** Wire services we serve on gRPC: containerd's v1 API and health; ttrpc-only services are not. */
function servedOnGrpc(name: string): boolean {
  return (name.startsWith('containerd.services.') && !name.includes('.ttrpc.')) || name === 'grpc.health.v1.Health';
}

/** Services whose calls work on namespaced objects and so need the namespace header. */
const NAMESPACED = /^containerd\.services\.(content|images|snapshots|diff|containers|tasks|leases)\.v1\./;

/**
 * A service of the API that no plugin implements yet: each method answers Unimplemented, naming
 * itself, after the same namespace check the real service makes (so a call without a namespace
 * gets containerd's FailedPrecondition either way).
 */
function notYetImplemented(name: string): ServiceImplementation {
  const handlers: Record<string, Handler> = {};
  for (const method of serviceType(name).methodsArray) {
    handlers[method.name] = async (_req, ctx) => {
      if (NAMESPACED.test(name)) requireNamespace(ctx);
      throw new BerthError('NotImplemented', `${name}/${method.name} is not implemented by berthd yet`);
    };
  }
  return { name, handlers };
}

/** HTTP/2 flow-control windows: Node's default 64 KiB window makes a 1 MiB message wait for
 * sixteen window updates; clients stream layers in 1 MiB messages. */
const STREAM_WINDOW = 8 << 20;
const SESSION_WINDOW = 32 << 20;

/** grpc-js exposes no server option for the initial stream window; its http2 settings are set
 * through the field it builds its http2 servers from (left alone if the field is absent). */
function widenFlowControl(server: grpc.Server): void {
  const internals = server as unknown as { commonServerOptions?: { settings?: Record<string, unknown> } };
  if (!internals.commonServerOptions) return;
  internals.commonServerOptions.settings = { ...internals.commonServerOptions.settings, initialWindowSize: STREAM_WINDOW };
}

/** The connection-level window can only grow after a session starts. */
function widenSessionWindows(server: grpc.Server): void {
  const internals = server as unknown as { http2Servers?: Map<import('node:events').EventEmitter, unknown> };
  for (const http2Server of internals.http2Servers?.keys() ?? []) {
    http2Server.on('session', (session: import('node:http2').Http2Session) => {
      try {
        session.setLocalWindowSize(SESSION_WINDOW);
      } catch {
        // a session closed before it was set up
      }
    });
  }
}

export class Daemon {
  readonly plugins = new PluginSet();
  private server: grpc.Server | undefined;
  private stopping: Promise<void> | undefined;
  private tcpPort: number | undefined;

  constructor(
    readonly config: Config,
    private readonly log: Logger,
    private readonly registrations: PluginRegistration[] = builtinPlugins(() => this.plugins.loaded),
  ) {}

  get address(): string {
    return path.resolve(this.config.grpc.address);
  }

  /** The bound TCP port when a TCP listener is configured (useful with port 0). */
  get boundTcpPort(): number | undefined {
    return this.tcpPort;
  }

  async start(): Promise<void> {
    const { config, log } = this;
    fs.mkdirSync(config.root, { recursive: true, mode: 0o711 });
    fs.mkdirSync(config.state, { recursive: true, mode: 0o711 });
    // Refuse early, before touching the database, if another daemon serves this socket.
    await prepareUnixSocket(this.address);

    await this.plugins.initAll(
      this.registrations,
      (reg) => ({
        config,
        root: path.join(config.root, `${reg.type}.${reg.id}`),
        state: path.join(config.state, `${reg.type}.${reg.id}`),
        log: log.child({ plugin: `${reg.type}.${reg.id}` }),
      }),
      log,
    );
    // Without metadata nothing works; fail start-up rather than serve a broken API.
    const metadata = this.plugins.loaded.find((p) => p.registration.type === PluginType.Metadata);
    if (metadata?.initError) throw new BerthError('Unavailable', metadata.initError.message);

    const server = new grpc.Server({
      'grpc.max_receive_message_length': config.grpc.max_recv_message_size,
      'grpc.max_send_message_length': config.grpc.max_send_message_size,
    });
    widenFlowControl(server);
    this.server = server;
    const served = new Set<string>();
    const register = (impl: ServiceImplementation) => {
      const definition = serviceDefinition(impl.name);
      server.addService(definition, grpcImplementation(impl, definition, log));
      served.add(impl.name);
    };
    for (const p of this.plugins.loaded) {
      if (servesServices(p.instance)) for (const impl of p.instance.services) register(impl);
    }
    // Every other service of the API is still answered, with a clear Unimplemented per method.
    for (const name of allServiceNames()) {
      if (servedOnGrpc(name) && !served.has(name)) register(notYetImplemented(name));
    }

    await this.bindUnix(server);
    if (config.grpc.tcp_address) await this.bindTcp(server);
    widenSessionWindows(server);
    log.info({ address: this.address, tcp: config.grpc.tcp_address || undefined }, 'berthd serving');
  }

  private async bindUnix(server: grpc.Server): Promise<void> {
    const { address } = this;
    // The socket must never be reachable with wider permissions than 0660, not even briefly.
    const previous = process.umask(0o117);
    try {
      await new Promise<number>((resolve, reject) =>
        server.bindAsync(`unix://${address}`, grpc.ServerCredentials.createInsecure(), (err, port) =>
          err ? reject(err) : resolve(port),
        ),
      );
    } finally {
      process.umask(previous);
    }
    secureUnixSocket(address, this.config.grpc.uid, this.config.grpc.gid);
  }

  private async bindTcp(server: grpc.Server): Promise<void> {
    const g = this.config.grpc;
    const read = (file: string, what: string) => {
      try {
        return fs.readFileSync(file);
      } catch (err) {
        throw new BerthError('InvalidArgument', `grpc.${what} ${file}: ${(err as Error).message}`);
      }
    };
    const credentials = grpc.ServerCredentials.createSsl(
      read(g.tcp_tls_ca, 'tcp_tls_ca'),
      [{ private_key: read(g.tcp_tls_key, 'tcp_tls_key'), cert_chain: read(g.tcp_tls_cert, 'tcp_tls_cert') }],
      true, // clients must present a certificate signed by the CA
    );
    this.tcpPort = await new Promise<number>((resolve, reject) =>
      server.bindAsync(g.tcp_address, credentials, (err, port) => (err ? reject(err) : resolve(port))),
    );
  }

  /** Stops accepting calls, ends event streams, lets running calls finish (bounded), closes stores. */
  stop(graceMs = 10_000): Promise<void> {
    if (!this.stopping) this.stopping = this.doStop(graceMs);
    return this.stopping;
  }

  private async doStop(graceMs: number): Promise<void> {
    const server = this.server;
    for (const exchange of this.plugins.getAll<Exchange>(PluginType.Event).values()) exchange.closeAll();
    if (server) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, graceMs);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    for (const manager of this.plugins.getAll<TaskManager>(PluginType.Runtime).values()) await manager.close();
    for (const metadata of this.plugins.getAll<Metadata>(PluginType.Metadata).values()) await metadata.close();
    for (const store of this.plugins.getAll<ContentStore>(PluginType.Content).values()) store.close();
    for (const snapshotter of this.plugins.getAll<Snapshotter>(PluginType.Snapshot).values()) await snapshotter.close().catch(() => undefined);
    if (server) {
      try {
        fs.unlinkSync(this.address);
      } catch {
        // already gone
      }
    }
    this.log.info('berthd stopped');
  }
}
