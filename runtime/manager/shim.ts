// One shim as berthd sees it: launched with containerd's shim v2 bootstrap (`start` in the
// bundle, options on stdin, address printed on stdout), reached over ttrpc, cleaned up with the
// `delete` sub-command after it goes away (containerd-wire §7).
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Logger } from 'pino';
import { decode, encode, type AnyMessage, type Message } from '../../proto/codec';
import { BerthError } from '../../services/errdefs';
import { TtrpcClient, type CallOptions } from '../ttrpc';
import { setCloexec } from '../native/fs';

const TASK_SERVICE = 'containerd.task.v2.Task';

export interface ShimLaunch {
  binary: string;
  namespace: string;
  id: string;
  bundle: string;
  /** berthd's gRPC socket (the shim derives its own socket name from it). */
  grpcAddress: string;
  /** Where the shim forwards its events (containerd.services.events.ttrpc.v1.Events). */
  ttrpcAddress: string;
  /** The binary the shim may call to publish events (unused by current shims). */
  publishBinary: string;
  options: AnyMessage | null;
  log: Logger;
}

/**
 * Marks every descriptor above stdio close-on-exec. libuv opens its own that way, but native
 * modules (leveldb's files) do not, and shims would otherwise inherit berthd's database files.
 */
function closeOnExecAll(): void {
  for (const name of fs.readdirSync('/proc/self/fd')) {
    const fd = Number(name);
    if (fd <= 2) continue;
    try {
      setCloexec(fd, true);
    } catch {
      // the directory's own descriptor, already closed
    }
  }
}

/** Runs `<shim> … <action>` in the bundle and returns its combined output (trimmed), failing with it. */
function runShimCommand(launch: ShimLaunch, action: 'start' | 'delete', stdin?: Buffer, timeoutMs = 30_000): Promise<Buffer> {
  const args = ['-namespace', launch.namespace, '-address', launch.grpcAddress, '-publish-binary', launch.publishBinary, '-id', launch.id];
  if (action === 'delete') args.push('-bundle', launch.bundle);
  args.push(action);
  closeOnExecAll();
  return new Promise((resolve, reject) => {
    const child = spawn(launch.binary, args, {
      cwd: launch.bundle,
      env: { ...process.env, TTRPC_ADDRESS: launch.ttrpcAddress, GOMAXPROCS: process.env.GOMAXPROCS ?? '2' },
      stdio: ['pipe', 'pipe', 'pipe'],
      // The shim daemon it leaves behind must outlive berthd: own process group.
      detached: true,
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d) => out.push(d));
    child.stderr.on('data', (d) => err.push(d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new BerthError('FailedPrecondition', `start shim ${launch.binary}: ${e.message}`));
    });
    // 'close', not 'exit': the output may still be in the pipe when the process has exited
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const stdout = Buffer.concat(out);
      if (code === 0) resolve(stdout);
      else {
        const text = Buffer.concat([stdout, ...err]).toString().trim();
        reject(new BerthError('Unknown', `shim ${action} failed (${signal ?? `exit ${code}`}): ${text}`));
      }
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(stdin ?? Buffer.alloc(0));
  });
}

export class Shim {
  private constructor(
    readonly launch: Omit<ShimLaunch, 'options'>,
    readonly address: string,
    private readonly client: TtrpcClient,
  ) {}

  /** Starts a shim for a new task (or joins a grouped one) and connects to it. */
  static async start(launch: ShimLaunch): Promise<Shim> {
    const options = launch.options ? encode('google.protobuf.Any', launch.options) : Buffer.alloc(0);
    const address = (await runShimCommand(launch, 'start', options)).toString().trim();
    if (!address) throw new BerthError('Unknown', `shim ${launch.binary} printed no address`);
    fs.writeFileSync(path.join(launch.bundle, 'shim-binary-path'), launch.binary);
    return Shim.connect(launch, address);
  }

  /** Connects to a shim that is already running (after berthd restarted). */
  static async connect(launch: Omit<ShimLaunch, 'options'>, address: string, timeoutMs = 5000): Promise<Shim> {
    const client = await TtrpcClient.connect(address, { timeoutMs, log: launch.log });
    return new Shim(launch, address, client);
  }

  /** Calls a containerd.task.v2.Task method; types come from the service definition. */
  call(method: string, request: Message, options: CallOptions = {}): Promise<Message> {
    return this.client.service(TASK_SERVICE)[method](request, { namespace: this.launch.namespace, ...options });
  }

  onClose(fn: () => void): void {
    this.client.once('close', fn);
  }

  get closed(): boolean {
    return this.client.closed;
  }

  close(): Promise<void> {
    return this.client.close();
  }

  /** The `delete` sub-command: the shim binary cleans up what a dead shim left (its rootfs
   * mount, the runtime's state) and reports the exit it recorded. */
  static async cleanup(launch: Omit<ShimLaunch, 'options'>): Promise<{ pid: number; exitStatus: number; exitedAt: Message }> {
    const out = await runShimCommand({ ...launch, options: null }, 'delete');
    const res = decode('containerd.task.v2.DeleteResponse', out);
    return { pid: res.pid, exitStatus: res.exit_status, exitedAt: res.exited_at };
  }
}
