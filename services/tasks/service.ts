// Tasks service: containerd.services.tasks.v1.Tasks. Each task runs under a shim reached over
// ttrpc; this service finds the container, picks its runtime and relays the calls.
import type { Message } from '../../proto/codec';
import type { ManagedTask, TaskManager } from '../../runtime/manager/manager';
import { BerthError } from '../errdefs';
import { parseAll } from '../filters';
import type { Metadata } from '../metadata';
import { requireNamespace, type CallContext, type ServiceImplementation } from '../server/rpc';

/** Process state as the Tasks API reports it (containerd's getProcessState). */
function processFromState(s: Message): Message {
  return {
    id: s.exec_id || s.id,
    pid: s.pid,
    status: s.status,
    stdin: s.stdin,
    stdout: s.stdout,
    stderr: s.stderr,
    terminal: s.terminal,
    exit_status: s.exit_status,
    exited_at: s.exited_at,
  };
}

export function tasksService(metadata: Metadata, manager: TaskManager): ServiceImplementation {
  /** The task of a container, with containerd's NotFound messages for either missing. */
  const taskOf = async (ctx: CallContext, id: string): Promise<ManagedTask> => {
    const ns = requireNamespace(ctx);
    await metadata.containers.get(ns, id);
    return manager.get(ns, id);
  };
  const relay = (method: string, build: (req: any) => Message) => async (req: any, ctx: CallContext) => {
    const task = await taskOf(ctx, req.container_id ?? '');
    await task.shim.call(method, { id: task.id, ...build(req) }, { signal: ctx.signal });
    return {};
  };

  return {
    name: 'containerd.services.tasks.v1.Tasks',
    handlers: {
      Create: async (req, ctx) => {
        const ns = requireNamespace(ctx);
        const container = await metadata.containers.get(ns, req.container_id ?? '');
        if (manager.has(ns, container.id)) throw new BerthError('AlreadyExists', `task ${container.id}`);
        if (req.checkpoint && req.checkpoint.digest) throw new BerthError('NotImplemented', 'restoring from a checkpoint is not supported by berthd');
        const spec = container.spec?.value ? Buffer.from(container.spec.value) : Buffer.alloc(0);
        const task = await manager.create({
          ns,
          id: container.id,
          runtime: req.runtime_path || container.runtime.name,
          runtimeOptions: container.runtime.options,
          taskOptions: req.options?.type_url ? req.options : null,
          spec,
          rootfs: (req.rootfs ?? []).map((m: Message) => ({ type: m.type, source: m.source, target: m.target ?? '', options: m.options ?? [] })),
          stdin: req.stdin ?? '',
          stdout: req.stdout ?? '',
          stderr: req.stderr ?? '',
          terminal: !!req.terminal,
        });
        return { container_id: container.id, pid: task.pid };
      },

      Start: async (req, ctx) => {
        const task = await taskOf(ctx, req.container_id ?? '');
        const res = await task.shim.call('Start', { id: task.id, exec_id: req.exec_id ?? '' }, { signal: ctx.signal });
        if (!req.exec_id) task.pid = res.pid;
        return { pid: res.pid };
      },

      Delete: async (req, ctx) => {
        const ns = requireNamespace(ctx);
        await metadata.containers.get(ns, req.container_id ?? '');
        const res = await manager.delete(ns, req.container_id);
        return { pid: res.pid, exit_status: res.exitStatus, exited_at: res.exitedAt };
      },

      DeleteProcess: async (req, ctx) => {
        const task = await taskOf(ctx, req.container_id ?? '');
        const res = await task.shim.call('Delete', { id: task.id, exec_id: req.exec_id ?? '' }, { signal: ctx.signal });
        return { id: req.exec_id, pid: res.pid, exit_status: res.exit_status, exited_at: res.exited_at };
      },

      Get: async (req, ctx) => {
        const task = await taskOf(ctx, req.container_id ?? '');
        const state = await task.shim.call('State', { id: task.id, exec_id: req.exec_id ?? '' }, { timeoutMs: 2000, signal: ctx.signal });
        return { process: processFromState(state) };
      },

      List: async (req, ctx) => {
        const ns = requireNamespace(ctx);
        const filter = parseAll(req.filter ? [req.filter] : []);
        const states = await Promise.all(
          manager.list(ns).map((t) =>
            t.shim.call('State', { id: t.id }, { timeoutMs: 2000 }).then(
              (s) => processFromState(s),
              () => undefined, // a shim that does not answer is left out, as containerd does
            ),
          ),
        );
        const tasks = states.filter((p): p is Message => !!p && filter.match({ field: (f) => (f[0] === 'id' ? p.id : f[0] === 'status' ? p.status : undefined) }));
        return { tasks };
      },

      Kill: relay('Kill', (req) => ({ exec_id: req.exec_id ?? '', signal: req.signal ?? 0, all: !!req.all })),

      Exec: async (req, ctx) => {
        const task = await taskOf(ctx, req.container_id ?? '');
        if (!req.exec_id) throw new BerthError('InvalidArgument', 'exec id must not be empty');
        await task.shim.call(
          'Exec',
          { id: task.id, exec_id: req.exec_id, terminal: !!req.terminal, stdin: req.stdin ?? '', stdout: req.stdout ?? '', stderr: req.stderr ?? '', spec: req.spec },
          { signal: ctx.signal },
        );
        return {};
      },

      ResizePty: relay('ResizePty', (req) => ({ exec_id: req.exec_id ?? '', width: req.width ?? 0, height: req.height ?? 0 })),
      CloseIO: relay('CloseIO', (req) => ({ exec_id: req.exec_id ?? '', stdin: !!req.stdin })),
      Pause: relay('Pause', () => ({})),
      Resume: relay('Resume', () => ({})),
      Update: relay('Update', (req) => ({ resources: req.resources, annotations: req.annotations ?? {} })),

      ListPids: async (req, ctx) => {
        const task = await taskOf(ctx, req.container_id ?? '');
        const res = await task.shim.call('Pids', { id: task.id }, { signal: ctx.signal });
        return { processes: res.processes ?? [] };
      },

      Checkpoint: async () => {
        throw new BerthError('NotImplemented', 'checkpointing is not supported by berthd (CRIU cannot checkpoint here)');
      },

      Wait: async (req, ctx) => {
        const task = await taskOf(ctx, req.container_id ?? '');
        const res = await task.shim.call('Wait', { id: task.id, exec_id: req.exec_id ?? '' }, { signal: ctx.signal });
        return { exit_status: res.exit_status, exited_at: res.exited_at };
      },

      Metrics: async (req, ctx) => {
        const ns = requireNamespace(ctx);
        const filter = parseAll(req.filters ?? []);
        const tasks = manager.list(ns).filter((t) => filter.match({ field: (f) => (f[0] === 'id' ? t.id : undefined) }));
        const metrics = await Promise.all(
          tasks.map(async (t) => {
            const res = await t.shim.call('Stats', { id: t.id }, { timeoutMs: 5000 });
            return { timestamp: { seconds: Math.floor(Date.now() / 1000), nanos: (Date.now() % 1000) * 1e6 }, id: t.id, data: res.stats };
          }),
        );
        return { metrics };
      },
    },
  };
}
