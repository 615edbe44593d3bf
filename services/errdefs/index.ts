// The one place where error kinds live and where they meet gRPC status codes.
//
// Every layer (stores, snapshotters, runtime, services) throws BerthError with a kind; the
// gRPC adapter turns the kind into the status code containerd's clients key their behaviour on
// (pull treats AlreadyExists as success, rm treats NotFound as "gone", …). Messages end with the
// kind's text (": not found") because containerd's Go client expects that suffix style.
//
// Numeric codes are spelled out here so that lower layers need not load grpc-js.

export const GrpcCode = {
  OK: 0,
  Canceled: 1,
  Unknown: 2,
  InvalidArgument: 3,
  DeadlineExceeded: 4,
  NotFound: 5,
  AlreadyExists: 6,
  PermissionDenied: 7,
  ResourceExhausted: 8,
  FailedPrecondition: 9,
  Aborted: 10,
  OutOfRange: 11,
  Unimplemented: 12,
  Internal: 13,
  Unavailable: 14,
  DataLoss: 15,
  Unauthenticated: 16,
} as const;
export type GrpcCode = (typeof GrpcCode)[keyof typeof GrpcCode];

export type ErrorKind =
  | 'Unknown'
  | 'InvalidArgument'
  | 'NotFound'
  | 'AlreadyExists'
  | 'FailedPrecondition'
  | 'Unavailable'
  | 'NotImplemented'
  | 'Canceled'
  | 'DeadlineExceeded'
  | 'OutOfRange'
  | 'PermissionDenied'
  | 'ResourceExhausted'
  | 'Internal';

interface KindInfo {
  code: GrpcCode;
  /** containerd's errdefs text, appended to messages as ": <text>". */
  text: string;
}

const KINDS: Record<ErrorKind, KindInfo> = {
  Unknown: { code: GrpcCode.Unknown, text: 'unknown' },
  InvalidArgument: { code: GrpcCode.InvalidArgument, text: 'invalid argument' },
  NotFound: { code: GrpcCode.NotFound, text: 'not found' },
  AlreadyExists: { code: GrpcCode.AlreadyExists, text: 'already exists' },
  FailedPrecondition: { code: GrpcCode.FailedPrecondition, text: 'failed precondition' },
  Unavailable: { code: GrpcCode.Unavailable, text: 'unavailable' },
  NotImplemented: { code: GrpcCode.Unimplemented, text: 'not implemented' },
  Canceled: { code: GrpcCode.Canceled, text: 'context canceled' },
  DeadlineExceeded: { code: GrpcCode.DeadlineExceeded, text: 'context deadline exceeded' },
  OutOfRange: { code: GrpcCode.OutOfRange, text: 'out of range' },
  PermissionDenied: { code: GrpcCode.PermissionDenied, text: 'permission denied' },
  ResourceExhausted: { code: GrpcCode.ResourceExhausted, text: 'resource exhausted' },
  Internal: { code: GrpcCode.Internal, text: 'internal' },
};

export class BerthError extends Error {
  readonly kind: ErrorKind;

  /**
   * @param message what went wrong, without the kind suffix; the suffix is added here
   *   unless the message already ends with it.
   */
  constructor(kind: ErrorKind, message: string, options?: { cause?: unknown; verbatim?: boolean }) {
    const suffix = `: ${KINDS[kind].text}`;
    // `verbatim`: the few messages containerd sends without the suffix ("task x not found").
    super(options?.verbatim || message.endsWith(suffix) ? message : message + suffix, options);
    this.kind = kind;
    this.name = 'BerthError';
  }

  get code(): GrpcCode {
    return KINDS[this.kind].code;
  }
}

export const invalidArgument = (msg: string) => new BerthError('InvalidArgument', msg);
export const notFound = (msg: string) => new BerthError('NotFound', msg);
export const alreadyExists = (msg: string) => new BerthError('AlreadyExists', msg);
export const failedPrecondition = (msg: string) => new BerthError('FailedPrecondition', msg);
export const unavailable = (msg: string) => new BerthError('Unavailable', msg);
export const notImplemented = (msg: string) => new BerthError('NotImplemented', msg);
export const outOfRange = (msg: string) => new BerthError('OutOfRange', msg);

export function isKind(err: unknown, kind: ErrorKind): boolean {
  return err instanceof BerthError && err.kind === kind;
}

export function isNotFound(err: unknown): boolean {
  return isKind(err, 'NotFound');
}

export function isAlreadyExists(err: unknown): boolean {
  return isKind(err, 'AlreadyExists');
}

/** The status a gRPC (or ttrpc) reply carries for an error thrown anywhere below the services. */
export function toStatus(err: unknown): { code: GrpcCode; message: string } {
  if (err instanceof BerthError) return { code: err.code, message: err.message };
  // An error that already carries a gRPC code (a client call forwarded through us) keeps it.
  const e = err as { code?: unknown; details?: unknown; message?: unknown };
  if (typeof e?.code === 'number' && e.code > 0 && e.code <= 16) {
    return { code: e.code as GrpcCode, message: String(e.details ?? e.message ?? '') };
  }
  const message = err instanceof Error ? err.message : String(err);
  return { code: GrpcCode.Unknown, message };
}

/** The domain kind for a gRPC code, for clients of other daemons (shims, registries). */
export function kindFromCode(code: number): ErrorKind {
  for (const [kind, info] of Object.entries(KINDS) as [ErrorKind, KindInfo][]) {
    if (info.code === code) return kind;
  }
  return 'Unknown';
}
