// Capabilities: capget(2)/capset(2) with the version-3 structures, the bounding set and the
// ambient set through prctl(2), and the OCI `process.capabilities` sequence built from them.
//
// Capability sets belong to a thread: these calls change the calling thread only, and its
// children inherit them. Sets are bigint masks (bit n = capability n).
import * as fs from 'fs';
import { check, fn } from './libc';
import {
  CAPABILITIES,
  CAP_LAST_KNOWN,
  LINUX_CAPABILITY_VERSION_3,
  PR_CAPBSET_DROP,
  PR_CAPBSET_READ,
  PR_CAP_AMBIENT,
  PR_CAP_AMBIENT_CLEAR_ALL,
  PR_CAP_AMBIENT_IS_SET,
  PR_CAP_AMBIENT_LOWER,
  PR_CAP_AMBIENT_RAISE,
} from './constants';
import { prctl } from './proc';

export interface CapSets {
  effective: bigint;
  permitted: bigint;
  inheritable: bigint;
}

let capNames: string[] | undefined;

/** "CAP_SYS_ADMIN" for 21; "CAP_<n>" for numbers newer than this table. */
export function capName(cap: number): string {
  if (!capNames) {
    capNames = [];
    for (const [name, n] of Object.entries(CAPABILITIES)) capNames[n] = name;
  }
  return capNames[cap] ?? `CAP_${cap}`;
}

/** The number of a capability by name; "CAP_" may be omitted and case does not matter. */
export function capFromName(name: string): number | undefined {
  const upper = name.toUpperCase();
  return CAPABILITIES[upper.startsWith('CAP_') ? upper : 'CAP_' + upper];
}

let lastCapCache: number | undefined;

/** The highest capability the running kernel knows (/proc/sys/kernel/cap_last_cap). */
export function lastCap(): number {
  if (lastCapCache === undefined) {
    try {
      lastCapCache = parseInt(fs.readFileSync('/proc/sys/kernel/cap_last_cap', 'utf8'), 10);
    } catch {
      lastCapCache = CAP_LAST_KNOWN;
    }
  }
  return lastCapCache;
}

/** A mask from capability names; unknown names are returned separately (runc ignores them too). */
export function capMask(names: readonly string[] | undefined): { mask: bigint; unknown: string[] } {
  let mask = 0n;
  const unknown: string[] = [];
  for (const name of names ?? []) {
    const cap = capFromName(name);
    if (cap === undefined || cap > lastCap()) unknown.push(name);
    else mask |= 1n << BigInt(cap);
  }
  return { mask, unknown };
}

/** The capability names in a mask, in number order. */
export function capNamesOf(mask: bigint): string[] {
  const out: string[] = [];
  for (let cap = 0; cap <= 63; cap++) if (mask & (1n << BigInt(cap))) out.push(capName(cap));
  return out;
}

function header(pid: number): Buffer {
  const hdr = Buffer.alloc(8);
  hdr.writeUInt32LE(LINUX_CAPABILITY_VERSION_3, 0);
  hdr.writeInt32LE(pid, 4);
  return hdr;
}

/** capget(2) of a thread (0 = the calling thread). */
export function capget(pid = 0): CapSets {
  const data = Buffer.alloc(24);
  check(fn('int capget(void *, void *)')(header(pid), data), 'capget', () => `capget(${pid || 'self'})`);
  const word = (off: number) => BigInt(data.readUInt32LE(off)) | (BigInt(data.readUInt32LE(off + 12)) << 32n);
  return { effective: word(0), permitted: word(4), inheritable: word(8) };
}

/** capset(2) on the calling thread. */
export function capset(sets: CapSets): void {
  const data = Buffer.alloc(24);
  const lo = (v: bigint) => Number(v & 0xffffffffn);
  const hi = (v: bigint) => Number((v >> 32n) & 0xffffffffn);
  data.writeUInt32LE(lo(sets.effective), 0);
  data.writeUInt32LE(lo(sets.permitted), 4);
  data.writeUInt32LE(lo(sets.inheritable), 8);
  data.writeUInt32LE(hi(sets.effective), 12);
  data.writeUInt32LE(hi(sets.permitted), 16);
  data.writeUInt32LE(hi(sets.inheritable), 20);
  check(
    fn('int capset(void *, void *)')(header(0), data),
    'capset',
    () =>
      `capset(effective 0x${sets.effective.toString(16)}, permitted 0x${sets.permitted.toString(16)}, ` +
      `inheritable 0x${sets.inheritable.toString(16)})`,
  );
}

/** Whether a capability is in the calling thread's bounding set. */
export function capbsetRead(cap: number): boolean {
  return prctl(PR_CAPBSET_READ, cap) === 1;
}

/** Drop a capability from the calling thread's bounding set (needs CAP_SETPCAP). */
export function capbsetDrop(cap: number): void {
  prctl(PR_CAPBSET_DROP, cap);
}

export function ambientRaise(cap: number): void {
  prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap);
}

export function ambientLower(cap: number): void {
  prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_LOWER, cap);
}

export function ambientClearAll(): void {
  prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL);
}

export function ambientIsSet(cap: number): boolean {
  return prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, cap) === 1;
}

/** OCI `process.capabilities`. */
export interface CapabilitySpec {
  bounding?: string[];
  effective?: string[];
  permitted?: string[];
  inheritable?: string[];
  ambient?: string[];
}

/**
 * Applies OCI capabilities to the calling thread in runc's order: drop everything outside
 * `bounding` from the bounding set, capset() effective/permitted/inheritable, then raise the
 * ambient set. Needs CAP_SETPCAP in the effective set for the bounding step; when changing to a
 * non-root uid, call `setKeepCaps(true)` before setresuid() and this afterwards.
 * Returns the capability names this kernel does not know (they are skipped, as runc does).
 */
export function applyCapabilities(spec: CapabilitySpec): string[] {
  const bounding = capMask(spec.bounding);
  const effective = capMask(spec.effective);
  const permitted = capMask(spec.permitted);
  const inheritable = capMask(spec.inheritable);
  const ambient = capMask(spec.ambient);
  if (spec.bounding) {
    for (let cap = 0; cap <= lastCap(); cap++) {
      if (!(bounding.mask & (1n << BigInt(cap))) && capbsetRead(cap)) capbsetDrop(cap);
    }
  }
  capset({ effective: effective.mask, permitted: permitted.mask, inheritable: inheritable.mask });
  if (spec.ambient) {
    ambientClearAll();
    for (let cap = 0; cap <= lastCap(); cap++) if (ambient.mask & (1n << BigInt(cap))) ambientRaise(cap);
  }
  return [...new Set([...bounding.unknown, ...effective.unknown, ...permitted.unknown, ...inheritable.unknown, ...ambient.unknown])];
}
