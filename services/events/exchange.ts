// The events bus of the daemon: services publish, shims forward, subscribers receive the
// envelopes that match their filters. Envelopes carry the event as an Any with containerd's
// type URL, a timestamp and the namespace of the object the event is about.
import { nowTimestamp, toAny, fromAny, type AnyMessage, type Message, type Timestamp, isZeroTimestamp } from '../../proto/codec';
import { BerthError } from '../errdefs';
import { parseAll, objectAdaptor, type Adaptor, type Filter } from '../filters';
import { validateIdentifier } from '../metadata/validate';

export interface Envelope {
  timestamp: Timestamp;
  namespace: string;
  topic: string;
  event: AnyMessage;
}

/** What services need of the bus: publish one event about an object in a namespace. */
export interface Publisher {
  publish(namespace: string, topic: string, typeName: string, event: Message): void;
}

/** Envelopes a subscriber may fall behind by before it is cut off, so one stuck client
 * cannot make the daemon hold events without bound. */
const MAX_BACKLOG = 65536;

/** A topic is "/" followed by identifier components, as containerd's exchange requires. */
export function validateTopic(topic: string): void {
  if (topic === '') throw new BerthError('InvalidArgument', 'must not be empty');
  if (topic[0] !== '/') throw new BerthError('InvalidArgument', "must start with '/'");
  if (topic.length === 1) throw new BerthError('InvalidArgument', 'must have at least one component');
  for (const component of topic.slice(1).split('/')) {
    try {
      validateIdentifier(component);
    } catch (err) {
      throw new BerthError('InvalidArgument', `failed validation on component ${JSON.stringify(component)}: ${(err as Error).message}`);
    }
  }
}

function topicError(topic: string, err: unknown): BerthError {
  return new BerthError('InvalidArgument', `envelope topic ${JSON.stringify(topic)}: ${(err as Error).message}`);
}

/** Field paths of an envelope for filters: namespace, topic, and event.<field> of the decoded payload. */
export function envelopeAdaptor(envelope: Envelope): Adaptor {
  let decoded: Adaptor | null | undefined;
  return {
    field(path: string[]): string | undefined {
      switch (path[0]) {
        case 'namespace':
          return envelope.namespace || undefined;
        case 'topic':
          return envelope.topic || undefined;
        case 'event': {
          if (decoded === undefined) {
            const event = fromAny(envelope.event);
            decoded = event ? objectAdaptor(event) : null;
          }
          return decoded ? decoded.field(path.slice(1)) : undefined;
        }
        default:
          return undefined;
      }
    },
  };
}

class Subscription {
  private readonly backlog: Envelope[] = [];
  private wake: (() => void) | undefined;
  private failure: BerthError | undefined;
  closed = false;

  constructor(readonly filter: Filter) {}

  offer(envelope: Envelope): void {
    if (this.closed) return;
    if (this.backlog.length >= MAX_BACKLOG) {
      this.fail(new BerthError('ResourceExhausted', `subscriber fell more than ${MAX_BACKLOG} events behind`));
      return;
    }
    this.backlog.push(envelope);
    this.notify();
  }

  fail(err: BerthError): void {
    this.failure = err;
    this.closed = true;
    this.notify();
  }

  close(): void {
    this.closed = true;
    this.notify();
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  async *drain(): AsyncIterable<Envelope> {
    for (;;) {
      while (this.backlog.length > 0) yield this.backlog.shift()!;
      if (this.failure) throw this.failure;
      if (this.closed) return;
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }
}

export class Exchange implements Publisher {
  private readonly subscriptions = new Set<Subscription>();

  publish(namespace: string, topic: string, typeName: string, event: Message): void {
    this.publishAny(namespace, topic, toAny(typeName, event));
  }

  /** Publishes an event already packed as an Any (Events/Publish from a client). */
  publishAny(namespace: string, topic: string, event: AnyMessage): void {
    try {
      validateTopic(topic);
    } catch (err) {
      throw topicError(topic, err);
    }
    this.dispatch({ timestamp: nowTimestamp(), namespace, topic, event });
  }

  /** Distributes an envelope as it is, keeping its timestamp (shims forward their events so). */
  forward(envelope: Envelope): void {
    try {
      validateIdentifier(envelope.namespace);
    } catch (err) {
      throw new BerthError('InvalidArgument', `event envelope has invalid namespace: ${(err as Error).message}`);
    }
    try {
      validateTopic(envelope.topic);
    } catch (err) {
      throw topicError(envelope.topic, err);
    }
    if (isZeroTimestamp(envelope.timestamp)) {
      throw new BerthError('InvalidArgument', 'timestamp must be set on forwarded event');
    }
    this.dispatch(envelope);
  }

  /**
   * Envelopes matching any of `filters` (all when there are none) from now until `signal` aborts.
   * A filter that does not parse is an InvalidArgument error before anything is delivered.
   */
  subscribe(filters: readonly string[], signal: AbortSignal): AsyncIterable<Envelope> {
    let filter: Filter;
    try {
      filter = parseAll(filters);
    } catch (err) {
      throw new BerthError('InvalidArgument', `failed parsing subscription filters: ${(err as Error).message}`);
    }
    const sub = new Subscription(filter);
    this.subscriptions.add(sub);
    const stop = () => {
      sub.close();
      this.subscriptions.delete(sub);
    };
    if (signal.aborted) stop();
    else signal.addEventListener('abort', stop, { once: true });
    const subscriptions = this.subscriptions;
    return (async function* () {
      try {
        yield* sub.drain();
      } finally {
        signal.removeEventListener('abort', stop);
        subscriptions.delete(sub);
      }
    })();
  }

  get subscriberCount(): number {
    return this.subscriptions.size;
  }

  /** Ends every subscription (daemon shutdown). */
  closeAll(): void {
    for (const sub of this.subscriptions) sub.close();
    this.subscriptions.clear();
  }

  private dispatch(envelope: Envelope): void {
    const adaptor = envelopeAdaptor(envelope); // decodes the payload at most once
    for (const sub of this.subscriptions) {
      let matched = false;
      try {
        matched = sub.filter.match(adaptor);
      } catch {
        matched = false;
      }
      if (matched) sub.offer(envelope);
    }
  }
}
