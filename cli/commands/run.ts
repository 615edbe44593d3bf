// berth run: what ctr run does, client-side as ctr does it — pull the image if missing, build
// the spec from the image config, prepare the container's snapshot, create the container (on
// Berth's own shim unless --runtime says otherwise) and its task with stdio FIFOs, start it,
// relay stdio, wait, and with --rm remove everything. -d returns once it runs: without -t with
// no stdio (ctr's null IO), with -t leaving FIFOs for `berth tasks attach`.
import * as crypto from 'node:crypto';
import type { Command } from 'commander';
import {
  generateSpec,
  withCPUShares,
  withEnv,
  withHostNamespace,
  withMemoryLimit,
  withMounts,
  withProcessArgs,
  withProcessCwd,
  withTTY,
  type SpecOpt,
} from '../../runtime/oci/defaults';
import type { Context } from '../context';
import type { Client } from '../client';
import { createTask, startTask } from '../stdio';

const SPEC_TYPE = 'types.containerd.io/opencontainers/runtime-spec/1/Spec';
/** Berth's own shim (bin/containerd-shim-berth-v1). */
export const DEFAULT_RUNTIME = 'io.containerd.berth.v1';
const RUNC_OPTIONS = { type_url: 'containerd.runc.v1.Options', value: Buffer.alloc(0) };

interface RunOptions {
  rm?: boolean;
  detach?: boolean;
  tty?: boolean;
  env: string[];
  mount: string[];
  memoryLimit?: string;
  cpus?: string;
  netHost?: boolean;
  runtime: string;
  snapshotter: string;
  plainHttp?: boolean;
}

const sha256 = (s: string) => `sha256:${crypto.createHash('sha256').update(s).digest('hex')}`;

/** The chain ID of the top layer (OCI image spec: layer identity across the stack). */
export function chainID(diffIDs: string[]): string {
  let chain = '';
  for (const d of diffIDs) chain = chain ? sha256(`${chain} ${d}`) : d;
  return chain;
}

async function readJSON(client: Client, digest: string): Promise<any> {
  const parts: Buffer[] = [];
  for await (const m of client.stream('content', 'Read', { digest })) parts.push(m.data);
  return JSON.parse(Buffer.concat(parts).toString());
}

/** The image's config, following an index to the host platform's manifest. */
async function imageConfig(client: Client, target: { media_type: string; digest: string }): Promise<any> {
  let manifest = await readJSON(client, target.digest);
  if (manifest.manifests) {
    const arch = process.arch === 'x64' ? 'amd64' : process.arch;
    const pick = manifest.manifests.find((m: any) => m.platform?.os === 'linux' && m.platform?.architecture === arch) ?? manifest.manifests[0];
    manifest = await readJSON(client, pick.digest);
  }
  return readJSON(client, manifest.config.digest);
}

/** `type=bind,src=/a,dst=/b,options=rbind:ro` → an OCI mount. */
function parseMount(text: string) {
  const kv = Object.fromEntries(text.split(',').map((p) => p.split('=') as [string, string]));
  if (!kv.dst && !kv.destination) throw new Error(`mount ${JSON.stringify(text)}: dst= is required`);
  return {
    type: kv.type ?? 'bind',
    source: kv.src ?? kv.source ?? '',
    destination: kv.dst ?? kv.destination,
    options: kv.options ? kv.options.split(':') : ['rbind', 'rw'],
  };
}

export function register(program: Command, context: () => Context): void {
  program
    .command('run')
    .description('run a container from an image (pulled first when missing)')
    .passThroughOptions()
    .option('--rm', 'remove the container when it exits')
    .option('-d, --detach', 'leave the container running and return')
    .option('-t, --tty', 'allocate a terminal')
    .option('--env <K=V>', 'environment variable (repeatable)', (v: string, all: string[]) => [...all, v], [] as string[])
    .option('--mount <spec>', 'type=bind,src=…,dst=…,options=rbind:ro (repeatable)', (v: string, all: string[]) => [...all, v], [] as string[])
    .option('--memory-limit <bytes>', 'memory limit in bytes')
    .option('--cpus <n>', 'CPU share as a number of CPUs')
    .option('--net-host', "use the host's network namespace")
    .option('--runtime <name>', 'runtime name (io.containerd.runc.v2 for containerd\'s runc shim)', DEFAULT_RUNTIME)
    .option('--snapshotter <name>', 'snapshotter', 'overlayfs')
    .option('--plain-http', 'pull over plain HTTP when the image is missing')
    .argument('<image>')
    .argument('<id>')
    .argument('[command...]')
    .action(async (imageName: string, id: string, command: string[], opts: RunOptions) => {
      const ctx = context();
      const client = ctx.client;
      let image = await client.unary('images', 'Get', { name: imageName }).catch(() => undefined);
      if (!image) {
        ctx.err(`pulling ${imageName}…\n`);
        for await (const _ of client.stream('transfer', 'Pull', { ref: imageName, plain_http: !!opts.plainHttp })) {
          // progress is shown by `berth images pull`; here only the result matters
        }
        image = await client.unary('images', 'Get', { name: imageName });
      }
      const config = await imageConfig(client, image.image.target);
      const c = config.config ?? {};
      const args = command.length > 0 ? [...(c.Entrypoint ?? []), ...command] : [...(c.Entrypoint ?? []), ...(c.Cmd ?? [])];
      if (args.length === 0) throw new Error('no command given and the image has none');
      const specOpts: SpecOpt[] = [withProcessArgs(...args), withEnv([...(c.Env ?? []), ...opts.env])];
      if (c.WorkingDir) specOpts.push(withProcessCwd(c.WorkingDir));
      if (opts.tty) specOpts.push(withTTY);
      if (opts.mount.length) specOpts.push(withMounts(opts.mount.map(parseMount)));
      if (opts.memoryLimit) specOpts.push(withMemoryLimit(Number(opts.memoryLimit)));
      if (opts.cpus) specOpts.push(withCPUShares(Math.round(Number(opts.cpus) * 1024)));
      if (opts.netHost) specOpts.push(withHostNamespace('network'));
      const spec = generateSpec(ctx.namespace, id, ...specOpts);

      const parent = chainID(config.rootfs?.diff_ids ?? []);
      await client.unary('snapshots', 'Prepare', { snapshotter: opts.snapshotter, key: id, parent });
      await client.unary('containers', 'Create', {
        container: {
          id,
          image: imageName,
          labels: {},
          runtime: { name: opts.runtime, options: opts.runtime === 'io.containerd.runc.v2' ? RUNC_OPTIONS : null },
          spec: { type_url: SPEC_TYPE, value: Buffer.from(JSON.stringify(spec)) },
          snapshotter: opts.snapshotter,
          snapshot_key: id,
        },
      });
      const { mounts } = await client.unary('snapshots', 'Mounts', { snapshotter: opts.snapshotter, key: id });

      const stdio = await createTask(client, ctx.namespace, id, mounts, opts);
      const status = await startTask(client, id, stdio);
      if (status === undefined) return; // detached
      if (opts.rm) {
        await client.unary('snapshots', 'Remove', { snapshotter: opts.snapshotter, key: id }).catch(() => undefined);
        await client.unary('containers', 'Delete', { id });
      }
      if (status) process.exitCode = status;
    });
}
