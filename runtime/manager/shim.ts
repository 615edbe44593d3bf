// One shim as berthd sees it: launched with containerd's shim v2 bootstrap (`start` in the
// bundle, options on stdin, address printed on stdout), reached over ttrpc, cleaned up with the
// `delete` sub-command after it goes away (containerd-wire §7).
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Logger } from 'pino';
import { decode, encode, type AnyMessage, type Message } from '../../proto/codec';
import { BerthError } from '../../services/errdefs';
import { TtrpcClient, type CallOptions } from '../ttrpc';
import { runCommand } from './spawn';

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

/** Runs `<shim> … <action>` in the bundle and returns its stdout, failing with its output. */
async function runShimCommand(launch: ShimLaunch, action: 'start' | 'delete', stdin?: Buffer, timeoutMs = 30_000): Promise<Buffer> {
  const args = ['-namespace', launch.namespace, '-address', launch.grpcAddress, '-publish-binary', launch.publishBinary, '-id', launch.id];
  if (action === 'delete') args.push('-bundle', launch.bundle);
  args.push(action);
  let res;
  try {
    res = await runCommand(launch.binary, args, {
      cwd: launch.bundle,
      env: { ...process.env, TTRPC_ADDRESS: launch.ttrpcAddress, GOMAXPROCS: process.env.GOMAXPROCS ?? '2' },
      stdin,
      timeoutMs,
    });
  } catch (err) {
    throw new BerthError('FailedPrecondition', `start shim ${launch.binary}: ${(err as Error).message}`);
  }
  if (res.code === 0) return res.stdout;
  const text = Buffer.concat([res.stdout, res.stderr]).toString().trim();
  throw new BerthError('Unknown', `shim ${action} failed (${res.signal ?? `exit ${res.code}`}): ${text}`);
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
