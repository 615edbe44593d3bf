// Init worker threads (worker.ts), started ahead of need. A container (or exec) takes one, the
// thread builds the container around itself, clones the workload and ends; the pool starts a
// replacement in the background. Idle threads are unref'd: they never keep the process alive.
//
// Cold start of a worker thread costs ~35 ms on the reference machine (a V8 isolate plus this
// module graph); a warm one takes a job in well under a millisecond.
import * as path from 'path';
import { Worker } from 'worker_threads';
import { BerthError } from '../../services/errdefs';
import type { WorkerJob, WorkerMessage } from './messages';
import type { ParkingInfo } from './setup';

export type { ParkingInfo };

/** A failure reported by (or about) an init worker thread. */
function workerError(m: Extract<WorkerMessage, { type: 'failed' }>): BerthError {
  const kind = (m.error.kind as ConstructorParameters<typeof BerthError>[0] | undefined) ?? 'Unknown';
  const err = new BerthError(kind, m.error.message);
  if (m.error.code) (err as { errnoCode?: string }).errnoCode = m.error.code;
  return err;
}

class Deferred<T> {
  readonly promise: Promise<T>;
  resolve!: (v: T) => void;
  reject!: (e: Error) => void;
  settled = false;
  constructor() {
    this.promise = new Promise<T>((res, rej) => {
      this.resolve = (v) => {
        this.settled = true;
        res(v);
      };
      this.reject = (e) => {
        this.settled = true;
        rej(e);
      };
    });
    this.promise.catch(() => undefined); // observed by whoever awaits it
  }
}

/** One init worker thread, ready for one job. */
export class InitWorker {
  readonly tid: number;
  /** started for this job (false: taken warm from the pool) */
  cold = false;
  private readonly parkingD = new Deferred<ParkingInfo>();
  private readonly spawnedD = new Deferred<number>();
  private readonly exitD = new Deferred<void>();

  private constructor(
    private readonly worker: Worker,
    tid: number,
  ) {
    this.tid = tid;
    worker.on('message', (m: WorkerMessage) => {
      switch (m.type) {
        case 'parking':
          this.parkingD.resolve({ master: m.master, peer: m.peer, deferred: m.deferred });
          break;
        case 'spawned':
          this.spawnedD.resolve(m.pid);
          break;
        case 'failed': {
          const err = workerError(m);
          this.parkingD.reject(err);
          this.spawnedD.reject(err);
          break;
        }
      }
    });
    const gone = (why: string) => {
      const err = new BerthError('Internal', `init worker thread ${tid}: ${why}`);
      if (!this.parkingD.settled) this.parkingD.reject(err);
      if (!this.spawnedD.settled) this.spawnedD.reject(err);
      this.exitD.resolve();
    };
    worker.on('error', (err) => gone(err.message));
    worker.on('exit', (code) => gone(`exited (${code})`));
  }

  /** Starts a worker thread and waits until it is ready. */
  static start(script: string): Promise<InitWorker> {
    return new Promise((resolve, reject) => {
      const w = new Worker(script, { trackUnmanagedFds: false });
      w.unref();
      const onError = (err: Error) => reject(err);
      const onExit = (code: number) => reject(new BerthError('Internal', `init worker thread exited (${code}) before it was ready`));
      w.once('error', onError);
      w.once('exit', onExit);
      w.once('message', (m: WorkerMessage) => {
        w.off('error', onError);
        w.off('exit', onExit);
        if (m.type !== 'ready') return reject(new BerthError('Internal', `init worker thread: unexpected first message ${m.type}`));
        resolve(new InitWorker(w, m.tid));
      });
    });
  }

  /** run() was called */
  hasJob = false;

  /** Hands the thread its job; it keeps the process alive until it is done. */
  run(job: WorkerJob): void {
    this.hasJob = true;
    this.worker.ref();
    this.worker.postMessage(job);
  }

  /** Resolves when the set-up is done and the workload is about to be cloned. */
  get parking(): Promise<ParkingInfo> {
    return this.parkingD.promise;
  }

  /** Resolves with the pid once the workload has executed its program (after start). */
  get spawned(): Promise<number> {
    return this.spawnedD.promise;
  }

  get failedOrSpawned(): boolean {
    return this.spawnedD.settled;
  }

  get exited(): Promise<void> {
    return this.exitD.promise;
  }

  async terminate(): Promise<void> {
    await this.worker.terminate().catch(() => undefined);
  }
}

/**
 * How long a warm thread refilled after a job (an exec, or a create that asked for it) waits for
 * the next one before it ends. A thread is a V8 isolate, ~9 MB; a shim whose one container runs
 * for days needs none. Probes that exec every few seconds keep it warm.
 * (BERTH_INIT_IDLE_MS; threads started by prewarm(), a spare's, wait without limit.)
 */
export const idleReleaseMs = (): number => Number(process.env.BERTH_INIT_IDLE_MS) || 30_000;

export interface PoolOptions {
  /** warm threads to keep (default 1; 0 disables warming: every container starts a cold thread) */
  size?: number;
  /** the worker script (default: worker.js beside this module) */
  script?: string;
}

export class InitWorkerPool {
  readonly size: number;
  private readonly script: string;
  private readonly idle: InitWorker[] = [];
  private readonly warming = new Set<Promise<void>>();
  private closed = false;

  constructor(opts: PoolOptions = {}) {
    this.size = opts.size ?? 1;
    this.script = opts.script ?? path.join(__dirname, 'worker.js');
  }

  /**
   * A ready worker: a warm one when there is one, else a cold start. The pool is not refilled
   * here (starting a worker costs CPU the create it serves would compete for): call refill()
   * once the create is done.
   */
  async acquire(opts: { warm?: boolean } = {}): Promise<InitWorker> {
    if (opts.warm !== false) {
      // one already booting is further along than a cold start would be
      if (this.idle.length === 0 && this.warming.size > 0) await Promise.race([...this.warming]);
      const warm = this.idle.shift();
      if (warm) return warm;
    }
    const w = await InitWorker.start(this.script);
    w.cold = true;
    return w;
  }

  /** Starts warm workers up to `size` and waits until they (and any already starting) are ready. */
  async prewarm(): Promise<void> {
    this.closed = false;
    this.fill(false);
    await Promise.all([...this.warming]);
  }

  /** Starts warm workers in the background up to `size`; each ends after idleReleaseMs() unused. */
  refill(): void {
    this.fill(true);
  }

  private fill(releaseWhenIdle: boolean): void {
    for (let i = this.idle.length + this.warming.size; i < this.size && !this.closed; i++) {
      const p: Promise<void> = this.warmOne(releaseWhenIdle)
        .catch(() => undefined)
        .finally(() => this.warming.delete(p));
      this.warming.add(p);
    }
  }

  private async warmOne(releaseWhenIdle: boolean): Promise<void> {
    const w = await InitWorker.start(this.script);
    if (this.closed) {
      await w.terminate();
      return;
    }
    this.idle.push(w);
    const unused = () => this.idle.indexOf(w);
    void w.exited.then(() => {
      if (unused() >= 0) this.idle.splice(unused(), 1);
    });
    if (releaseWhenIdle) {
      setTimeout(() => {
        if (unused() < 0) return; // taken
        this.idle.splice(unused(), 1);
        void w.terminate();
      }, idleReleaseMs()).unref();
    }
  }

  /** Terminates the idle workers and stops refilling; acquire() still works (cold), prewarm() reopens. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.warming]);
    const idle = this.idle.splice(0);
    await Promise.all(idle.map((w) => w.terminate()));
  }
}
