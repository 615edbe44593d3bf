// Pid files of shims (<shim dir>/pid, <bundle>/init.pid) and whether what they name still runs.
// Only node:fs: the `delete` cleanup loads this on the path of every Tasks/Delete.
import * as fs from 'node:fs';

/** The pid in `file`, or 0 when the file is missing or empty. */
export function pidInFile(file: string): number {
  try {
    return parseInt(fs.readFileSync(file, 'utf8'), 10) || 0;
  } catch {
    return 0;
  }
}

/** Running: not gone, and not a zombie nobody has reaped yet (which kill -0 would still find). */
export function running(pid: number): boolean {
  if (pid <= 0) return false;
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^[ZX]/.test(stat.slice(stat.lastIndexOf(')') + 2));
  } catch {
    return false;
  }
}
