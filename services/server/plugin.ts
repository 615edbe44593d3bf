// Plugins with declared dependencies, as containerd composes its daemon: each registers a type,
// an id and the types it requires; the server initialises them in dependency order, records
// what failed and why (introspection reports it), and registers the gRPC services they export.
import type { Logger } from 'pino';
import { BerthError, toStatus } from '../errdefs';
import type { ServiceImplementation } from './rpc';
import type { Config } from './config';

export const PluginType = {
  Internal: 'io.containerd.internal.v1',
  Event: 'io.containerd.event.v1',
  Metadata: 'io.containerd.metadata.v1',
  Content: 'io.containerd.content.v1',
  Snapshot: 'io.containerd.snapshotter.v1',
  Differ: 'io.containerd.differ.v1',
  Runtime: 'io.containerd.runtime.v2',
  Service: 'io.containerd.service.v1',
  GRPC: 'io.containerd.grpc.v1',
} as const;

export interface InitContext {
  readonly config: Config;
  /** This plugin's own persistent directory: <root>/<type>.<id> (created on demand by the plugin). */
  readonly root: string;
  /** This plugin's own volatile directory: <state>/<type>.<id>. */
  readonly state: string;
  readonly log: Logger;
  /** Filled in by init: what introspection shows as the plugin's exports. */
  readonly exports: Record<string, string>;
  /** The instance of the one initialised plugin of a type (e.g. the metadata database). */
  get<T>(type: string): T;
  /** Instances of every initialised plugin of a type, by id. */
  getAll<T>(type: string): Map<string, T>;
}

export interface PluginRegistration<T = unknown> {
  type: string;
  id: string;
  /** Plugin types that must be initialised first; '*' means every other plugin. */
  requires?: string[];
  capabilities?: string[];
  platforms?: Array<{ os: string; architecture: string; variant?: string }>;
  init(ctx: InitContext): Promise<T>;
}

/** What a plugin that serves wire services returns from init (or as part of its instance). */
export interface ServesServices {
  services: ServiceImplementation[];
}

export function servesServices(instance: unknown): instance is ServesServices {
  return !!instance && Array.isArray((instance as ServesServices).services);
}

export interface LoadedPlugin {
  registration: PluginRegistration;
  instance?: unknown;
  exports: Record<string, string>;
  initError?: { code: number; message: string };
}

/** Orders registrations so that every plugin comes after the types it requires. */
export function dependencyOrder(registrations: PluginRegistration[]): PluginRegistration[] {
  const ordered: PluginRegistration[] = [];
  const state = new Map<PluginRegistration, 'visiting' | 'done'>();
  const visit = (reg: PluginRegistration, chain: string[]) => {
    const mark = state.get(reg);
    if (mark === 'done') return;
    const name = `${reg.type}.${reg.id}`;
    if (mark === 'visiting') throw new Error(`plugin dependency cycle: ${[...chain, name].join(' -> ')}`);
    state.set(reg, 'visiting');
    for (const req of reg.requires ?? []) {
      if (req === '*') continue;
      for (const dep of registrations) if (dep.type === req && dep !== reg) visit(dep, [...chain, name]);
    }
    state.set(reg, 'done');
    ordered.push(reg);
  };
  for (const reg of registrations) if (!(reg.requires ?? []).includes('*')) visit(reg, []);
  for (const reg of registrations) if ((reg.requires ?? []).includes('*')) visit(reg, []);
  return ordered;
}

export class PluginSet {
  readonly loaded: LoadedPlugin[] = [];

  /** Initialises every registration in dependency order; a failure is recorded, not thrown,
   * and plugins requiring a failed type fail in turn with a message naming it. */
  async initAll(
    registrations: PluginRegistration[],
    make: (reg: PluginRegistration, exports: Record<string, string>) => Omit<InitContext, 'get' | 'getAll' | 'exports'>,
    log: Logger,
  ): Promise<void> {
    for (const reg of dependencyOrder(registrations)) {
      const exports: Record<string, string> = {};
      const entry: LoadedPlugin = { registration: reg, exports };
      this.loaded.push(entry);
      const ctx: InitContext = {
        ...make(reg, exports),
        exports,
        get: <T>(type: string) => this.get<T>(type),
        getAll: <T>(type: string) => this.getAll<T>(type),
      };
      try {
        entry.instance = await reg.init(ctx);
        log.debug({ type: reg.type, id: reg.id }, 'plugin loaded');
      } catch (err) {
        entry.initError = toStatus(err);
        log.warn({ type: reg.type, id: reg.id, err: entry.initError.message }, 'plugin failed to load');
      }
    }
  }

  get<T>(type: string): T {
    const matches = this.loaded.filter((p) => p.registration.type === type);
    const ok = matches.find((p) => !p.initError && p.instance !== undefined);
    if (ok) return ok.instance as T;
    const failed = matches.find((p) => p.initError);
    if (failed) {
      throw new BerthError(
        'FailedPrecondition',
        `required plugin ${type}.${failed.registration.id} failed to load: ${failed.initError!.message}`,
      );
    }
    throw new BerthError('NotFound', `no plugin of type ${type} is loaded`);
  }

  getAll<T>(type: string): Map<string, T> {
    const out = new Map<string, T>();
    for (const p of this.loaded) {
      if (p.registration.type === type && !p.initError && p.instance !== undefined) out.set(p.registration.id, p.instance as T);
    }
    return out;
  }
}
