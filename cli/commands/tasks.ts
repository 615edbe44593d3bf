import type { Command } from 'commander';
import { fromAny } from '../../proto/codec';
import { formatTable } from '../table';
import type { Context } from '../context';
import { signalNumber } from '../signals';
import { AttachedStdio, ClientStdio, createTask, removeTaskFifos, startTask, wantsStdin } from '../stdio';
import * as crypto from 'node:crypto';

export function register(program: Command, context: () => Context): void {
  const tasks = program.command('tasks').alias('task').alias('t').description('manage tasks (the running side of containers)');

  tasks
    .command('ls')
    .alias('list')
    .description('list tasks')
    .option('-q, --quiet', 'print only the ids')
    .action(async (opts: { quiet?: boolean }) => {
      const ctx = context();
      const list = ((await ctx.client.unary('tasks', 'List', {})).tasks as any[]).sort((a, b) => a.id.localeCompare(b.id));
      if (ctx.json) return ctx.out(JSON.stringify(list, null, 2) + '\n');
      if (opts.quiet) return ctx.out(list.map((t) => t.id + '\n').join(''));
      ctx.out(formatTable(['TASK', 'PID', 'STATUS'], list.map((t) => [t.id, String(t.pid), t.status])));
    });

  tasks
    .command('kill')
    .description('signal a task (all its processes with --all, or one exec process)')
    .option('-s, --signal <signal>', 'signal name or number', 'SIGTERM')
    .option('-a, --all', 'send to every process in the task')
    .option('--exec-id <id>', 'signal this exec process')
    .argument('<ids...>')
    .action(async (ids: string[], opts: { signal: string; all?: boolean; execId?: string }) => {
      const ctx = context();
      const signal = signalNumber(opts.signal);
      for (const id of ids) await ctx.client.unary('tasks', 'Kill', { container_id: id, exec_id: opts.execId ?? '', signal, all: !!opts.all });
    });

  tasks
    .command('ps')
    .description('list the processes of a task')
    .argument('<id>')
    .action(async (id: string) => {
      const ctx = context();
      const { processes } = await ctx.client.unary('tasks', 'ListPids', { container_id: id });
      if (ctx.json) return ctx.out(JSON.stringify(processes, null, 2) + '\n');
      ctx.out(formatTable(['PID', 'INFO'], (processes as any[]).map((p) => [String(p.pid), p.info ? JSON.stringify(fromAny(p.info) ?? {}) : '-'])));
    });

  for (const [name, method, what] of [
    ['pause', 'Pause', 'freeze every process of a task'],
    ['resume', 'Resume', 'thaw a paused task'],
  ] as const) {
    tasks
      .command(name)
      .description(what)
      .argument('<id>')
      .action(async (id: string) => {
        await context().client.unary('tasks', method, { container_id: id });
      });
  }

  tasks
    .command('metrics')
    .alias('metric')
    .description('cgroup statistics of tasks')
    .argument('[ids...]')
    .action(async (ids: string[]) => {
      const ctx = context();
      const { metrics } = await ctx.client.unary('tasks', 'Metrics', { filters: ids.map((id) => `id==${id}`) });
      const decoded = (metrics as any[]).map((m) => ({ id: m.id, type: m.data?.type_url, data: fromAny(m.data) }));
      if (ctx.json) return ctx.out(JSON.stringify(decoded, null, 2) + '\n');
      for (const m of decoded) {
        const d: any = m.data ?? {};
        const rows: string[][] = [];
        if (d.memory) rows.push(['memory.usage', String(d.memory.usage?.usage ?? d.memory.usage ?? '-')], ['memory.limit', String(d.memory.usage?.limit ?? d.memory.usage_limit ?? '-')]);
        if (d.cpu) rows.push(['cpu.usage_total_ns', String(d.cpu.usage?.total ?? d.cpu.usage_usec ?? '-')]);
        if (d.pids) rows.push(['pids.current', String(d.pids.current ?? '-')], ['pids.limit', String(d.pids.limit ?? '-')]);
        ctx.out(`${m.id} (${m.type})\n${formatTable(['METRIC', 'VALUE'], rows)}`);
      }
    });

  tasks
    .command('rm')
    .alias('delete')
    .description('delete stopped tasks (-f kills a running one first)')
    .option('-f, --force', 'kill a running task first')
    .argument('<ids...>')
    .action(async (ids: string[], opts: { force?: boolean }) => {
      const ctx = context();
      for (const id of ids) {
        const { process: p } = await ctx.client.unary('tasks', 'Get', { container_id: id });
        if (p.status !== 'STOPPED' && p.status !== 'CREATED') {
          if (!opts.force) throw new Error(`task ${id} must be stopped before deletion: ${p.status.toLowerCase()}`);
          const waiting = ctx.client.unary('tasks', 'Wait', { container_id: id });
          await ctx.client.unary('tasks', 'Kill', { container_id: id, signal: 9, all: true });
          await waiting;
        }
        const res = await ctx.client.unary('tasks', 'Delete', { container_id: id });
        removeTaskFifos(p);
        ctx.out(ctx.json ? JSON.stringify(res) + '\n' : `${id}\n`);
      }
    });

  tasks
    .command('start')
    .description("start a container's task (foreground unless -d)")
    .option('-d, --detach', 'return once the task runs')
    .option('-t, --tty', 'allocate a terminal')
    .argument('<id>')
    .action(async (id: string, opts: { detach?: boolean; tty?: boolean }) => {
      const ctx = context();
      const client = ctx.client;
      const { container } = await client.unary('containers', 'Get', { id });
      const rootfs = container.snapshot_key
        ? (await client.unary('snapshots', 'Mounts', { snapshotter: container.snapshotter, key: container.snapshot_key })).mounts
        : [];
      const stdio = await createTask(client, ctx.namespace, id, rootfs, opts);
      const status = await startTask(client, id, stdio);
      if (status) process.exitCode = status;
    });

  tasks
    .command('attach')
    .description("attach to a running task's stdio (its FIFOs: run -d -t); Ctrl-P Ctrl-Q detaches")
    .argument('<id>')
    .action(async (id: string) => {
      const ctx = context();
      const client = ctx.client;
      const { process: p } = await client.unary('tasks', 'Get', { container_id: id });
      const stdio = new AttachedStdio(id, { stdin: p.stdin, stdout: p.stdout, stderr: p.stderr }, !!p.terminal);
      const ids = { container_id: id };
      const abort = new AbortController();
      const exited = client.unary('tasks', 'Wait', ids, abort.signal).then((s) => s as { exit_status: number });
      exited.catch(() => undefined);
      stdio.attach(client, ids);
      const end = await Promise.race([exited, stdio.detached.then(() => undefined)]);
      if (!end) {
        abort.abort(); // detached: stop waiting for the exit
        return stdio.close();
      }
      await stdio.finish();
      if (end.exit_status) process.exitCode = end.exit_status;
    });

  tasks
    .command('exec')
    .description('run another process in a running task')
    .passThroughOptions()
    .option('-t, --tty', 'allocate a terminal')
    .option('--exec-id <id>', 'the process id (generated when absent)')
    .option('--cwd <dir>', 'working directory')
    .option('--env <K=V>', 'environment variable (repeatable)', (v: string, all: string[]) => [...all, v], [] as string[])
    .argument('<id>')
    .argument('<command...>')
    .action(async (id: string, command: string[], opts: { tty?: boolean; execId?: string; cwd?: string; env: string[] }) => {
      const ctx = context();
      const client = ctx.client;
      const { container } = await client.unary('containers', 'Get', { id });
      // The exec process starts from the container's own process spec, as ctr does.
      const spec = JSON.parse(Buffer.from(container.spec.value).toString());
      const processSpec = { ...spec.process, args: command, terminal: !!opts.tty, cwd: opts.cwd ?? spec.process?.cwd ?? '/' };
      if (opts.env.length) processSpec.env = [...(processSpec.env ?? []), ...opts.env];
      const execId = opts.execId ?? `exec-${crypto.randomBytes(6).toString('hex')}`;
      const stdio = new ClientStdio(execId, !!opts.tty, wantsStdin(!!opts.tty));
      const ids = { container_id: id, exec_id: execId };
      try {
        await client.unary('tasks', 'Exec', {
          ...ids,
          terminal: !!opts.tty,
          ...stdio.paths,
          spec: { type_url: 'types.containerd.io/opencontainers/runtime-spec/1/Process', value: Buffer.from(JSON.stringify(processSpec)) },
        });
      } catch (err) {
        stdio.close();
        throw err;
      }
      const waiting = client.unary('tasks', 'Wait', ids);
      await client.unary('tasks', 'Start', ids);
      stdio.attach(client, ids);
      const status = await waiting;
      await client.unary('tasks', 'DeleteProcess', ids).catch(() => undefined);
      await stdio.finish();
      if (status.exit_status) process.exitCode = status.exit_status;
    });
}
