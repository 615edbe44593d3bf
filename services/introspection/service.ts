// Introspection: which plugins loaded (and why others did not), and the server's persistent UUID.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseAll, type Adaptor } from '../filters';
import type { LoadedPlugin } from '../server/plugin';
import type { ServiceImplementation } from '../server/rpc';

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The server's UUID, created on first start in `<dir>/uuid` and the same for ever after. */
export function serverUUID(dir: string): string {
  const file = path.join(dir, 'uuid');
  try {
    const existing = fs.readFileSync(file, 'utf8').trim();
    if (UUID_RE.test(existing)) return existing;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  fs.mkdirSync(dir, { recursive: true, mode: 0o711 });
  const uuid = crypto.randomUUID();
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, uuid, { mode: 0o644 });
  fs.renameSync(tmp, file);
  return uuid;
}

/** Filter fields of a plugin, as containerd offers them: type and id. */
function pluginAdaptor(p: LoadedPlugin): Adaptor {
  return {
    field(fieldpath) {
      switch (fieldpath[0]) {
        case 'type':
          return p.registration.type || undefined;
        case 'id':
          return p.registration.id || undefined;
        default:
          return undefined;
      }
    },
  };
}

function toWire(p: LoadedPlugin) {
  return {
    type: p.registration.type,
    id: p.registration.id,
    requires: p.registration.requires ?? [],
    platforms: (p.registration.platforms ?? []).map((pl) => ({ os: pl.os, architecture: pl.architecture, variant: pl.variant ?? '' })),
    exports: p.exports,
    capabilities: p.registration.capabilities ?? [],
    init_err: p.initError ? { code: p.initError.code, message: p.initError.message, details: [] } : null,
  };
}

export function introspectionService(plugins: () => LoadedPlugin[], uuid: string): ServiceImplementation {
  return {
    name: 'containerd.services.introspection.v1.Introspection',
    handlers: {
      Plugins: async (req) => {
        const filter = parseAll(req.filters ?? []);
        return { plugins: plugins().filter((p) => filter.match(pluginAdaptor(p))).map(toWire) };
      },
      Server: async () => ({ uuid }),
    },
  };
}
