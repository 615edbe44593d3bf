// The plugins berthd is made of, with their declared dependencies. The server initialises
// them in dependency order; introspection lists them.
import * as path from 'node:path';
import { Exchange } from '../events/exchange';
import { eventsService } from '../events/service';
import { healthService } from '../health/service';
import { introspectionService, serverUUID } from '../introspection/service';
import { MetadataDB } from '../metadata/db';
import { namespacesService } from '../namespaces/service';
import { versionService } from '../version/service';
import { PluginType, type LoadedPlugin, type PluginRegistration, type ServesServices } from './plugin';

export function builtinPlugins(loaded: () => LoadedPlugin[]): PluginRegistration[] {
  return [
    {
      type: PluginType.Event,
      id: 'exchange',
      init: async () => new Exchange(),
    },
    {
      type: PluginType.Metadata,
      id: 'level',
      requires: [PluginType.Event],
      init: async (ctx) => {
        const dir = path.join(ctx.root, 'db');
        ctx.exports.root = dir;
        return MetadataDB.open(dir);
      },
    },
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
    {
      type: PluginType.GRPC,
      id: 'namespaces',
      requires: [PluginType.Metadata, PluginType.Event],
      init: async (ctx): Promise<ServesServices> => ({
        services: [namespacesService(ctx.get<MetadataDB>(PluginType.Metadata), ctx.get<Exchange>(PluginType.Event))],
      }),
    },
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
