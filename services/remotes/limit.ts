// A concurrency limit for layer fetches (containerd's pull uses 3 by default).
import { canceled } from './transport';

export const DEFAULT_CONCURRENCY = 3;

/** Runs at most `concurrency` tasks at a time, in the order they were queued. */
export class Limiter {
  private running = 0;
  private readonly queue: Array<() => void> = [];

  constructor(readonly concurrency: number = DEFAULT_CONCURRENCY) {
    if (!Number.isInteger(concurrency) || concurrency < 1) throw new RangeError(`concurrency must be a positive integer, got ${concurrency}`);
  }

  /** Tasks running now. */
  get active(): number {
    return this.running;
  }

  /** Tasks waiting for a slot. */
  get pending(): number {
    return this.queue.length;
  }

  /** Runs `task` once a slot is free; a signal that fires while waiting rejects with Canceled. */
  async run<T>(task: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    await this.acquire(signal);
    try {
      return await task();
    } finally {
      this.release();
    }
  }

  private acquire(signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(canceled(signal, 'waiting for a transfer slot'));
    if (this.running < this.concurrency) {
      this.running++;
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      const grant = () => {
        signal?.removeEventListener('abort', onAbort);
        this.running++;
        resolve();
      };
      const onAbort = () => {
        const i = this.queue.indexOf(grant);
        if (i >= 0) this.queue.splice(i, 1);
        reject(canceled(signal, 'waiting for a transfer slot'));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.queue.push(grant);
    });
  }

  private release(): void {
    this.running--;
    const next = this.queue.shift();
    if (next) next();
  }
}

/**
 * Maps `items` through `fn` with at most `concurrency` in flight; results keep the input order.
 * The first failure rejects (tasks already started run to completion; no new ones start).
 */
export async function mapLimit<T, R>(
  items: readonly T[],
  concurrency: number,
  fn: (item: T, index: number) => Promise<R>,
  signal?: AbortSignal,
): Promise<R[]> {
  const limiter = new Limiter(concurrency);
  let failed = false;
  return Promise.all(
    items.map((item, i) =>
      limiter.run(async () => {
        if (failed) throw new Error('skipped after an earlier failure');
        try {
          return await fn(item, i);
        } catch (err) {
          failed = true;
          throw err;
        }
      }, signal),
    ),
  );
}
