// containerd-shim-berth-v1: the shim v2 binary of runtime io.containerd.berth.v1 (containerd-wire §7).
//   <bin> -namespace NS -address ADDR -publish-binary BIN -id ID start    → bootstrap, prints the address
//   <bin> -namespace NS -address ADDR -publish-binary BIN -id ID -bundle B delete → cleanup after the shim
//   <bin> -namespace NS -address ADDR -id ID                               → the long-lived shim (internal)
// Only the daemon path loads the heavy modules; start and delete stay light (they are on the
// critical path of every `ctr run --rm`).
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
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

function connectable(p: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createConnection({ path: p });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

function openLog(bundle: string): number {
  try {
    return fs.openSync(path.join(bundle, 'log'), fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
  } catch {
    return fs.openSync('/dev/null', fs.constants.O_WRONLY);
  }
}

/** Files the daemon leaked to us without close-on-exec (its database…) must not live on in the shim. */
function closeInheritedFiles(): void {
  for (const name of fs.readdirSync('/proc/self/fd')) {
    const fd = Number(name);
    if (fd <= 2) continue;
    try {
      const target = fs.readlinkSync(`/proc/self/fd/${fd}`);
      if (target.startsWith('/') && !target.startsWith('/dev/') && !target.startsWith('/proc/')) fs.closeSync(fd);
    } catch {
      /* the directory's own fd, already closed */
    }
  }
}

async function start(f: ShimFlags): Promise<void> {
  const bundle = process.cwd();
  const address = socketAddress(f.address, f.namespace, groupOf(bundle, f.id));
  const sock = address.slice('unix://'.length);
  fs.mkdirSync(SOCKET_DIR, { recursive: true, mode: 0o711 });
  if (!(await connectable(sock))) {
    closeInheritedFiles();
    const log = openLog(bundle);
    const args = [__filename, '-namespace', f.namespace, '-id', f.id, '-address', f.address, '-socket', address];
    if (f.debug) args.push('-debug');
    const child = spawn(process.execPath, args, {
      cwd: bundle,
      detached: true,
      stdio: ['ignore', log, log, 'pipe'],
      env: process.env,
    });
    const ready = await new Promise<string>((resolve) => {
      const chunks: Buffer[] = [];
      const pipe = child.stdio[3] as net.Socket;
      pipe.on('data', (d: Buffer) => chunks.push(d));
      pipe.on('end', () => resolve(Buffer.concat(chunks).toString()));
      pipe.on('error', () => resolve(Buffer.concat(chunks).toString()));
      child.once('exit', (code, sig) => setTimeout(() => resolve(Buffer.concat(chunks).toString() || `shim exited (${sig ?? code})`), 50));
    });
    if (ready !== 'ok') {
      process.stdout.write(`berth shim failed to start: ${ready}`);
      process.exit(1);
    }
    child.unref();
    (child.stdio[3] as net.Socket).destroy();
    fs.closeSync(log);
  }
  fs.writeFileSync(path.join(bundle, 'address'), address);
  process.stdout.write(address);
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const f = parseFlags(argv);
  if (f.action === 'start') {
    process.stdin.resume(); // the options Any: unused
    process.stdin.on('error', () => undefined);
    await start(f);
    process.exit(0);
  } else if (f.action === 'delete') {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { cleanupCommand } = require('./cleanup') as typeof import('./cleanup');
    await cleanupCommand(f);
  } else {
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
