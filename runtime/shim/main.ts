// The Node side of containerd-shim-berth-v1 (runtime io.containerd.berth.v1, containerd-wire §7).
// bin/containerd-shim-berth-v1 (sh) does `start` and the fast `delete`; it runs this file as
//   main.js -namespace NS -address ADDR -id ID -socket unix://PATH          → the long-lived shim
//   main.js -namespace NS -address ADDR -id ID -bundle B delete             → cleanup after a dead shim
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface ShimFlags {
  namespace: string;
  address: string;
  publishBinary: string;
  id: string;
  bundle: string;
  debug: boolean;
  action: string;
}

export const SOCKET_DIR = '/run/berth/s';

export function parseFlags(argv: string[]): ShimFlags {
  const f: ShimFlags = { namespace: '', address: '', publishBinary: '', id: '', bundle: '', debug: false, action: '' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!.replace(/^--?/, '');
    const eq = a.indexOf('=');
    const name = eq >= 0 ? a.slice(0, eq) : a;
    const value = () => (eq >= 0 ? a.slice(eq + 1) : (argv[++i] ?? ''));
    if (!argv[i]!.startsWith('-')) {
      f.action = argv[i]!;
      continue;
    }
    switch (name) {
      case 'namespace': f.namespace = value(); break;
      case 'address': f.address = value(); break;
      case 'publish-binary': f.publishBinary = value(); break;
      case 'id': f.id = value(); break;
      case 'bundle': f.bundle = value(); break;
      case 'debug': f.debug = true; break;
      default: if (eq < 0 && argv[i + 1] && !argv[i + 1]!.startsWith('-') && !['start', 'delete'].includes(argv[i + 1]!)) i++;
    }
  }
  return f;
}

/** The group a task's shim is shared by (CRI sandbox or runc's group annotation), else its id. */
export function groupOf(bundle: string, id: string): string {
  try {
    const spec = JSON.parse(fs.readFileSync(path.join(bundle, 'config.json'), 'utf8'));
    const a = spec.annotations ?? {};
    return a['io.kubernetes.cri.sandbox-id'] || a['io.containerd.runc.v2.group'] || id;
  } catch {
    return id;
  }
}

export function socketAddress(address: string, ns: string, group: string): string {
  const hex = createHash('sha256').update(`${address}/${ns}/${group}`).digest('hex');
  return `unix://${SOCKET_DIR}/${hex}`;
}

/** Files the launcher leaked to us without close-on-exec (a daemon's database…) must not live on in the shim. */
function closeInheritedFiles(): void {
  for (const name of fs.readdirSync('/proc/self/fd')) {
    const fd = Number(name);
    if (fd <= 3) continue; // stdio and the readiness pipe
    try {
      const target = fs.readlinkSync(`/proc/self/fd/${fd}`);
      if (target.startsWith('/') && !target.startsWith('/dev/') && !target.startsWith('/proc/')) fs.closeSync(fd);
    } catch {
      /* the directory's own fd, already closed */
    }
  }
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const f = parseFlags(argv);
  if (f.action === 'delete') {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { cleanupCommand } = require('./cleanup') as typeof import('./cleanup');
    await cleanupCommand(f);
  } else if (argv.includes('-spare')) {
    closeInheritedFiles();
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { runSpare } = require('./spare') as typeof import('./spare');
    await runSpare(f, argv[argv.indexOf('-spare') + 1]!);
  } else if (f.action) {
    throw new Error(`unknown action ${JSON.stringify(f.action)}: bin/containerd-shim-berth-v1 runs start`);
  } else {
    closeInheritedFiles();
    const i = argv.indexOf('-socket');
    const socket = i >= 0 ? argv[i + 1]! : socketAddress(f.address, f.namespace, groupOf(process.cwd(), f.id));
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { runShim } = require('./service') as typeof import('./service');
    await runShim(f, socket);
  }
}

if (require.main === module || /containerd-shim-berth-v1$/.test(require.main?.filename ?? '')) {
  main().catch((err) => {
    process.stderr.write(`containerd-shim-berth-v1: ${(err as Error)?.stack ?? err}\n`);
    process.exit(1);
  });
}
