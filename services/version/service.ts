// Version: the daemon's version and the source revision it was built from.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ServiceImplementation } from '../server/rpc';

/** Package root: this file runs as dist/services/version/service.js. */
const PACKAGE_ROOT = path.resolve(__dirname, '..', '..', '..');

export interface VersionInfo {
  version: string;
  revision: string;
}

let cached: VersionInfo | undefined;

export function versionInfo(): VersionInfo {
  if (cached) return cached;
  const pkg = JSON.parse(fs.readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string };
  let revision = 'unknown';
  try {
    // Written by the build from `git rev-parse HEAD`.
    revision = fs.readFileSync(path.join(PACKAGE_ROOT, 'dist', 'REVISION'), 'utf8').trim() || revision;
  } catch {
    // A tree built without git keeps "unknown".
  }
  cached = { version: pkg.version, revision };
  return cached;
}

export function versionService(): ServiceImplementation {
  return {
    name: 'containerd.services.version.v1.Version',
    handlers: {
      Version: async () => ({ ...versionInfo() }),
    },
  };
}
