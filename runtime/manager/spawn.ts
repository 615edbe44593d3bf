// Runs a shim's bootstrap commands (`start`, `delete`) for berthd. posix_spawn through koffi, not
// child_process: glibc clones with CLONE_VM|CLONE_VFORK, where libuv forks, copying the page
// tables of the whole daemon (a few milliseconds of the event loop on every task create, more as
// the heap grows). The child gets pipes for stdio, the given directory, a session of its own (the
// shim it leaves behind must outlive berthd) and no other descriptor of ours (closefrom(3)).
import * as fs from 'node:fs';
import * as net from 'node:net';
import { constants } from 'node:os';
import { posixSpawn, reapChild } from '../init/sys';
import { O_CLOEXEC } from '../native/constants';
import { check, fn } from '../native/libc';

export interface CommandResult {
  /** exit code, or undefined when killed by a signal */
  code: number | undefined;
  signal: string | undefined;
  stdout: Buffer;
  stderr: Buffer;
}

export interface CommandOptions {
  cwd: string;
  env: NodeJS.ProcessEnv;
  stdin?: Buffer;
  /** SIGKILL after this long (the result then reports the signal) */
  timeoutMs: number;
}

const CLD_EXITED = 1;
// waitid reports a child's exit through SIGCHLD's machinery; libuv reaps only children it spawned
const REAP_POLL_MS = 1;

function pipe(): [read: number, write: number] {
  const fds = Buffer.alloc(8);
  check(fn('int pipe2(void *, int)')(fds, O_CLOEXEC), 'pipe2');
  return [fds.readInt32LE(0), fds.readInt32LE(4)];
}

/** Collects a pipe's reading end until EOF. */
function drain(fd: number): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const sock = new net.Socket({ fd, readable: true, writable: false });
    sock.on('data', (c: Buffer) => chunks.push(c));
    sock.on('error', () => undefined);
    sock.on('close', () => resolve(Buffer.concat(chunks)));
  });
}

export async function runCommand(path: string, args: readonly string[], opts: CommandOptions): Promise<CommandResult> {
  const stdin = pipe();
  const stdout = pipe();
  const stderr = pipe();
  const childEnds = [stdin[0], stdout[1], stderr[1]];
  let pid: number;
  try {
    pid = posixSpawn({
      path,
      argv: [path, ...args],
      env: Object.entries(opts.env).flatMap(([k, v]) => (v === undefined ? [] : [`${k}=${v}`])),
      actions: [
        { op: 'dup2', fd: stdin[0], newfd: 0 },
        { op: 'dup2', fd: stdout[1], newfd: 1 },
        { op: 'dup2', fd: stderr[1], newfd: 2 },
        { op: 'chdir', path: opts.cwd },
        { op: 'closefrom', fd: 3 },
      ],
      setsid: true,
    });
  } catch (err) {
    for (const fd of [...stdin, ...stdout, ...stderr]) fs.closeSync(fd);
    throw err;
  }
  for (const fd of childEnds) fs.closeSync(fd);
  const output = Promise.all([drain(stdout[0]), drain(stderr[0])]);
  const input = new net.Socket({ fd: stdin[1], readable: false, writable: true });
  input.on('error', () => undefined); // a command that does not read its stdin
  input.end(opts.stdin ?? Buffer.alloc(0));

  const timer = setTimeout(() => {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }, opts.timeoutMs);
  try {
    const [out, err] = await output;
    for (;;) {
      const exit = reapChild(pid);
      if (exit) {
        const exited = exit.code === CLD_EXITED;
        const signal = exited ? undefined : (Object.entries(constants.signals).find(([, n]) => n === exit.status)?.[0] ?? `signal ${exit.status}`);
        return { code: exited ? exit.status : undefined, signal, stdout: out, stderr: err };
      }
      await new Promise((r) => setTimeout(r, REAP_POLL_MS));
    }
  } finally {
    clearTimeout(timer);
  }
}
