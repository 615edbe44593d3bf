import pino from 'pino';
import { dependencyOrder, PluginSet, type PluginRegistration } from '../../services/server/plugin';

const reg = (type: string, id: string, requires: string[] = [], init: () => Promise<unknown> = async () => ({ id })): PluginRegistration => ({
  type,
  id,
  requires,
  init,
});

describe('plugins', () => {
  test('are ordered after the types they require, with "*" last', () => {
    const order = dependencyOrder([
      reg('grpc', 'introspection', ['*']),
      reg('grpc', 'namespaces', ['metadata', 'event']),
      reg('metadata', 'level', ['event']),
      reg('event', 'exchange'),
    ]).map((r) => `${r.type}.${r.id}`);
    expect(order).toEqual(['event.exchange', 'metadata.level', 'grpc.namespaces', 'grpc.introspection']);
  });

  test('a cycle is reported', () => {
    expect(() => dependencyOrder([reg('a', '1', ['b']), reg('b', '1', ['a'])])).toThrow(/cycle/);
  });

  test('a failed plugin is recorded and its dependents fail naming it', async () => {
    const set = new PluginSet();
    await set.initAll(
      [
        reg('metadata', 'level', [], async () => {
          throw new Error('disk on fire');
        }),
        {
          type: 'grpc',
          id: 'namespaces',
          requires: ['metadata'],
          init: async (ctx) => ctx.get('metadata'),
        },
      ],
      () => ({ config: {} as any, root: '/tmp/x', state: '/tmp/y', log: pino({ level: 'silent' }) }),
      pino({ level: 'silent' }),
    );
    const [metadata, namespaces] = set.loaded;
    expect(metadata.initError?.message).toBe('disk on fire');
    expect(namespaces.initError?.message).toMatch(/required plugin metadata.level failed to load: disk on fire/);
  });
});
