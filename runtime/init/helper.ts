// The caller's side of the namespace helper thread (helper-worker.ts): started on first use,
// unref'd while idle so that it never keeps the process alive, jobs run one at a time. Like a
// warm init worker it ends after idleReleaseMs() without a job (an isolate is ~9 MB); the next
// job starts it again.
import * as path from 'path';
import { Worker } from 'worker_threads';
import { BerthError } from '../../services/errdefs';
import type { FinishJob, HelperMessage } from './messages';
import { idleReleaseMs } from './pool';

export class NamespaceHelper {
  private worker?: Worker;
  private ready?: Promise<Worker>;
  private seq = 0;
  private readonly pending = new Map<number, { resolve: () => void; reject: (err: Error) => void }>();
  private idleTimer?: NodeJS.Timeout;

  constructor(private readonly script = path.join(__dirname, 'helper-worker.js')) {}

  private start(): Promise<Worker> {
    if (this.ready) return this.ready;
    const ready: Promise<Worker> = new Promise<Worker>((resolve, reject) => {
      const w = new Worker(this.script, { trackUnmanagedFds: false });
      w.unref();
      w.on('message', (m: HelperMessage) => {
        if (m.type === 'ready') {
          if (this.ready === ready) this.worker = w;
          resolve(w);
          return;
        }
        const p = this.pending.get(m.seq);
        if (!p) return;
        this.pending.delete(m.seq);
        if (this.pending.size === 0) {
          w.unref();
          clearTimeout(this.idleTimer);
          this.idleTimer = setTimeout(() => void this.close(), idleReleaseMs()).unref();
        }
        if (m.type === 'done') p.resolve();
        else p.reject(new BerthError((m.error.kind as never) ?? 'Unknown', m.error.message));
      });
      const fail = (err: Error) => {
        reject(err);
        if (this.ready !== ready) return; // closed or replaced: its end is no one's failure
        this.worker = undefined;
        this.ready = undefined;
        for (const p of this.pending.values()) p.reject(err);
        this.pending.clear();
      };
      w.on('error', fail);
      w.on('exit', (code) => fail(new BerthError('Internal', `the namespace helper thread exited (${code})`)));
    });
    this.ready = ready;
    return ready;
  }

  /** Starts the thread now instead of on the first job. */
  async prewarm(): Promise<void> {
    await this.start();
  }

  /** Sends a job; resolves when the helper has done it. */
  async finish(job: Omit<FinishJob, 'seq'>): Promise<void> {
    clearTimeout(this.idleTimer);
    const w = await this.start();
    const seq = ++this.seq;
    const done = new Promise<void>((resolve, reject) => this.pending.set(seq, { resolve, reject }));
    w.ref();
    w.postMessage({ ...job, seq });
    return done;
  }

  /** Stops the thread (the next job starts a new one). */
  async close(): Promise<void> {
    clearTimeout(this.idleTimer);
    const w = this.worker;
    this.worker = undefined;
    this.ready = undefined;
    const err = new BerthError('Unavailable', 'the namespace helper thread was stopped');
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    if (w) await w.terminate();
  }
}

let shared: NamespaceHelper | undefined;

/** The process's helper (created on first use). */
export function sharedNamespaceHelper(): NamespaceHelper {
  return (shared ??= new NamespaceHelper());
}
