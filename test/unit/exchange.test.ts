import { Exchange, validateTopic } from '../../services/events/exchange';
import { fromAny } from '../../proto/codec';

async function collect(it: AsyncIterable<any>, n: number): Promise<any[]> {
  const out: any[] = [];
  for await (const e of it) {
    out.push(e);
    if (out.length === n) break;
  }
  return out;
}

describe('exchange', () => {
  test('delivers matching envelopes in order and stops on abort', async () => {
    const ex = new Exchange();
    const ac = new AbortController();
    const sub = ex.subscribe(['namespace==a'], ac.signal);
    const got = collect(sub, 2);
    ex.publish('b', '/x/y', 'containerd.events.ContentDelete', { digest: '1' });
    ex.publish('a', '/x/y', 'containerd.events.ContentDelete', { digest: '2' });
    ex.publish('a', '/x/z', 'containerd.events.ContentDelete', { digest: '3' });
    const envs = await got;
    expect(envs.map((e) => fromAny(e.event)!.digest)).toEqual(['2', '3']);
    ac.abort();
    expect(ex.subscriberCount).toBe(0);
  });

  test('filters on decoded event fields', async () => {
    const ex = new Exchange();
    const ac = new AbortController();
    const got = collect(ex.subscribe(['event.name~=^keep'], ac.signal), 1);
    ex.publish('n', '/namespaces/create', 'containerd.events.NamespaceCreate', { name: 'drop-me', labels: {} });
    ex.publish('n', '/namespaces/create', 'containerd.events.NamespaceCreate', { name: 'keep-me', labels: {} });
    expect(fromAny((await got)[0].event)!.name).toBe('keep-me');
    ac.abort();
  });

  test('topics are validated as containerd does', () => {
    expect(() => validateTopic('/tasks/exit')).not.toThrow();
    expect(() => validateTopic('')).toThrow('must not be empty');
    expect(() => validateTopic('/')).toThrow('must have at least one component');
    expect(() => validateTopic('/a//b')).toThrow('failed validation on component ""');
    const ex = new Exchange();
    expect(() => ex.publish('n', 'x', 'containerd.events.ContentDelete', {})).toThrow(`envelope topic "x": must start with '/'`);
  });

  test('a bad filter is InvalidArgument before anything is delivered', () => {
    const ex = new Exchange();
    expect(() => ex.subscribe(['topic=='], new AbortController().signal)).toThrow(/failed parsing subscription filters/);
  });

  test('closeAll ends every subscription', async () => {
    const ex = new Exchange();
    const it = ex.subscribe([], new AbortController().signal);
    const done = collect(it, 10);
    ex.closeAll();
    expect(await done).toEqual([]);
  });
});
