// Platforms as containerd's platforms package treats them: parse `os/arch/variant` specifiers,
// normalise spellings (x86_64 → amd64, aarch64 → arm64, armhf → arm/v7, arm64/v8 → arm64), and
// match/order the platforms of an index against what this host can run.
import * as fs from 'node:fs';
import * as os from 'node:os';
import { BerthError } from '../errdefs';

/** An OCI platform, in the image spec's JSON shape (as found in indexes and configs). */
export interface Platform {
  architecture: string;
  os: string;
  'os.version'?: string;
  'os.features'?: string[];
  variant?: string;
}

/** Filters and orders platforms (containerd's MatchComparer). */
export interface PlatformMatcher {
  match(p: Platform): boolean;
  /** True when `a` is preferred over `b`. */
  less(a: Platform, b: Platform): boolean;
  /** For messages: what this matcher accepts. */
  readonly description: string;
}

const KNOWN_OS = new Set([
  'aix', 'android', 'darwin', 'dragonfly', 'freebsd', 'hurd', 'illumos', 'js', 'linux', 'nacl', 'netbsd', 'openbsd',
  'plan9', 'solaris', 'windows', 'zos',
]);
const KNOWN_ARCH = new Set([
  '386', 'amd64', 'amd64p32', 'arm', 'armbe', 'arm64', 'arm64be', 'ppc64', 'ppc64le', 'mips', 'mipsle', 'mips64',
  'mips64le', 'mips64p32', 'mips64p32le', 'ppc', 'riscv', 'riscv64', 's390', 's390x', 'sparc', 'sparc64', 'wasm',
  'loong64',
]);
const SPECIFIER_COMPONENT_RE = /^[A-Za-z0-9_-]+$/;

/** Go's GOOS for this process. */
function hostOS(): string {
  switch (process.platform) {
    case 'win32':
      return 'windows';
    case 'sunos':
      return 'solaris';
    default:
      return process.platform;
  }
}

/** Go's GOARCH for this process. */
function hostArch(): string {
  switch (process.arch) {
    case 'x64':
      return 'amd64';
    case 'ia32':
      return '386';
    case 'ppc64':
      return os.endianness() === 'LE' ? 'ppc64le' : 'ppc64';
    case 'mipsel':
      return 'mipsle';
    default:
      return process.arch;
  }
}

let cachedVariant: string | undefined;

/** The ARM variant of this CPU (`v7`, `v6`, `v8`), as containerd's cpuVariant reads it. */
export function cpuVariant(): string {
  if (cachedVariant !== undefined) return cachedVariant;
  let variant = '';
  const arch = hostArch();
  if (arch === 'arm' || arch === 'arm64') {
    try {
      const info = fs.readFileSync('/proc/cpuinfo', 'utf8');
      const m = /^Cpu architecture\s*:\s*(.+)$/im.exec(info);
      if (m) {
        const v = m[1]!.trim();
        // containerd: "AArch64" and 8 both mean v8; 7 means v7 (unless the model says v6).
        if (v === '8' || v.toLowerCase() === 'aarch64') variant = 'v8';
        else if (v === '7') variant = /^model name\s*:.*\(v6l\)/im.test(info) ? 'v6' : 'v7';
        else if (v === '6' || v === '5' || v === '5TE' || v === '5TEJ') variant = `v${v[0]}`;
        else variant = `v${v}`;
      }
    } catch {
      // not Linux: fall back to what Node was built for
    }
    if (variant === '') {
      const armVersion = (process.config.variables as Record<string, unknown>)['arm_version'];
      variant = arch === 'arm64' ? 'v8' : armVersion !== undefined ? `v${String(armVersion)}` : 'v7';
    }
  }
  cachedVariant = variant;
  return variant;
}

export function normalizeOS(o: string): string {
  if (o === '') return hostOS();
  const l = o.toLowerCase();
  return l === 'macos' ? 'darwin' : l;
}

/** containerd 1.6's normalizeArch. */
export function normalizeArch(arch: string, variant: string): [string, string] {
  let a = arch.toLowerCase();
  let v = variant.toLowerCase();
  switch (a) {
    case 'i386':
      a = '386';
      v = '';
      break;
    case 'x86_64':
    case 'x86-64':
      a = 'amd64';
      v = '';
      break;
    case 'aarch64':
    case 'arm64':
      a = 'arm64';
      if (v === '8' || v === 'v8') v = '';
      break;
    case 'armhf':
      a = 'arm';
      v = 'v7';
      break;
    case 'armel':
      a = 'arm';
      v = 'v6';
      break;
    case 'arm':
      if (v === '' || v === '7') v = 'v7';
      else if (v === '5' || v === '6' || v === '8') v = `v${v}`;
      break;
  }
  return [a, v];
}

function make(osName: string, architecture: string, variant: string, from?: Platform): Platform {
  const p: Platform = { architecture, os: osName };
  if (variant !== '') p.variant = variant;
  if (from?.['os.version'] !== undefined && from['os.version'] !== '') p['os.version'] = from['os.version'];
  if (from?.['os.features'] !== undefined && from['os.features'].length > 0) p['os.features'] = [...from['os.features']];
  return p;
}

/** The canonical spelling of a platform (arm64/v8 → arm64, arm → arm/v7, …). */
export function normalizePlatform(p: Platform): Platform {
  const [a, v] = normalizeArch(p.architecture ?? '', p.variant ?? '');
  return make(normalizeOS(p.os ?? ''), a, v, p);
}

/**
 * Parses `linux`, `amd64`, `linux/amd64`, `linux/arm/v7`, `linux/arm64/v8` as containerd's
 * platforms.Parse does. Throws InvalidArgument.
 */
export function parsePlatform(specifier: string): Platform {
  if (specifier.includes('*')) {
    throw new BerthError('InvalidArgument', `${JSON.stringify(specifier)}: wildcards not yet supported`);
  }
  const parts = specifier.split('/');
  for (const part of parts) {
    if (!SPECIFIER_COMPONENT_RE.test(part)) {
      throw new BerthError(
        'InvalidArgument',
        `${JSON.stringify(part)} is an invalid component of ${JSON.stringify(specifier)}: platform specifier component must match "^[A-Za-z0-9_-]+$"`,
      );
    }
  }
  switch (parts.length) {
    case 1: {
      const o = normalizeOS(parts[0]!);
      if (KNOWN_OS.has(o)) {
        const arch = hostArch();
        const variant = arch === 'arm' && cpuVariant() !== 'v7' ? cpuVariant() : '';
        return make(o, arch, variant);
      }
      let [a, v] = normalizeArch(parts[0]!, '');
      if (a === 'arm' && v === 'v7') v = '';
      if (KNOWN_ARCH.has(a)) return make(hostOS(), a, v);
      throw new BerthError('InvalidArgument', `${JSON.stringify(specifier)}: unknown operating system or architecture`);
    }
    case 2: {
      let [a, v] = normalizeArch(parts[1]!, '');
      if (a === 'arm' && v === 'v7') v = '';
      return make(normalizeOS(parts[0]!), a, v);
    }
    case 3: {
      let [a, v] = normalizeArch(parts[1]!, parts[2]!);
      if (a === 'arm64' && v === '') v = 'v8';
      return make(normalizeOS(parts[0]!), a, v);
    }
    default:
      throw new BerthError('InvalidArgument', `${JSON.stringify(specifier)}: cannot parse platform specifier`);
  }
}

/** `os/arch[/variant]`, or `unknown` without an OS (containerd's platforms.Format). */
export function formatPlatform(p: Platform): string {
  if (!p.os) return 'unknown';
  return [p.os, p.architecture, p.variant].filter((x) => x !== undefined && x !== '').join('/');
}

let cachedHost: Platform | undefined;

/** This host's platform (containerd's DefaultSpec): Node's os/arch and, on ARM, the CPU variant. */
export function hostPlatform(): Platform {
  if (!cachedHost) {
    const arch = hostArch();
    cachedHost = make(hostOS(), arch, arch === 'arm' || arch === 'arm64' ? cpuVariant() : '');
  }
  return { ...cachedHost };
}

function sameNormalized(a: Platform, b: Platform): boolean {
  return a.os === b.os && a.architecture === b.architecture && (a.variant ?? '') === (b.variant ?? '');
}

/** The platforms a host of `p` can also run, best first (containerd 1.6's platformVector). */
export function compatiblePlatforms(p: Platform): Platform[] {
  const vector: Platform[] = [p];
  switch (p.architecture) {
    case 'amd64':
      vector.push(make(p.os, '386', p.variant ?? '', p));
      break;
    case 'arm': {
      let n = Number.parseInt((p.variant ?? '').replace(/^v/, ''), 10);
      if (Number.isInteger(n) && n > 5) {
        for (n--; n >= 5; n--) vector.push(make(p.os, 'arm', `v${n}`, p));
      }
      break;
    }
    case 'arm64': {
      const variant = p.variant ?? 'v8';
      vector.push(...compatiblePlatforms(make(p.os, 'arm', variant, p)));
      break;
    }
  }
  return vector;
}

/** Matches any of `platforms`, preferring earlier ones (containerd's platforms.Ordered). */
export function orderedPlatforms(platforms: Platform[]): PlatformMatcher {
  const wanted = platforms.map(normalizePlatform);
  const rank = (p: Platform): number => {
    const n = normalizePlatform(p);
    const i = wanted.findIndex((w) => sameNormalized(w, n));
    return i < 0 ? Number.MAX_SAFE_INTEGER : i;
  };
  return {
    description: wanted.map(formatPlatform).join(', '),
    match: (p) => rank(p) !== Number.MAX_SAFE_INTEGER,
    less: (a, b) => rank(a) < rank(b),
  };
}

/** `p` and what it can run as a fallback (containerd's platforms.Only). */
export function onlyPlatform(p: Platform): PlatformMatcher {
  const m = orderedPlatforms(compatiblePlatforms(normalizePlatform(p)));
  return { ...m, description: formatPlatform(normalizePlatform(p)) };
}

/** Exactly `p` (containerd's platforms.OnlyStrict). */
export function onlyStrict(p: Platform): PlatformMatcher {
  return orderedPlatforms([p]);
}

/** Every platform ("all platforms"): nothing is filtered, index order is kept. */
export const allPlatforms: PlatformMatcher = {
  description: 'all platforms',
  match: () => true,
  less: () => false,
};

/** The default: this host and what it can run (containerd's platforms.Default). */
export function defaultPlatformMatcher(): PlatformMatcher {
  return onlyPlatform(hostPlatform());
}

/**
 * A matcher from a loose description: undefined → host default; `'all'` → every platform;
 * a specifier string or Platform → that platform (with fallbacks); an array → any of them, in order.
 */
export function platformMatcher(spec?: string | Platform | Array<string | Platform> | PlatformMatcher): PlatformMatcher {
  if (spec === undefined) return defaultPlatformMatcher();
  if (spec === 'all') return allPlatforms;
  if (typeof spec === 'string') return onlyPlatform(parsePlatform(spec));
  if (Array.isArray(spec)) {
    const ps = spec.map((s) => (typeof s === 'string' ? parsePlatform(s) : s));
    return orderedPlatforms(ps.flatMap((p) => compatiblePlatforms(normalizePlatform(p))));
  }
  if ('match' in spec && typeof spec.match === 'function') return spec;
  return onlyPlatform(spec as Platform);
}
