// Reading and writing cgroup files, with errors that name the cgroup, the file, the value and
// the errno: `cgroup /berth/x: write "33554432" to /sys/fs/cgroup/memory/berth/x/memory.limit_in_bytes:
// EBUSY (Device or resource busy)`.
import { constants as fsc, promises as fsp } from 'fs';
import * as path from 'path';
import { setTimeout as delay } from 'timers/promises';
import { BerthError } from '../../services/errdefs';
import { SyscallError, errnoOf, isErrno } from '../native/errno';

/** Wraps a filesystem error so the message says which cgroup, which file and what value. */
export function fileError(cgroup: string, op: string, file: string, err: unknown, value?: string): Error {
  const errno = errnoOf(err);
  if (errno === undefined) return err instanceof Error ? err : new Error(String(err));
  const what = value === undefined ? `${op} ${file}` : `${op} ${JSON.stringify(value)} to ${file}`;
  const wrapped = new SyscallError(op, errno, `cgroup ${cgroup}: ${what}`, file);
  (wrapped as { cause?: unknown }).cause = err;
  return wrapped;
}

/** Writes one value to a cgroup file (O_WRONLY: never creating it, fine for write-only files); retried on EINTR. */
export async function writeValue(cgroup: string, file: string, value: string | number): Promise<void> {
  const data = String(value);
  for (;;) {
    try {
      await fsp.writeFile(file, data, { flag: fsc.O_WRONLY });
      return;
    } catch (err) {
      if (isErrno(err, 'EINTR')) continue;
      throw fileError(cgroup, 'write', file, err, data);
    }
  }
}

export async function readText(cgroup: string, file: string): Promise<string> {
  try {
    return await fsp.readFile(file, 'utf8');
  } catch (err) {
    throw fileError(cgroup, 'read', file, err);
  }
}

/** The file's text, or undefined when it does not exist (a controller that is not there). */
export async function readOptional(file: string): Promise<string | undefined> {
  try {
    return await fsp.readFile(file, 'utf8');
  } catch (err) {
    if (isErrno(err, 'ENOENT') || isErrno(err, 'ENODEV') || isErrno(err, 'EOPNOTSUPP')) return undefined;
    throw err;
  }
}

export async function fileExists(file: string): Promise<boolean> {
  try {
    await fsp.access(file);
    return true;
  } catch {
    return false;
  }
}

/** A counter as a number; negative values (kernel quirks) read as 0; "max" as `max`. */
export function parseUint(text: string, max = 0): number {
  const s = text.trim();
  if (s === 'max') return max;
  const n = Number(s);
  if (!Number.isFinite(n)) return 0;
  return n < 0 ? 0 : n;
}

/** "key value" lines (memory.stat, cpu.stat, memory.events …) into a map. */
export function parseKV(text: string | undefined): Map<string, number> {
  const out = new Map<string, number>();
  if (!text) return out;
  for (const line of text.split('\n')) {
    const sp = line.indexOf(' ');
    if (sp <= 0) continue;
    out.set(line.slice(0, sp), parseUint(line.slice(sp + 1)));
  }
  return out;
}

/** cgroup.procs / tasks / cgroup.threads */
export function parseIds(text: string): number[] {
  const out: number[] = [];
  for (const line of text.split('\n')) if (line) out.push(Number(line));
  return out;
}

/** mkdir -p, reporting the cgroup in errors. */
export async function mkdirp(cgroup: string, dir: string): Promise<void> {
  try {
    await fsp.mkdir(dir, { recursive: true, mode: 0o755 });
  } catch (err) {
    throw fileError(cgroup, 'mkdir', dir, err);
  }
}

/** Directories under `dir` (and `dir` itself), deepest first: the order rmdir needs. */
async function subtree(dir: string): Promise<string[]> {
  let entries: import('fs').Dirent[];
  try {
    entries = await fsp.readdir(dir, { withFileTypes: true });
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return [];
    throw err;
  }
  const out: string[] = [];
  for (const e of entries) if (e.isDirectory()) out.push(...(await subtree(path.join(dir, e.name))));
  out.push(dir);
  return out;
}

/**
 * Removes cgroup directories (one per v1 hierarchy, or the one v2 directory) with their child
 * cgroups. rmdir fails with EBUSY while tasks remain; processes that were just killed take a
 * moment to leave, so EBUSY is retried briefly (10 ms doubling, about 0.6 s in all, shared by
 * all the directories) before it is reported as FailedPrecondition.
 */
export async function removeCgroupDirs(cgroup: string, dirs: readonly string[]): Promise<void> {
  let pending = [...dirs];
  let wait = 10;
  for (let attempt = 0; ; attempt++) {
    const busy: Array<[string, unknown]> = [];
    for (const dir of pending) {
      try {
        for (const d of await subtree(dir)) {
          try {
            await fsp.rmdir(d);
          } catch (err) {
            if (!isErrno(err, 'ENOENT')) throw Object.assign(fileError(cgroup, 'rmdir', d, err), { busy: isErrno(err, 'EBUSY') });
          }
        }
      } catch (err) {
        if (!(err as { busy?: boolean }).busy) throw err;
        busy.push([dir, err]);
      }
    }
    if (busy.length === 0) return;
    if (attempt >= 6) {
      const e = busy[0][1] as Error;
      throw new BerthError('FailedPrecondition', `${e.message} (processes still in the cgroup?)`, { cause: e });
    }
    pending = busy.map(([dir]) => dir);
    await delay(wait);
    wait *= 2;
  }
}

/** Polls `probe` until it returns true; sleeps 1 ms growing to 10 ms; honours signal and timeout. */
export async function waitFor(
  what: string,
  probe: (attempt: number) => Promise<boolean>,
  opts: { signal?: AbortSignal; timeoutMs?: number } = {},
): Promise<void> {
  const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
  let wait = 1;
  for (let attempt = 0; ; attempt++) {
    opts.signal?.throwIfAborted();
    if (await probe(attempt)) return;
    if (Date.now() > deadline) throw new BerthError('DeadlineExceeded', `timed out waiting for ${what}`);
    await delay(wait, undefined, opts.signal ? { signal: opts.signal } : undefined);
    wait = Math.min(10, wait + 1);
  }
}

/** /proc/partitions as "major:minor" → /dev/<name>, for blkio entries. */
export async function blockDevices(): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const text = await readOptional('/proc/partitions');
  if (!text) return out;
  for (const line of text.split('\n').slice(2)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 4) continue;
    const key = `${f[0]}:${f[1]}`;
    if (!out.has(key)) out.set(key, '/dev/' + f[3]);
  }
  return out;
}

/** Huge page sizes the kernel supports, named as containerd names them ("2MB", "1GB"). */
export async function hugePageSizes(): Promise<string[]> {
  let names: string[];
  try {
    names = await fsp.readdir('/sys/kernel/mm/hugepages');
  } catch {
    return [];
  }
  const units = ['KB', 'MB', 'GB', 'TB'];
  const out: string[] = [];
  for (const name of names) {
    const m = /^hugepages-(\d+)kB$/.exec(name);
    if (!m) continue;
    let size = Number(m[1]);
    let u = 0;
    while (size >= 1024 && u < units.length - 1) {
      size /= 1024;
      u++;
    }
    out.push(`${size}${units[u]}`);
  }
  return out;
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return delay(ms, undefined, signal ? { signal } : undefined);
}

/**
 * Checks and normalizes a cgroup path ("/berth/default/id"): absolute, no "." or ".." parts,
 * not the root. systemd-style "slice:prefix:name" paths are not supported.
 */
export function normalizeCgroupPath(p: string): string {
  if (p.includes(':')) throw new BerthError('NotImplemented', `cgroup path ${JSON.stringify(p)}: systemd cgroup paths are not supported`);
  const parts = p.split('/').filter((s) => s !== '');
  if (parts.length === 0) throw new BerthError('InvalidArgument', `cgroup path ${JSON.stringify(p)}: the root cgroup cannot be managed`);
  if (parts.some((s) => s === '.' || s === '..')) throw new BerthError('InvalidArgument', `cgroup path ${JSON.stringify(p)}: "." and ".." are not allowed`);
  return '/' + parts.join('/');
}

/** Signals each pid; processes that are already gone are skipped. */
export function signalAll(pids: readonly number[], signal: NodeJS.Signals | number): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch (err) {
      if (!isErrno(err, 'ESRCH')) throw err;
    }
  }
}
