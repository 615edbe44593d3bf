// The store's error messages, in one place, worded as containerd words them so that clients
// matching on text (and humans comparing logs) see the same thing. BerthError appends the kind's
// suffix (": not found", …) itself.
import { BerthError } from '../services/errdefs';
import type { Digest } from './digest';

export const blobNotFound = (d: Digest) => new BerthError('NotFound', `content digest ${d}`);

export const blobExists = (d: Digest) => new BerthError('AlreadyExists', `content ${d}`);

export const ingestNotFound = (ref: string) => new BerthError('NotFound', `ingest ref ${JSON.stringify(ref)}`);

export const sizeMismatch = (ref: string, actual: number, expected: number) =>
  new BerthError('FailedPrecondition', `${JSON.stringify(ref)} failed size validation: ${actual} != ${expected}`);

export const digestMismatch = (actual: Digest, expected: Digest) =>
  new BerthError('FailedPrecondition', `unexpected commit digest ${actual}, expected ${expected}`);

export const wrongOffset = (requested: number, current: number) =>
  new BerthError('OutOfRange', `write @${requested} must occur at current offset ${current}`);

export const readPastEnd = (size: number) => new BerthError('OutOfRange', `read past object length ${size} bytes`);

export const writerClosed = (ref: string, why: 'closed' | 'committed' | 'aborted') =>
  new BerthError('FailedPrecondition', `writer for ref ${JSON.stringify(ref)} is ${why}`);

export function errnoCode(err: unknown): string | undefined {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

export const isENOENT = (err: unknown) => errnoCode(err) === 'ENOENT';

/**
 * A file-system failure while writing an ingest. A full disk or quota is ResourceExhausted so the
 * client sees a meaningful status; anything else keeps its errno text under Unknown.
 */
export function ioError(what: string, err: unknown): BerthError {
  if (err instanceof BerthError) return err;
  const code = errnoCode(err);
  const text = err instanceof Error ? err.message : String(err);
  const kind = code === 'ENOSPC' || code === 'EDQUOT' ? 'ResourceExhausted' : 'Unknown';
  return new BerthError(kind, `${what}: ${text}`, { cause: err });
}

/** Throws Canceled if the signal has fired: the store's equivalent of a done context. */
export function throwIfAborted(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) throw new BerthError('Canceled', what, { cause: signal.reason });
}
