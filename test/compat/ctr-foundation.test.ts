// containerd's own `ctr` (Debian's containerd package, used only as a client) against berthd.
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { cleanup, startDaemon, waitFor, type TestDaemon } from '../helpers/daemon';

const run = promisify(execFile);
const CTR = process.env.CTR ?? '/usr/bin/ctr';

describe('ctr against berthd: version, namespaces, events', () => {
  let daemon: TestDaemon;
  const ctr = (...args: string[]) => run(CTR, ['--address', daemon.address, ...args], { timeout: 20_000 });

  beforeAll(async () => {
    daemon = await startDaemon();
  });
  afterAll(async () => {
    await cleanup(daemon);
  });

  test('ctr version shows the server version and UUID', async () => {
    const { stdout } = await ctr('version');
    const server = stdout.slice(stdout.indexOf('Server:'));
    expect(server).toMatch(/Version:\s+0\.\d+\.\d+/);
    expect(server).toMatch(/UUID:\s+[0-9a-f-]{36}/);
  });

  test('ctr namespaces create, label, ls, rm', async () => {
    await ctr('namespaces', 'create', 'x', 'a=b');
    await ctr('namespaces', 'label', 'x', 'k=v');
    let { stdout } = await ctr('namespaces', 'ls');
    const line = stdout.split('\n').find((l) => l.startsWith('x '));
    expect(line).toBeDefined();
    expect(line!.trim().split(/\s+/)).toEqual(['x', 'a=b,k=v']);
    ({ stdout } = await ctr('namespaces', 'ls', '-q'));
    expect(stdout.split('\n')).toContain('x');

    // removing a label with an empty value
    await ctr('namespaces', 'label', 'x', 'a=');
    ({ stdout } = await ctr('namespaces', 'ls'));
    expect(stdout.split('\n').find((l) => l.startsWith('x '))!.trim().split(/\s+/)).toEqual(['x', 'k=v']);

    ({ stdout } = await ctr('namespaces', 'rm', 'x'));
    expect(stdout.trim()).toBe('x');
    ({ stdout } = await ctr('namespaces', 'ls', '-q'));
    expect(stdout.split('\n')).not.toContain('x');
  });

  test('ctr namespaces create of an existing namespace fails with the daemon message', async () => {
    await ctr('namespaces', 'create', 'twice');
    await expect(ctr('namespaces', 'create', 'twice')).rejects.toMatchObject({
      stderr: expect.stringContaining('namespace "twice": already exists'),
    });
  });

  test('ctr events receives the events of a namespace created by another client', async () => {
    const events = spawn(CTR, ['--address', daemon.address, 'events'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    events.stdout.on('data', (d) => (out += d.toString()));
    try {
      // ctr events has subscribed once an event published after it is printed; retry until then.
      const client = daemon.client('other');
      try {
        await waitFor('ctr events to print an event', async () => {
          await client.unary('namespaces', 'Create', { namespace: { name: `compat-${Date.now()}`, labels: { k: 'v' } } });
          return out.includes('/namespaces/create');
        });
      } finally {
        client.close();
      }
      const line = out.split('\n').find((l) => l.includes('/namespaces/create'))!;
      // "<timestamp> <namespace> <topic> <event JSON>"
      expect(line).toMatch(/ other \/namespaces\/create \{"name":"compat-\d+","labels":\{"k":"v"\}\}$/);
    } finally {
      events.kill('SIGTERM');
    }
  });
});
