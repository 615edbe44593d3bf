// grpc-js glue for the server: runs the transport-agnostic handlers for each method kind and
// turns thrown errors into status codes through the one error module.
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { Message } from '../../proto/codec';
export { serviceDefinition } from '../../proto/grpc';
import { BerthError, toStatus } from '../errdefs';
import { LEASE_HEADER, NAMESPACE_HEADER, type CallContext, type Handler, type ServiceImplementation } from './rpc';
import type { EventEmitter } from 'node:events';

function header(metadata: grpc.Metadata, key: string): string | undefined {
  const values = metadata.get(key);
  return values.length > 0 ? String(values[0]) : undefined;
}

type AnyCall =
  | grpc.ServerUnaryCall<Message, Message>
  | grpc.ServerWritableStream<Message, Message>
  | grpc.ServerDuplexStream<Message, Message>;

function callContext(call: AnyCall, log: Logger): { ctx: CallContext; done: () => void } {
  // The AbortController is made only for handlers that look at the signal (most never do);
  // a cancellation or deadline before that is kept and applied when it is made.
  let controller: AbortController | undefined;
  let reason: BerthError | undefined;
  const abort = (why: BerthError) => {
    reason ??= why;
    controller?.abort(reason);
  };
  const onCancel = () => abort(new BerthError('Canceled', 'call cancelled by the client'));
  (call as unknown as EventEmitter).on('cancelled', onCancel);
  const deadline = call.getDeadline();
  let timer: NodeJS.Timeout | undefined;
  if (deadline instanceof Date || (typeof deadline === 'number' && Number.isFinite(deadline))) {
    const ms = new Date(deadline).getTime() - Date.now();
    timer = setTimeout(() => abort(new BerthError('DeadlineExceeded', 'deadline exceeded')), Math.max(0, ms));
  }
  const ctx: CallContext = {
    namespaceHeader: header(call.metadata, NAMESPACE_HEADER),
    lease: header(call.metadata, LEASE_HEADER),
    get signal() {
      if (!controller) {
        controller = new AbortController();
        if (reason) controller.abort(reason);
      }
      return controller.signal;
    },
    log,
  };
  return {
    ctx,
    done: () => {
      if (timer) clearTimeout(timer);
      (call as unknown as EventEmitter).removeListener('cancelled', onCancel);
    },
  };
}

function grpcError(err: unknown, log: Logger, path: string): Partial<grpc.StatusObject> {
  const { code, message } = toStatus(err);
  if (code === grpc.status.UNKNOWN || code === grpc.status.INTERNAL) {
    log.error({ err, path }, 'call failed');
  } else {
    log.debug({ path, code, message }, 'call failed');
  }
  return { code, details: message };
}

/** Sends on a writable server stream, waiting for the transport to drain when its buffer is full. */
function sender(call: grpc.ServerWritableStream<Message, Message> | grpc.ServerDuplexStream<Message, Message>) {
  return (message: Message) =>
    new Promise<void>((resolve, reject) => {
      if (call.cancelled || call.destroyed) {
        reject(new BerthError('Canceled', 'call cancelled by the client'));
        return;
      }
      if (call.write(message)) resolve();
      else call.once('drain', () => resolve());
    });
}

/** Requests of a bidirectional call as an async iterator (grpc-js streams are Node Readables). */
async function* requests(call: grpc.ServerDuplexStream<Message, Message>): AsyncIterable<Message> {
  // Not the default iterator: it destroys the stream when reading ends, and a destroyed call
  // never sends its status, so the client would wait for ever after a half-close.
  for await (const message of call.iterator({ destroyOnReturn: false })) yield message as Message;
}

const noSend = async () => {
  throw new BerthError('Internal', 'a unary method cannot stream');
};

/** grpc-js handlers for a service implementation; methods without a handler answer Unimplemented. */
export function grpcImplementation(
  impl: ServiceImplementation,
  definition: grpc.ServiceDefinition,
  log: Logger,
): grpc.UntypedServiceImplementation {
  const out: grpc.UntypedServiceImplementation = {};
  const tracing = log.isLevelEnabled('trace');
  for (const [name, method] of Object.entries(definition)) {
    const handler = impl.handlers[name];
    const path = method.path;
    const missing = () =>
      new BerthError('NotImplemented', `${impl.name}/${name} is not implemented by berthd yet`);

    if (!method.requestStream && !method.responseStream) {
      out[name] = (call: grpc.ServerUnaryCall<Message, Message>, callback: grpc.sendUnaryData<Message>) => {
        const { ctx, done } = callContext(call, log);
        // per-call handler time at trace level: where a client's sequence spends berthd's time
        const started = tracing ? performance.now() : 0;
        const run = handler ? (handler as Handler)(call.request, ctx, noSend) as Promise<Message> : Promise.reject(missing());
        run.then(
          (res) => {
            done();
            if (tracing) log.trace({ path, ms: +(performance.now() - started).toFixed(2) }, 'call');
            callback(null, res);
          },
          (err) => {
            done();
            callback(grpcError(err, log, path));
          },
        );
      };
    } else if (!method.requestStream && method.responseStream) {
      out[name] = (call: grpc.ServerWritableStream<Message, Message>) => {
        const { ctx, done } = callContext(call, log);
        const run = handler
          ? handler(call.request, ctx, sender(call))
          : Promise.reject(missing());
        run.then(
          () => {
            done();
            call.end();
          },
          (err) => {
            done();
            if (!call.cancelled) call.emit('error', grpcError(err, log, path));
          },
        );
      };
    } else if (method.requestStream && method.responseStream) {
      out[name] = (call: grpc.ServerDuplexStream<Message, Message>) => {
        const { ctx, done } = callContext(call, log);
        const run = handler
          ? handler(requests(call), ctx, sender(call))
          : Promise.reject(missing());
        run.then(
          () => {
            done();
            call.end();
          },
          (err) => {
            done();
            if (!call.cancelled) call.emit('error', grpcError(err, log, path));
          },
        );
      };
    } else {
      // containerd's API has no client-streaming methods; answer clearly should one appear.
      out[name] = (_call: unknown, callback: grpc.sendUnaryData<Message>) => callback(grpcError(missing(), log, path));
    }
  }
  return out;
}
