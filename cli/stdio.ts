// Client-side stdio for tasks and exec processes, as containerd's clients do it: FIFOs made by
// the client, their paths given to the daemon, the shim opening the other ends; stdout/stderr
// copied until the shim closes them, stdin relayed and closed at EOF.
//
// Three lifetimes:
//  - ClientStdio: a foreground process (run, tasks start, tasks exec): FIFOs in a private temp
//    directory, removed when the process is done.
//  - DetachedStdio: `run -d -t` / `tasks start -d -t`: FIFOs in fifoRoot()/<ns>-<id>-XXXXXX that
//    outlive the CLI, so that `tasks attach` can open them again (ctr keeps them under
//    /run/containerd/fifo); removed by removeTaskFifos when berth deletes the task.
//  - AttachedStdio: `tasks attach`: opens a running task's existing FIFOs (the paths Tasks.Get
//    reports) and relays our terminal to them until the task exits or we detach (Ctrl-P Ctrl-Q).
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Client } from './client';

export interface StdioPaths {
  stdin: string;
  stdout: string;
  stderr: string;
}

type ProcessIds = { container_id: string; exec_id?: string };

/** Where FIFOs that outlive the CLI live (ctr's --fifo-dir is /run/containerd/fifo). */
export function fifoRoot(): string {
  if (process.env.BERTH_FIFO_DIR) return path.resolve(process.env.BERTH_FIFO_DIR);
  return process.getuid?.() === 0 ? '/run/berth/fifo' : path.join(os.tmpdir(), 'berth-fifo');
}

const EMPTY: StdioPaths = { stdin: '', stdout: '', stderr: '' };

/** mkfifo for stdout (and stderr unless on a terminal), stdin when wanted, in `dir`. */
function makeFifos(dir: string, name: string, terminal: boolean, withStdin: boolean): StdioPaths {
  const paths = { ...EMPTY };
  const fifo = (kind: keyof StdioPaths) => {
    const p = path.join(dir, `${name}-${kind}`);
    execFileSync('mkfifo', ['-m', '0600', p]);
    paths[kind] = p;
  };
  fifo('stdout');
  if (!terminal) fifo('stderr');
  if (withStdin) fifo('stdin');
  return paths;
}

/**
 * Copies a FIFO to `out` until every writer has closed it. With `waitForWriter` the read-only
 * open waits (in libuv's thread pool, not the event loop) for the shim to open the FIFO for
 * writing, so EOF means the process's output is complete; without it (attach: the shim holds the
 * writing end already) the open does not block, and a FIFO nobody writes to reads as EOF.
 */
export function pipeFrom(file: string, out: NodeJS.WritableStream, waitForWriter = true): { done: Promise<void>; close: () => void } {
  let sock: net.Socket | undefined;
  let closed = false;
  // close() before the open returned: a writer of our own, so that the open does return
  let unblocker: number | undefined;
  const flags = fs.constants.O_RDONLY | (waitForWriter ? 0 : fs.constants.O_NONBLOCK);
  // A plain descriptor (fs.open), not a promise FileHandle: the socket owns it, and a FileHandle
  // nobody references is closed by garbage collection, under the socket, losing the output.
  const done = new Promise<void>((resolve) =>
    fs.open(file, flags, (err, fd) => {
      if (!err && !closed) {
        sock = new net.Socket({ fd, readable: true, writable: false });
        sock.pipe(out, { end: false });
        sock.on('close', () => resolve());
        sock.on('error', () => resolve());
        return;
      }
      if (!err) fs.closeSync(fd);
      if (unblocker !== undefined) fs.closeSync(unblocker);
      resolve();
    }),
  );
  return {
    done,
    close: () => {
      if (closed) return;
      closed = true;
      if (sock) return void sock.destroy();
      try {
        // O_RDWR never waits, and is a writer whether the open has reached the kernel yet or not
        unblocker = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
      } catch {
        // the FIFO is gone: the open has failed or will
      }
    },
  };
}

/** A writing end of a stdin FIFO that never blocks: O_RDWR opens at once whether or not the shim reads yet. */
function stdinSink(file: string): net.Socket {
  const fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
  const sink = new net.Socket({ fd, readable: false, writable: true });
  sink.on('error', () => undefined);
  return sink;
}

/** Raw mode on our terminal and the process's pty following our size; returns the undo. */
function followTerminal(client: Client, ids: ProcessIds, terminal: boolean): () => void {
  const raw = terminal && process.stdin.isTTY;
  if (raw) process.stdin.setRawMode(true);
  let resize: (() => void) | undefined;
  if (terminal && process.stdout.isTTY) {
    resize = () => void client.unary('tasks', 'ResizePty', { ...ids, width: process.stdout.columns, height: process.stdout.rows }).catch(() => undefined);
    resize();
    process.stdout.on('resize', resize);
  }
  return () => {
    if (resize) process.stdout.off('resize', resize);
    if (raw) process.stdin.setRawMode(false);
    process.stdin.unpipe();
    process.stdin.pause();
  };
}

/** Bounded wait for the relays' EOF (the shim closes its ends once the process is gone). */
async function drain(relays: Array<ReturnType<typeof pipeFrom>>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([Promise.all(relays.map((r) => r.done)), new Promise((r) => (timer = setTimeout(r, ms)))]);
  clearTimeout(timer);
}

export class ClientStdio {
  readonly paths: StdioPaths;
  private readonly dir: string;
  private readonly relays: Array<ReturnType<typeof pipeFrom>> = [];
  private readonly sink: net.Socket | undefined;
  private readonly removeDir: () => void;
  private untty: (() => void) | undefined;

  /** FIFOs for a process `name`: stdout (and stderr unless on a terminal), stdin when wanted. */
  constructor(
    name: string,
    private readonly terminal: boolean,
    withStdin: boolean,
  ) {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-fifo-'));
    // also when the CLI exits early (process.exit on a signal)
    this.removeDir = () => fs.rmSync(this.dir, { recursive: true, force: true });
    process.once('exit', this.removeDir);
    this.paths = makeFifos(this.dir, name, terminal, withStdin);
    // Opened now, as ctr does: the shim's reading end is open (and reading) before any input arrives.
    if (this.paths.stdin) this.sink = stdinSink(this.paths.stdin);
    this.relays.push(pipeFrom(this.paths.stdout, process.stdout));
    if (this.paths.stderr) this.relays.push(pipeFrom(this.paths.stderr, process.stderr));
  }

  /** After Start: relays our stdin (raw on a terminal), closes the process's at EOF, follows resizes. */
  attach(client: Client, ids: ProcessIds): void {
    if (this.sink) {
      process.stdin.pipe(this.sink);
      // At our EOF: everything read is in the FIFO ('finish'); close our writing end (a shim that
      // holds no writer of its own sees EOF after the data) and then CloseIO (for one that does,
      // like containerd's runc shim), as ctr's stdinCloser does after its copy.
      const sink = this.sink;
      sink.once('finish', () => {
        sink.once('close', () => void client.unary('tasks', 'CloseIO', { ...ids, stdin: true }).catch(() => undefined));
        sink.destroy();
      });
    }
    this.untty = followTerminal(client, ids, this.terminal);
  }

  /** After the process exited: waits for its last output (bounded) and lets go of everything. */
  async finish(): Promise<void> {
    await drain(this.relays, 5000);
    this.close();
  }

  close(): void {
    for (const r of this.relays) r.close();
    this.sink?.destroy();
    (this.untty ?? (() => process.stdin.pause()))();
    process.off('exit', this.removeDir);
    this.removeDir();
  }
}

/**
 * FIFOs for a task started detached with a terminal, in a directory of their own under
 * fifoRoot() that outlives this CLI. Create the task between `new` and `created()`: the shim
 * opens stdout for writing during Create, which needs a reader, so one is held until then.
 * Nothing is relayed: output written while nobody is attached is the shim's to drop or keep.
 */
export class DetachedStdio {
  readonly paths: StdioPaths;
  readonly dir: string;
  private readonly held: number[] = [];

  constructor(namespace: string, id: string, terminal: boolean) {
    fs.mkdirSync(fifoRoot(), { recursive: true, mode: 0o700 });
    this.dir = fs.mkdtempSync(path.join(fifoRoot(), `${namespace}-${id}-`));
    try {
      this.paths = makeFifos(this.dir, id, terminal, true);
      for (const p of [this.paths.stdout, this.paths.stderr]) if (p) this.held.push(fs.openSync(p, fs.constants.O_RDWR | fs.constants.O_NONBLOCK));
    } catch (err) {
      this.remove();
      throw err;
    }
  }

  /** The task exists (the shim has opened its ends): let go of ours. */
  created(): void {
    for (const fd of this.held.splice(0)) fs.closeSync(fd);
  }

  /** Creating the task failed: nothing will attach, remove the FIFOs. */
  remove(): void {
    this.created();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * Removes the FIFO directory of a task started by DetachedStdio (from the paths Tasks.Get
 * reports), once berth deletes the task; paths anywhere else belong to someone else.
 */
export function removeTaskFifos(p: Partial<StdioPaths> | undefined): void {
  const root = fifoRoot();
  for (const file of [p?.stdin, p?.stdout, p?.stderr]) {
    if (!file) continue;
    const dir = path.dirname(path.resolve(file));
    if (path.dirname(dir) === root) fs.rmSync(dir, { recursive: true, force: true });
  }
}

const CTRL_P = 0x10;
const CTRL_Q = 0x11;

/** `ctr tasks attach`: our stdio relayed to a running process's existing FIFOs. */
export class AttachedStdio {
  private readonly relays: Array<ReturnType<typeof pipeFrom>> = [];
  private sink: net.Socket | undefined;
  private untty: (() => void) | undefined;
  /** Resolves when the operator detaches (Ctrl-P Ctrl-Q on a terminal). */
  readonly detached: Promise<void>;
  private detach!: () => void;

  constructor(
    id: string,
    private readonly paths: StdioPaths,
    private readonly terminal: boolean,
  ) {
    if (!paths.stdin && !paths.stdout && !paths.stderr) {
      throw new Error(`task ${id} has no stdio to attach to: it was started without FIFOs (start it with run -d -t)`);
    }
    for (const p of [paths.stdin, paths.stdout, paths.stderr]) {
      if (p && !fs.statSync(p, { throwIfNoEntry: false })?.isFIFO()) throw new Error(`task ${id}: its stdio FIFO ${p} is gone`);
    }
    this.detached = new Promise((resolve) => (this.detach = resolve));
    if (paths.stdout) this.relays.push(pipeFrom(paths.stdout, process.stdout, false));
    if (paths.stderr && paths.stderr !== paths.stdout) this.relays.push(pipeFrom(paths.stderr, process.stderr, false));
  }

  /** Relays our stdin (raw on a terminal, Ctrl-P Ctrl-Q detaching) and follows resizes. */
  attach(client: Client, ids: ProcessIds): void {
    if (this.paths.stdin) {
      const sink = (this.sink = stdinSink(this.paths.stdin));
      let heldCtrlP = false;
      process.stdin.on('data', (chunk: Buffer) => {
        if (!this.terminal) return void sink.write(chunk);
        const out: number[] = [];
        for (const b of chunk) {
          if (heldCtrlP) {
            heldCtrlP = false;
            if (b === CTRL_Q) {
              if (out.length) sink.write(Buffer.from(out));
              return this.detach();
            }
            out.push(CTRL_P);
          }
          if (b === CTRL_P) heldCtrlP = true;
          else out.push(b);
        }
        if (out.length) sink.write(Buffer.from(out));
      });
      // Our stdin ending is not the process's: others may attach later, so no CloseIO.
      process.stdin.on('end', () => sink.end());
    }
    this.untty = followTerminal(client, ids, this.terminal);
  }

  /** The process exited: its last output (bounded), then let go. */
  async finish(): Promise<void> {
    await drain(this.relays, 2000);
    this.close();
  }

  close(): void {
    for (const r of this.relays) r.close();
    this.sink?.destroy();
    (this.untty ?? (() => process.stdin.pause()))();
    process.stdin.removeAllListeners('data');
  }
}

/** Whether to give the process a stdin: on a terminal, or when ours is a pipe or file. */
export const wantsStdin = (terminal: boolean) => terminal || !process.stdin.isTTY;

/**
 * Tasks.Create with the stdio its mode calls for, as ctr run does: in the foreground, FIFOs
 * relayed by this CLI (returned, to attach after Start); detached with a terminal, FIFOs left for
 * `tasks attach`; detached without one, no stdio at all (ctr's null IO).
 */
export async function createTask(
  client: Client,
  namespace: string,
  id: string,
  rootfs: unknown[],
  opts: { detach?: boolean; tty?: boolean },
): Promise<ClientStdio | undefined> {
  const terminal = !!opts.tty;
  const create = (io: StdioPaths) => client.unary('tasks', 'Create', { container_id: id, rootfs, terminal, ...io });
  if (!opts.detach) {
    const stdio = new ClientStdio(id, terminal, wantsStdin(terminal));
    try {
      await create(stdio.paths);
    } catch (err) {
      stdio.close();
      throw err;
    }
    return stdio;
  }
  if (!terminal) {
    await create(EMPTY);
    return undefined;
  }
  const fifos = new DetachedStdio(namespace, id, terminal);
  try {
    await create(fifos.paths);
  } catch (err) {
    fifos.remove();
    throw err;
  }
  fifos.created();
  return undefined;
}

/**
 * Tasks.Start after createTask. Detached (no stdio): returns undefined once it runs. In the
 * foreground: relays stdio until the process exits, deletes the task (which makes the shim close
 * its ends of the FIFOs, as ctr run does), and returns the exit status.
 */
export async function startTask(client: Client, id: string, stdio: ClientStdio | undefined): Promise<number | undefined> {
  const ids = { container_id: id };
  const abort = new AbortController();
  const waiting = stdio ? client.unary('tasks', 'Wait', ids, abort.signal) : undefined;
  waiting?.catch(() => undefined);
  try {
    await client.unary('tasks', 'Start', ids);
  } catch (err) {
    abort.abort(); // nothing to wait for: let the CLI exit with the error
    stdio?.close();
    throw err;
  }
  if (!stdio) return undefined;
  stdio.attach(client, ids);
  const status = await waiting!;
  await client.unary('tasks', 'Delete', ids);
  await stdio.finish();
  return Number(status.exit_status ?? 0);
}
