// The remotes' errors: BerthErrors with the registry host, the HTTP status, whether trying
// again may help, and (for an interrupted download) the offset to resume from.
import { BerthError, type ErrorKind } from '../errdefs';

export class RemoteError extends BerthError {
  constructor(
    kind: ErrorKind,
    message: string,
    readonly details: {
      /** The host contacted (host[:port]). */
      host?: string;
      /** HTTP status, when the registry answered. */
      status?: number;
      /** A later try may succeed (5xx, 429, connection failures). */
      transient?: boolean;
      cause?: unknown;
    } = {},
  ) {
    super(kind, message, details.cause !== undefined ? { cause: details.cause } : undefined);
    this.name = 'RemoteError';
  }

  get transient(): boolean {
    return this.details.transient === true;
  }
}

/**
 * A download cut off mid-body after retries ran out. Everything before `offset` was delivered
 * (and hashed, if the stream was hashing); `fetch(ref, desc, { offset, digester })` resumes.
 */
export class TransferInterruptedError extends RemoteError {
  constructor(
    message: string,
    readonly offset: number,
    details: { host?: string; cause?: unknown } = {},
  ) {
    super('Unavailable', message, { ...details, transient: true });
    this.name = 'TransferInterruptedError';
  }
}

export interface RegistryErrorEntry {
  code?: string;
  message?: string;
  detail?: unknown;
}

/** The `errors` of a distribution error body (`{"errors":[{"code","message","detail"}]}`). */
export function parseRegistryErrors(body: Buffer | undefined): RegistryErrorEntry[] {
  if (!body || body.length === 0) return [];
  try {
    const v = JSON.parse(body.toString('utf8')) as { errors?: unknown };
    if (Array.isArray(v.errors)) return v.errors.filter((e): e is RegistryErrorEntry => e !== null && typeof e === 'object');
  } catch {
    // not JSON
  }
  return [];
}

/** `: manifest unknown (MANIFEST_UNKNOWN)` or a short text body, for messages. */
export function describeRegistryErrors(body: Buffer | undefined): string {
  const entries = parseRegistryErrors(body);
  if (entries.length > 0) {
    return entries
      .map((e) => `: ${e.message ?? e.code ?? 'error'}${e.code && e.message ? ` (${e.code})` : ''}`)
      .join('');
  }
  if (!body || body.length === 0) return '';
  const text = body.toString('utf8').replace(/\s+/g, ' ').trim();
  if (text === '' || text.startsWith('<')) return '';
  return `: ${text.length > 200 ? `${text.slice(0, 200)}…` : text}`;
}

/** The error kind for an HTTP status answered by a registry. */
export function kindForStatus(status: number, codes: string[] = []): ErrorKind {
  if (status === 400) {
    const integrity = ['DIGEST_INVALID', 'SIZE_INVALID', 'BLOB_UPLOAD_INVALID', 'MANIFEST_BLOB_UNKNOWN', 'MANIFEST_INVALID'];
    return codes.some((c) => integrity.includes(c)) ? 'FailedPrecondition' : 'InvalidArgument';
  }
  if (status === 401 || status === 403) return 'PermissionDenied';
  if (status === 404) return 'NotFound';
  if (status === 405 || status === 501) return 'NotImplemented';
  if (status === 409 || status === 412) return 'FailedPrecondition';
  if (status === 416) return 'OutOfRange';
  if (status === 429 || status >= 500) return 'Unavailable';
  return 'Unknown';
}
