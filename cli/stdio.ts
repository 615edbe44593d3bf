// Client-side stdio for tasks and exec processes, as containerd's clients do it: FIFOs made by
// the client in a private directory, their paths given to the daemon, the shim opening the
// other ends; stdout/stderr copied until the shim closes them, stdin relayed and closed at EOF.
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

/**
 * Copies a FIFO to `out` until the shim closes its end. The read-only open waits (in libuv's
 * thread pool, not the event loop) for the shim to open the FIFO for writing, so EOF means the
 * process's output is complete.
 */
function pipeFrom(file: string, out: NodeJS.WritableStream): { done: Promise<void>; close: () => void } {
  let sock: net.Socket | undefined;
  let closed = false;
  const done = fs.promises.open(file, fs.constants.O_RDONLY).then(
    (fh) =>
      new Promise<void>((resolve) => {
        if (closed) {
          void fh.close();
          return resolve();
        }
        sock = new net.Socket({ fd: fh.fd, readable: true, writable: false });
        sock.pipe(out, { end: false });
        sock.on('close', () => resolve());
        sock.on('error', () => resolve());
      }),
  );
  return {
    done,
    close: () => {
      closed = true;
      sock?.destroy();
    },
  };
}

export class ClientStdio {
  readonly paths: StdioPaths = { stdin: '', stdout: '', stderr: '' };
  private readonly dir: string;
  private readonly relays: Array<ReturnType<typeof pipeFrom>> = [];

  /** FIFOs for a process `name`: stdout (and stderr unless on a terminal), stdin when wanted. */
  constructor(
    name: string,
    private readonly terminal: boolean,
    withStdin: boolean,
  ) {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-fifo-'));
    const fifo = (kind: keyof StdioPaths) => {
      const p = path.join(this.dir, `${name}-${kind}`);
      execFileSync('mkfifo', ['-m', '0600', p]);
      this.paths[kind] = p;
    };
    fifo('stdout');
    this.relays.push(pipeFrom(this.paths.stdout, process.stdout));
    if (!terminal) {
      fifo('stderr');
      this.relays.push(pipeFrom(this.paths.stderr, process.stderr));
    }
    if (withStdin) fifo('stdin');
  }

  /** After Start: relays our stdin (raw on a terminal), closes the process's at EOF, follows resizes. */
  attach(client: Client, ids: { container_id: string; exec_id?: string }): void {
    if (this.paths.stdin) {
      const fd = fs.openSync(this.paths.stdin, fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
      const sink = new net.Socket({ fd, readable: false, writable: true });
      if (this.terminal && process.stdin.isTTY) process.stdin.setRawMode(true);
      process.stdin.pipe(sink);
      process.stdin.on('end', () => void client.unary('tasks', 'CloseIO', { ...ids, stdin: true }).catch(() => undefined));
    }
    if (this.terminal && process.stdout.isTTY) {
      const resize = () => void client.unary('tasks', 'ResizePty', { ...ids, width: process.stdout.columns, height: process.stdout.rows }).catch(() => undefined);
      resize();
      process.stdout.on('resize', resize);
    }
  }

  /** After the process exited: waits for its last output (bounded) and lets go of everything. */
  async finish(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(this.relays.map((r) => r.done)), new Promise((r) => (timer = setTimeout(r, 5000)))]);
    clearTimeout(timer);
    this.close();
  }

  close(): void {
    for (const r of this.relays) r.close();
    if (this.terminal && process.stdin.isTTY) process.stdin.setRawMode(false);
    process.stdin.unpipe();
    process.stdin.pause();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Whether to give the process a stdin: on a terminal, or when ours is a pipe or file. */
export const wantsStdin = (terminal: boolean) => terminal || !process.stdin.isTTY;
