// Per-ref write locks. Only one writer may hold an ingest at a time; a second one is refused
// with Unavailable, naming how long the ref has been held (containerd's wording, which lets an
// operator tell a dead lock, long held, from contention, just taken).
//
// The table belongs to a store instance (no process-global state). Stores opened on the same root
// in one process should share one table: pass it in the store's options.
import { performance } from 'node:perf_hooks';
import { BerthError } from '../services/errdefs';

export interface LockHolder {
  /** Called by abort: stop writing, release the lock, keep nothing in memory. */
  discard(): Promise<void>;
}

interface Entry {
  since: Date;
  started: number; // performance.now() at acquisition
  holder?: LockHolder;
}

export class RefLocks {
  private readonly held = new Map<string, Entry>();

  /** Takes the lock on `ref` or throws Unavailable; returns the function that releases it. */
  tryLock(ref: string): () => void {
    const entry = this.held.get(ref);
    if (entry) throw lockedError(ref, entry);
    const mine: Entry = { since: new Date(), started: performance.now() };
    this.held.set(ref, mine);
    return () => {
      if (this.held.get(ref) === mine) this.held.delete(ref);
    };
  }

  isLocked(ref: string): boolean {
    return this.held.has(ref);
  }

  /** Records who holds the lock, so abort can reach an open writer. */
  setHolder(ref: string, holder: LockHolder): void {
    const entry = this.held.get(ref);
    if (entry) entry.holder = holder;
  }

  holder(ref: string): LockHolder | undefined {
    return this.held.get(ref)?.holder;
  }

  /** The Unavailable error a writer on `ref` would get now, if it is locked. */
  lockedError(ref: string): BerthError | undefined {
    const entry = this.held.get(ref);
    return entry ? lockedError(ref, entry) : undefined;
  }
}

function lockedError(ref: string, entry: Entry): BerthError {
  const ns = Math.round((performance.now() - entry.started) * 1e6);
  return new BerthError(
    'Unavailable',
    `ref ${ref} locked for ${formatDuration(ns)} (since ${entry.since.toISOString()})`,
  );
}

/** Go's time.Duration.String: "1.5s", "2m3.25s", "1h0m0s", "12.345ms", "800µs", "0s". */
export function formatDuration(ns: number): string {
  ns = Math.trunc(ns);
  if (ns === 0) return '0s';
  const sign = ns < 0 ? '-' : '';
  let n = Math.abs(ns);
  if (n < 1e9) {
    const [unit, scale] = n < 1e3 ? ['ns', 1] : n < 1e6 ? ['µs', 1e3] : ['ms', 1e6];
    return sign + fraction(n, scale) + unit;
  }
  const h = Math.floor(n / 3.6e12);
  n -= h * 3.6e12;
  const m = Math.floor(n / 6e10);
  n -= m * 6e10;
  const s = fraction(n, 1e9) + 's';
  if (h > 0) return `${sign}${h}h${m}m${s}`;
  if (m > 0) return `${sign}${m}m${s}`;
  return sign + s;
}

/** n/scale with the fractional digits Go prints (trailing zeros dropped). */
function fraction(n: number, scale: number): string {
  const whole = Math.floor(n / scale);
  const rest = n - whole * scale;
  if (rest === 0) return String(whole);
  const digits = String(scale).length - 1;
  return `${whole}.${String(rest).padStart(digits, '0').replace(/0+$/, '')}`;
}
