// The berth CLI as an operator runs it (the compiled binary), against a real berthd.
import { execFile, spawn, spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import { promisify } from 'node:util';
import { assertNothingLeft, BERTH, cleanup, startDaemon, waitFor, type TestDaemon } from '../helpers/daemon';

const run = promisify(execFile);

describe('berth CLI', () => {
  let daemon: TestDaemon;
  const berth = (...args: string[]) =>
    run(process.execPath, [BERTH, '--address', daemon.address, ...args], { timeout: 20_000 });

  beforeAll(async () => {
    daemon = await startDaemon();
  });
  afterAll(async () => {
    try {
      await assertNothingLeft(daemon, { namespaces: [] }); // no containers here: only the daemon's own leftovers
    } finally {
      await cleanup(daemon);
    }
  });

  test('version', async () => {
    const { stdout } = await berth('version');
    expect(stdout).toMatch(/Client:\n {2}Version: {2}\d+\.\d+\.\d+/);
    expect(stdout).toMatch(/Server:\n {2}Version: {2}\d+\.\d+\.\d+\n {2}Revision: \S+\n {2}UUID: [0-9a-f-]{36}/);
    const json = JSON.parse((await berth('--json', 'version')).stdout);
    expect(json.server.uuid).toMatch(/^[0-9a-f-]{36}$/);
  });

  test('namespaces create, label, ls (table, quiet, json, filter), rm', async () => {
    await berth('namespaces', 'create', 'web', 'team=infra', 'tier=front');
    await berth('namespaces', 'create', 'db');
    await berth('namespaces', 'label', 'db', 'team=data');
    await berth('ns', 'label', 'web', 'tier=');
    const table = (await berth('namespaces', 'ls')).stdout.split('\n');
    expect(table[0]).toMatch(/^NAME\s+LABELS$/);
    const rows = table.slice(1).filter(Boolean).map((l) => l.split(/\s+/));
    expect(rows).toEqual(expect.arrayContaining([['db', 'team=data'], ['web', 'team=infra']]));
    // columns line up: every LABELS cell starts where the header does
    const col = table[0].indexOf('LABELS');
    for (const l of table.slice(1).filter(Boolean)) expect(l.slice(col - 1, col)).toBe(' ');

    expect((await berth('namespaces', 'ls', '-q')).stdout.split('\n')).toEqual(expect.arrayContaining(['db', 'web']));
    const json = JSON.parse((await berth('--json', 'namespaces', 'ls')).stdout);
    expect(json.find((n: any) => n.name === 'web').labels).toEqual({ team: 'infra' });
    const filtered = (await berth('namespaces', 'ls', '-q', 'labels.team==data')).stdout.trim();
    expect(filtered).toBe('db');

    expect((await berth('namespaces', 'rm', 'web', 'db')).stdout).toBe('web\ndb\n');
  });

  test('errors reach the operator with the daemon message and a non-zero exit', async () => {
    await expect(berth('namespaces', 'create', 'bad/name')).rejects.toMatchObject({
      code: 1,
      stderr: expect.stringMatching(/berth: identifier "bad\/name" must match .*: invalid argument \(invalid argument\)/),
    });
    await expect(berth('namespaces', 'rm', 'missing')).rejects.toMatchObject({
      code: 1,
      stderr: expect.stringContaining('unable to delete missing: namespace "missing": not found'),
    });
    await expect(run(process.execPath, [BERTH, '--address', '/nonexistent/sock', '--timeout', '2000', 'version'])).rejects.toMatchObject({
      code: 1,
    });
  });

  test('run defaults to the berth runtime; tasks attach needs a task', async () => {
    expect((await berth('run', '--help')).stdout).toMatch(/--runtime <name>\s+runtime name .*\(default:\s+"io\.containerd\.berth\.v1"\)/s);
    await expect(berth('tasks', 'attach', 'missing')).rejects.toMatchObject({
      code: 1,
      stderr: expect.stringMatching(/^berth: .*missing.*not found/),
    });
  });

  test('plugins ls shows type, id, platforms and status', async () => {
    const { stdout } = await berth('plugins', 'ls');
    expect(stdout).toMatch(/^TYPE\s+ID\s+PLATFORMS\s+STATUS/);
    expect(stdout).toMatch(/io\.containerd\.grpc\.v1\s+namespaces\s+-\s+ok/);
    const detailed = (await berth('plugins', 'ls', '-d', 'id==level')).stdout;
    expect(detailed).toContain('Type:          io.containerd.metadata.v1');
    expect(detailed).toMatch(/Exports:\n\s+root\s+\//);
  });

  test('events prints envelopes as they happen, in text and JSON', async () => {
    for (const json of [false, true]) {
      const proc = spawn(process.execPath, [BERTH, '--address', daemon.address, ...(json ? ['--json'] : []), 'events', 'topic~=|^/namespaces/|'], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      proc.stdout.on('data', (d) => (out += d.toString()));
      try {
        const name = `ev${json ? 'j' : 't'}${Date.now()}`;
        await waitFor('berth events to print', async () => {
          await berth('namespaces', 'create', name).catch(() => undefined);
          await berth('namespaces', 'label', name, 'x=1');
          return out.includes('/namespaces/update');
        });
        const line = out.split('\n').find((l) => l.includes('/namespaces/update'))!;
        if (json) {
          const env = JSON.parse(line);
          expect(env).toMatchObject({ namespace: 'default', topic: '/namespaces/update', type: 'containerd.events.NamespaceUpdate', event: { name, labels: { x: '1' } } });
        } else {
          expect(line).toMatch(new RegExp(`^\\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z default /namespaces/update \\{"name":"${name}","labels":\\{"x":"1"\\}\\}$`));
        }
      } finally {
        proc.kill('SIGTERM');
      }
    }
  });

  test('content ingest (with labels), ls, get, label, active, rm, prune; leases create, ls, rm', async () => {
    const data = crypto.randomBytes(2_500_000);
    const digest = `sha256:${crypto.createHash('sha256').update(data).digest('hex')}`;
    const ingest = spawnSync(process.execPath, [BERTH, '--address', daemon.address, 'content', 'ingest', '--expected-digest', digest, '--label', 'a=b', '--label', 'c=d', 'cli-ref'], { input: data });
    expect(ingest.stderr.toString()).toBe('');
    expect(ingest.status).toBe(0);
    const ls = (await berth('content', 'ls')).stdout;
    expect(ls).toMatch(new RegExp(`${digest}\\s+2\\.4 MiB\\s+.+\\s+a=b,c=d`));
    const got = spawnSync(process.execPath, [BERTH, '--address', daemon.address, 'content', 'get', digest], { maxBuffer: 16 << 20 });
    expect(got.stdout.equals(data)).toBe(true);
    expect((await berth('content', 'label', digest, 'a=', 'e=f')).stdout.trim()).toBe('c=d,e=f');
    expect((await berth('content', 'active')).stdout.trim()).toBe('REF   SIZE   AGE');
    // Unreferenced content is what prune collects; a gc.root label protects it.
    await berth('content', 'label', digest, 'containerd.io/gc.root=yes');
    await berth('content', 'prune');
    expect((await berth('content', 'ls', '-q')).stdout.trim()).toBe(digest);
    await berth('content', 'label', digest, 'containerd.io/gc.root=');
    await berth('content', 'prune');
    expect((await berth('content', 'ls', '-q')).stdout.trim()).toBe('');

    expect((await berth('leases', 'create', '--id', 'cli-lease', '--expires', '1h', 'k=v')).stdout).toBe('cli-lease\n');
    const leases = (await berth('leases', 'ls')).stdout;
    expect(leases).toMatch(/^ID\s+CREATED AT\s+LABELS/);
    expect(leases).toMatch(/cli-lease\s+\S+\s+containerd\.io\/gc\.expire=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ,k=v/);
    expect((await berth('leases', 'rm', '--sync', 'cli-lease')).stdout).toBe('cli-lease\n');
    expect((await berth('leases', 'ls', '-q')).stdout).toBe('');
  });
});
