// The workload's stdio as the caller gives it: fds it opened (a FIFO, a pipe, /dev/null, a file),
// paths to open here, or a terminal. Every fd handed to the workload is duplicated first (to 10 or
// above, close-on-exec; the child's dup2 onto 0–2 clears that) and its O_NONBLOCK cleared: Node
// sets it on its own stdio, and it belongs to the open file description, so the caller's fd sees
// the change too. The duplicates are closed once the workload has started.
import * as fs from 'fs';
import { BerthError } from '../../services/errdefs';
import { isErrno } from '../native/errno';
import { setNonblock } from '../native/fs';
import type { StdioPlan } from './messages';
import { closeQuietly } from './fsroot';
import { dupCloexec } from './sys';

export type StdioSource = number | string;

export interface StdioFds {
  stdin?: StdioSource;
  stdout?: StdioSource;
  stderr?: StdioSource;
}

/** fds or paths for 0–2 (a missing one is /dev/null), or `{ terminal: true }` for a pty. */
export type StdioOptions = StdioFds | { terminal: true };

export function wantsTerminal(opts: StdioOptions | undefined): boolean {
  return !!opts && (opts as { terminal?: unknown }).terminal === true;
}

const C = fs.constants;

function openPath(p: string, which: 0 | 1 | 2): number {
  let st: fs.Stats | undefined;
  try {
    st = fs.statSync(p);
  } catch (err) {
    if (!isErrno(err, 'ENOENT')) throw err;
  }
  if (which === 0) {
    if (!st) throw new BerthError('NotFound', `stdin ${p}: no such file`);
    return fs.openSync(p, C.O_RDONLY | (st.isFIFO() ? C.O_NONBLOCK : 0));
  }
  if (!st) return fs.openSync(p, C.O_WRONLY | C.O_CREAT | C.O_APPEND, 0o644);
  if (st.isFIFO()) {
    try {
      return fs.openSync(p, C.O_WRONLY | C.O_NONBLOCK);
    } catch (err) {
      if (isErrno(err, 'ENXIO')) throw new BerthError('FailedPrecondition', `${which === 1 ? 'stdout' : 'stderr'} ${p}: the FIFO has no reader`);
      throw err;
    }
  }
  return fs.openSync(p, C.O_WRONLY | C.O_APPEND);
}

/** The stdio plan for the worker and the fds to close after start (or on failure). */
export function prepareStdio(opts: StdioOptions | undefined, terminal: boolean): { plan: StdioPlan; owned: number[] } {
  if (terminal) {
    const o = (opts ?? {}) as StdioFds;
    if (!wantsTerminal(opts) && (o.stdin !== undefined || o.stdout !== undefined || o.stderr !== undefined)) {
      throw new BerthError('InvalidArgument', 'the process has a terminal: stdio is its pty (pass { terminal: true } and use the pty master)');
    }
    return { plan: { kind: 'terminal' }, owned: [] };
  }
  const o = (opts ?? {}) as StdioFds;
  const owned: number[] = [];
  try {
    const fds = ([o.stdin, o.stdout, o.stderr] as Array<StdioSource | undefined>).map((src, i) => {
      let opened: number | undefined;
      let fd: number;
      if (src === undefined) fd = opened = fs.openSync('/dev/null', C.O_RDWR);
      else if (typeof src === 'string') fd = opened = openPath(src, i as 0 | 1 | 2);
      else fd = src;
      try {
        const copy = dupCloexec(fd, 10);
        owned.push(copy);
        setNonblock(copy, false);
        return copy;
      } finally {
        closeQuietly(opened);
      }
    }) as [number, number, number];
    return { plan: { kind: 'fds', fds }, owned };
  } catch (err) {
    owned.forEach(closeQuietly);
    throw err;
  }
}
