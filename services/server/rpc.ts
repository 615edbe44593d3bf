// What a service handler sees of a call, whatever the transport (gRPC now, ttrpc for shims):
// the decoded request, the namespace and lease headers, and an AbortSignal for cancellation.
import type { Logger } from 'pino';
import { BerthError } from '../errdefs';
import { validateIdentifier } from '../metadata/validate';
import type { Message } from '../../proto/codec';

export const NAMESPACE_HEADER = 'containerd-namespace';
export const NAMESPACE_HEADER_TTRPC = 'containerd-namespace-ttrpc';
export const LEASE_HEADER = 'containerd-lease';

export interface CallContext {
  /** The `containerd-namespace` header as sent, possibly absent. */
  readonly namespaceHeader: string | undefined;
  /** The `containerd-lease` header: what this call creates is attached to that lease. */
  readonly lease: string | undefined;
  /** Aborted when the client cancels or the deadline passes. */
  readonly signal: AbortSignal;
  readonly log: Logger;
}

/**
 * The namespace a call on namespaced objects works in, as containerd's NamespaceRequired
 * answers it: FailedPrecondition without one, InvalidArgument for a malformed name.
 */
export function requireNamespace(ctx: CallContext): string {
  const ns = ctx.namespaceHeader;
  if (!ns) throw new BerthError('FailedPrecondition', 'namespace is required');
  try {
    validateIdentifier(ns);
  } catch (err) {
    throw new BerthError('InvalidArgument', `namespace validation: ${(err as Error).message}`);
  }
  return ns;
}

/** Sends one message on a streaming reply; resolves when the transport can take more (back-pressure). */
export type Send = (message: Message) => Promise<void>;

/**
 * One method's handler. Unary: (request, ctx) → reply. Server stream: (request, ctx, send) → done.
 * Bidirectional: (requests as an async iterable, ctx, send) → done. Requests arrive decoded as
 * plain objects (proto/codec TO_OBJECT); the glue picks the calling convention from the method.
 */
export type Handler = (request: any, ctx: CallContext, send: Send) => Promise<Message | void>;

/** The implementation of one wire service: method name → handler. Methods left out answer
 * Unimplemented with a message naming them. */
export interface ServiceImplementation {
  /** Full protobuf name, e.g. containerd.services.version.v1.Version. */
  readonly name: string;
  readonly handlers: Partial<Record<string, Handler>>;
}
