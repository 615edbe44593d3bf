// Which cgroup layout this machine has, and where the v1 hierarchies are mounted.
//
//   unified  /sys/fs/cgroup is cgroup2 (current distributions)
//   hybrid   v1 hierarchies under /sys/fs/cgroup (a tmpfs), plus cgroup2 at /sys/fs/cgroup/unified
//   legacy   v1 only
//
// Berth uses v1 in the hybrid layout, as runc and containerd do.
import * as fs from 'fs';

const CGROUP2_SUPER_MAGIC = 0x63677270;

export const DEFAULT_ROOT = '/sys/fs/cgroup';

let cachedMode: CgroupModeInfo | undefined;

export interface CgroupModeInfo {
  mode: 'legacy' | 'hybrid' | 'unified';
  /** where cgroup2 is mounted, if anywhere ("/sys/fs/cgroup" or "/sys/fs/cgroup/unified") */
  unifiedMount?: string;
}

function isCgroup2(dir: string): boolean {
  try {
    return fs.statfsSync(dir).type === CGROUP2_SUPER_MAGIC;
  } catch {
    return false;
  }
}

/** The machine's cgroup layout (checked once per process). */
export function cgroupMode(): CgroupModeInfo {
  if (!cachedMode) {
    if (isCgroup2(DEFAULT_ROOT)) cachedMode = { mode: 'unified', unifiedMount: DEFAULT_ROOT };
    else if (isCgroup2(DEFAULT_ROOT + '/unified')) cachedMode = { mode: 'hybrid', unifiedMount: DEFAULT_ROOT + '/unified' };
    else cachedMode = { mode: 'legacy' };
  }
  return cachedMode;
}

/** One mounted v1 hierarchy: its controllers ("cpu", "cpuacct", or "name=systemd") and mount point. */
export interface V1Hierarchy {
  controllers: string[];
  mountpoint: string;
}

let cachedHierarchies: V1Hierarchy[] | undefined;

/** Unescapes mountinfo's octal escapes ("\040" for a space). */
function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** Parses /proc/self/mountinfo text for v1 cgroup mounts (first mount of each hierarchy wins). */
export function parseV1Hierarchies(mountinfo: string): V1Hierarchy[] {
  const out: V1Hierarchy[] = [];
  const seen = new Set<string>();
  for (const line of mountinfo.split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const [fstype, , superOpts] = line.slice(sep + 3).split(' ');
    if (fstype !== 'cgroup') continue;
    const mountpoint = unescape(line.slice(0, sep).split(' ')[4]);
    const controllers = (superOpts ?? '')
      .split(',')
      .filter((o) => o !== 'rw' && o !== 'ro' && !['noprefix', 'clone_children', 'xattr', 'cpuset_v2_mode'].includes(o) && !o.startsWith('release_agent='));
    const key = controllers.slice().sort().join(',');
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({ controllers, mountpoint });
  }
  return out;
}

/** The v1 hierarchies of this machine (read once per process). */
export function v1Hierarchies(): V1Hierarchy[] {
  if (!cachedHierarchies) cachedHierarchies = parseV1Hierarchies(fs.readFileSync('/proc/self/mountinfo', 'utf8'));
  return cachedHierarchies;
}

/** The cgroup of each hierarchy a process belongs to: controller (or "" for v2) → path. */
export async function processCgroups(pid: number | 'self'): Promise<Map<string, string>> {
  const text = await fs.promises.readFile(`/proc/${pid}/cgroup`, 'utf8');
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^(\d+):([^:]*):(.*)$/.exec(line);
    if (!m) continue;
    if (m[2] === '') out.set('', m[3]);
    else for (const c of m[2].split(',')) out.set(c, m[3]);
  }
  return out;
}
