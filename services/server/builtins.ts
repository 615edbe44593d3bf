// The plugins berthd is made of, with their declared dependencies. The server initialises
// them in dependency order; introspection lists them.
import * as path from 'node:path';
import { BerthError } from '../errdefs';
import { Exchange } from '../events/exchange';
import { eventsService } from '../events/service';
import { healthService } from '../health/service';
import { introspectionService, serverUUID } from '../introspection/service';
import { Metadata } from '../metadata';
import { ContentStore } from '../../content-store';
import { NativeSnapshotter, OverlaySnapshotter, type Snapshotter } from '../../snapshotter';
import { snapshotsService } from '../snapshots/service';
import { diffService } from '../diff/service';
import { contentService } from '../content/service';
import { leasesService } from '../leases/service';
import { imagesService } from '../images/service';
import { transferService } from '../transfer/service';
import { containersService } from '../containers/service';
import { tasksService } from '../tasks/service';
import { TaskManager } from '../../runtime/manager/manager';
import { TASK_DIR } from '../../runtime/manager/bundle';
import { namespacesService } from '../namespaces/service';
import { versionService } from '../version/service';
import { PluginType, type InitContext, type LoadedPlugin, type PluginRegistration, type ServesServices } from './plugin';
import type { ServiceImplementation } from './rpc';

/** A gRPC plugin whose service is built from the metadata store and the events exchange. */
function metadataService(id: string, make: (m: Metadata, e: Exchange, ctx: InitContext) => ServiceImplementation): PluginRegistration {
  return {
    type: PluginType.GRPC,
    id,
    requires: [PluginType.Metadata, PluginType.Event],
    init: async (ctx): Promise<ServesServices> => ({ services: [make(ctx.get<Metadata>(PluginType.Metadata), ctx.get<Exchange>(PluginType.Event), ctx)] }),
  };
}

export function builtinPlugins(loaded: () => LoadedPlugin[]): PluginRegistration[] {
  return [
    {
      type: PluginType.Event,
      id: 'exchange',
      init: async () => new Exchange(),
    },
    {
      type: PluginType.Content,
      id: 'content',
      init: async (ctx) => {
        ctx.exports.root = ctx.root;
        // Stale ingests (not written to for a day) are removed hourly.
        return new ContentStore(ctx.root, { expireInterval: 60 * 60 * 1000, log: ctx.log });
      },
    },
    {
      type: PluginType.Snapshot,
      id: 'overlayfs',
      init: async (ctx) => {
        ctx.exports.root = ctx.root;
        return OverlaySnapshotter.open(ctx.root);
      },
    },
    {
      type: PluginType.Snapshot,
      id: 'native',
      init: async (ctx) => {
        ctx.exports.root = ctx.root;
        return NativeSnapshotter.open(ctx.root);
      },
    },
    {
      type: PluginType.Metadata,
      id: 'level',
      requires: [PluginType.Content, PluginType.Snapshot, PluginType.Event],
      init: async (ctx) => {
        ctx.exports.root = path.join(ctx.root, 'db');
        return Metadata.open(ctx.root, ctx.get<ContentStore>(PluginType.Content), ctx.log, ctx.getAll<Snapshotter>(PluginType.Snapshot));
      },
    },
    metadataService('snapshots', (m, e) => snapshotsService(m, e)),
    metadataService('diff', (m) => diffService(m)),
    {
      type: PluginType.GRPC,
      id: 'version',
      init: async (): Promise<ServesServices> => ({ services: [versionService()] }),
    },
    {
      type: PluginType.GRPC,
      id: 'healthcheck',
      init: async (): Promise<ServesServices> => ({ services: [healthService()] }),
    },
    {
      type: PluginType.GRPC,
      id: 'events',
      requires: [PluginType.Event],
      init: async (ctx): Promise<ServesServices> => ({ services: [eventsService(ctx.get<Exchange>(PluginType.Event))] }),
    },
    metadataService('namespaces', (m, e) => namespacesService(m.db, e)),
    metadataService('content', (m, e) => contentService(m, e)),
    metadataService('images', (m, e) => imagesService(m, e)),
    metadataService('transfer', (m, e, ctx) => {
      // [plugins."io.containerd.grpc.v1.transfer"] config_path: hosts.toml per registry, as containerd's config_path
      const configPath = ctx.config.plugins['io.containerd.grpc.v1.transfer']?.config_path;
      if (configPath !== undefined && typeof configPath !== 'string') throw new BerthError('InvalidArgument', 'config: plugins."io.containerd.grpc.v1.transfer".config_path must be a string');
      return transferService(m, e, { log: ctx.log, ...(configPath ? { hostsDir: configPath } : {}) });
    }),
    metadataService('containers', (m, e) => containersService(m, e)),
    {
      type: PluginType.Runtime,
      id: 'task',
      requires: [PluginType.Event],
      platforms: [{ os: 'linux', architecture: process.arch === 'x64' ? 'amd64' : process.arch }],
      init: async (ctx) => {
        const manager = new TaskManager({
          stateRoot: path.join(ctx.config.state, TASK_DIR),
          workRoot: path.join(ctx.config.root, TASK_DIR),
          grpcAddress: path.resolve(ctx.config.grpc.address),
          events: ctx.get<Exchange>(PluginType.Event),
          log: ctx.log,
          // berth's own shims are found beside berthd before $PATH.
          searchPath: [path.resolve(__dirname, '..', '..', '..', 'bin')],
        });
        await manager.start();
        ctx.exports.root = path.join(ctx.config.root, TASK_DIR);
        ctx.exports.state = path.join(ctx.config.state, TASK_DIR);
        return manager;
      },
    },
    {
      type: PluginType.GRPC,
      id: 'tasks',
      requires: [PluginType.Metadata, PluginType.Runtime],
      init: async (ctx): Promise<ServesServices> => ({
        services: [tasksService(ctx.get<Metadata>(PluginType.Metadata), ctx.get<TaskManager>(PluginType.Runtime))],
      }),
    },
    metadataService('leases', (m) => leasesService(m)),
    {
      type: PluginType.GRPC,
      id: 'introspection',
      requires: ['*'],
      init: async (ctx): Promise<ServesServices> => ({
        services: [introspectionService(loaded, serverUUID(ctx.root))],
      }),
    },
  ];
}
