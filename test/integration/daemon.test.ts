// berthd end to end over its unix socket: the foundation services, namespace rules, errors,
// persistence across a crash, socket ownership and shutdown.
import * as fs from 'node:fs';
import * as http2 from 'node:http2';
import * as path from 'node:path';
import type { Client } from '../../cli/client';
import { failure as code } from '../helpers/calls';
import { formatTimestamp, fromAny, toAny } from '../../proto/codec';
import { GrpcCode } from '../../services/errdefs';
import { cleanup, startDaemon, TestDaemon, tempDir, waitFor, sleep } from '../helpers/daemon';


/** A raw gRPC call over HTTP/2, to send what no well-behaved client would. */
function rawCall(address: string, pathName: string, body: Buffer, headers: Record<string, string> = {}) {
  return new Promise<{ status: string | undefined; message: string | undefined }>((resolve, reject) => {
    const session = http2.connect('http://localhost', { createConnection: () => require('node:net').connect(address) });
    session.on('error', reject);
    const req = session.request({
      ':method': 'POST',
      ':path': pathName,
      'content-type': 'application/grpc',
      te: 'trailers',
      ...headers,
    });
    let status: string | undefined;
    let message: string | undefined;
    const take = (h: http2.IncomingHttpHeaders) => {
      if (h['grpc-status'] !== undefined) status = String(h['grpc-status']);
      if (h['grpc-message'] !== undefined) message = decodeURIComponent(String(h['grpc-message']));
    };
    req.on('response', take);
    req.on('trailers', take);
    req.on('data', () => undefined);
    req.on('end', () => {
      session.close();
      resolve({ status, message });
    });
    req.on('error', reject);
    req.end(body);
  });
}

function frame(payload: Buffer): Buffer {
  const header = Buffer.alloc(5);
  header.writeUInt32BE(payload.length, 1);
  return Buffer.concat([header, payload]);
}

describe('berthd', () => {
  let daemon: TestDaemon;
  let client: Client;

  beforeAll(async () => {
    daemon = await startDaemon();
    client = daemon.client('default');
  });

  afterAll(async () => {
    client?.close();
    await cleanup(daemon);
  });

  test('serves its version', async () => {
    const pkg = JSON.parse(fs.readFileSync(path.resolve(__dirname, '../../../package.json'), 'utf8'));
    const v = await client.unary('version', 'Version');
    expect(v.version).toBe(pkg.version);
    expect(v.revision).not.toBe('');
  });

  test('creates the socket with mode 0660', () => {
    const st = fs.statSync(daemon.address);
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o777).toBe(0o660);
  });

  describe('namespaces', () => {
    test('create, get, list, label, delete', async () => {
      const created = await client.unary('namespaces', 'Create', { namespace: { name: 'alpha', labels: { team: 'infra', empty: '' } } });
      expect(created.namespace.name).toBe('alpha');

      expect((await client.unary('namespaces', 'Get', { name: 'alpha' })).namespace).toEqual({ name: 'alpha', labels: { team: 'infra' } });

      const updated = await client.unary('namespaces', 'Update', {
        namespace: { name: 'alpha', labels: { 'a.b/c': 'd', team: '' } },
        update_mask: { paths: ['labels.a.b/c', 'labels.team'] },
      });
      // containerd echoes an empty namespace message
      expect(updated.namespace.name).toBe('');
      expect((await client.unary('namespaces', 'Get', { name: 'alpha' })).namespace.labels).toEqual({ 'a.b/c': 'd' });

      // No mask: the labels are replaced as a whole.
      await client.unary('namespaces', 'Update', { namespace: { name: 'alpha', labels: { x: '1' } } });
      expect((await client.unary('namespaces', 'Get', { name: 'alpha' })).namespace.labels).toEqual({ x: '1' });

      const list = await client.unary('namespaces', 'List', {});
      expect(list.namespaces.map((n: any) => n.name)).toContain('alpha');
      const filtered = await client.unary('namespaces', 'List', { filter: 'labels.x==1' });
      expect(filtered.namespaces.map((n: any) => n.name)).toEqual(['alpha']);

      await client.unary('namespaces', 'Delete', { name: 'alpha' });
      expect((await client.unary('namespaces', 'List', {})).namespaces.map((n: any) => n.name)).not.toContain('alpha');
    });

    test('answers errors as containerd does', async () => {
      await client.unary('namespaces', 'Create', { namespace: { name: 'dup' } });
      expect(await code(client.unary('namespaces', 'Create', { namespace: { name: 'dup' } }))).toEqual({
        code: GrpcCode.AlreadyExists,
        details: 'namespace "dup": already exists',
      });
      expect(await code(client.unary('namespaces', 'Delete', { name: 'nonexist' }))).toEqual({
        code: GrpcCode.NotFound,
        details: 'namespace "nonexist": not found',
      });
      const bad = await code(client.unary('namespaces', 'Create', { namespace: { name: 'bad name!' } }));
      expect(bad.code).toBe(GrpcCode.InvalidArgument);
      expect(bad.details).toMatch(/identifier "bad name!" must match/);
      const field = await code(client.unary('namespaces', 'Update', { namespace: { name: 'dup' }, update_mask: { paths: ['name'] } }));
      expect(field).toEqual({ code: GrpcCode.InvalidArgument, details: 'cannot update "name" field: invalid argument' });
      const big = await code(client.unary('namespaces', 'Create', { namespace: { name: 'big', labels: { k: 'v'.repeat(5000) } } }));
      expect(big.code).toBe(GrpcCode.InvalidArgument);
      expect(big.details).toMatch(/label key and value greater than maximum size \(4096 bytes\)/);
    });

    test('Get of a namespace that does not exist answers OK with no labels', async () => {
      const res = await client.unary('namespaces', 'Get', { name: 'never-created' });
      expect(res.namespace).toEqual({ name: 'never-created', labels: {} });
      const list = await client.unary('namespaces', 'List', {});
      expect(list.namespaces.map((n: any) => n.name)).not.toContain('never-created');
    });
  });

  describe('namespace header', () => {
    test('a namespaced call without one is FailedPrecondition "namespace is required"', async () => {
      const bare = daemon.client('');
      try {
        expect(await code(bare.unary('containers', 'Get', { id: 'x' }).catch((e) => Promise.reject(e)))).toEqual({
          code: GrpcCode.FailedPrecondition,
          details: 'namespace is required: failed precondition',
        });
      } finally {
        bare.close();
      }
    });

    test('an invalid namespace name is InvalidArgument', async () => {
      const bad = daemon.client('no/slashes');
      try {
        const r = await code(bad.unary('containers', 'Get', { id: 'x' }));
        expect(r.code).toBe(GrpcCode.InvalidArgument);
        expect(r.details).toMatch(/^namespace validation: identifier "no\/slashes" must match/);
      } finally {
        bad.close();
      }
    });

    test('what berthd does not implement answers Unimplemented with a clear message', async () => {
      const r = await code(client.unary('tasks', 'Checkpoint', { container_id: 'x' }));
      expect(r.code).toBe(GrpcCode.Unimplemented);
      expect(r.details).toMatch(/checkpointing is not supported by berthd/);
    });
  });

  describe('bad requests', () => {
    test('an unknown service is Unimplemented and the daemon keeps serving', async () => {
      const r = await rawCall(daemon.address, '/containerd.services.nosuch.v1.X/Get', frame(Buffer.alloc(0)), {
        'containerd-namespace': 'default',
      });
      expect(r.status).toBe(String(GrpcCode.Unimplemented));
      expect(r.message).toMatch(/containerd\.services\.nosuch\.v1\.X\/Get/);
      expect((await client.unary('version', 'Version')).version).toBeTruthy();
    });

    test('a malformed message is Internal (as grpc-go answers) and the daemon keeps serving', async () => {
      // Field 1 (name) declared as a 100-byte string, but only 3 bytes follow.
      const garbage = Buffer.from([0x0a, 0x64, 0x61, 0x62, 0x63]);
      const r = await rawCall(daemon.address, '/containerd.services.namespaces.v1.Namespaces/Get', frame(garbage), {
        'containerd-namespace': 'default',
      });
      expect(r.status).toBe(String(GrpcCode.Internal));
      expect(r.message).toMatch(/deserializing request/i);
      expect((await client.unary('namespaces', 'Get', { name: 'default' })).namespace.name).toBe('default');
    });

    test('a truncated frame does not disturb other clients', async () => {
      const partial = frame(Buffer.from([0x0a, 0x01, 0x61])).subarray(0, 6);
      const r = await rawCall(daemon.address, '/containerd.services.namespaces.v1.Namespaces/Get', partial, {
        'containerd-namespace': 'default',
      });
      expect(r.status).not.toBe('0');
      expect((await client.unary('version', 'Version')).version).toBeTruthy();
    });
  });

  describe('events', () => {
    test('subscribers receive the events of every namespace, with containerd envelopes', async () => {
      const watcher = daemon.client('default');
      const other = daemon.client('elsewhere');
      const seen: any[] = [];
      const stream = watcher.stream('events', 'Subscribe', { filters: [] });
      const reading = (async () => {
        for await (const env of stream) {
          seen.push(env);
          if (env.topic === '/namespaces/delete') break;
        }
      })();
      await sleep(100); // the subscription is registered before events are produced
      await other.unary('namespaces', 'Create', { namespace: { name: 'evns', labels: { a: 'b' } } });
      await other.unary('namespaces', 'Update', { namespace: { name: 'evns', labels: { c: 'd' } }, update_mask: { paths: ['labels.c'] } });
      await other.unary('namespaces', 'Delete', { name: 'evns' });
      await reading;
      watcher.close();
      other.close();

      expect(seen.map((e) => e.topic)).toEqual(['/namespaces/create', '/namespaces/update', '/namespaces/delete']);
      const [create, update, del] = seen;
      expect(create.event.type_url).toBe('containerd.events.NamespaceCreate');
      expect(fromAny(create.event)).toEqual({ name: 'evns', labels: { a: 'b' } });
      expect(create.namespace).toBe('elsewhere'); // the caller's namespace, as containerd
      expect(fromAny(update.event)).toEqual({ name: 'evns', labels: { c: 'd' } });
      expect(del.namespace).toBe('evns'); // the deleted namespace itself
      expect(del.event.type_url).toBe('containerd.events.NamespaceDelete');
      const ts = create.timestamp.seconds * 1000;
      expect(Math.abs(ts - Date.now())).toBeLessThan(60_000);
    });

    test('filters select by topic, namespace and event fields; several filters are alternatives', async () => {
      const watcher = daemon.client('default');
      const got: string[] = [];
      const stream = watcher.stream('events', 'Subscribe', {
        filters: ['topic=="/namespaces/delete",event.name==f1', 'topic~=|^/custom/|,namespace==pubns'],
      });
      const reading = (async () => {
        for await (const env of stream) {
          got.push(`${env.namespace} ${env.topic}`);
          if (got.length === 2) break;
        }
      })();
      await sleep(100);
      const pub = daemon.client('pubns');
      await client.unary('namespaces', 'Create', { namespace: { name: 'f1' } });
      await client.unary('namespaces', 'Create', { namespace: { name: 'f2' } });
      await client.unary('namespaces', 'Delete', { name: 'f2' });
      await pub.unary('events', 'Publish', { topic: '/other/thing', event: toAny('containerd.events.ContentDelete', { digest: 'x' }) });
      await client.unary('events', 'Publish', { topic: '/custom/thing', event: toAny('containerd.events.ContentDelete', { digest: 'x' }) });
      await pub.unary('events', 'Publish', { topic: '/custom/thing', event: toAny('containerd.events.ContentDelete', { digest: 'y' }) });
      await client.unary('namespaces', 'Delete', { name: 'f1' });
      await reading;
      watcher.close();
      pub.close();
      expect(got).toEqual(['pubns /custom/thing', 'f1 /namespaces/delete']);
    });

    test('Publish needs a namespace and a valid topic; Forward keeps the timestamp', async () => {
      const bare = daemon.client('');
      const ev = toAny('containerd.events.ContentDelete', { digest: 'sha256:x' });
      expect(await code(bare.unary('events', 'Publish', { topic: '/a', event: ev }))).toEqual({
        code: GrpcCode.FailedPrecondition,
        details: 'failed publishing event: namespace is required: failed precondition',
      });
      const badTopic = await code(client.unary('events', 'Publish', { topic: 'no-slash', event: ev }));
      expect(badTopic).toEqual({ code: GrpcCode.InvalidArgument, details: `envelope topic "no-slash": must start with '/': invalid argument` });

      const badFilter = await code(
        (async () => {
          for await (const _ of client.stream('events', 'Subscribe', { filters: ['topic=='] })) break;
        })(),
      );
      expect(badFilter.code).toBe(GrpcCode.InvalidArgument);

      const watcher = daemon.client('default');
      const got: any[] = [];
      const reading = (async () => {
        for await (const env of watcher.stream('events', 'Subscribe', { filters: ['topic=="/forwarded/x"'] })) {
          got.push(env);
          break;
        }
      })();
      await sleep(100);
      const timestamp = { seconds: 1700000000, nanos: 123456789 };
      await bare.unary('events', 'Forward', { envelope: { timestamp, namespace: 'fwd', topic: '/forwarded/x', event: ev } });
      await reading;
      expect(got[0].timestamp).toEqual(timestamp);
      expect(got[0].namespace).toBe('fwd');
      expect(formatTimestamp(got[0].timestamp)).toBe('2023-11-14T22:13:20.123456789Z');
      const zero = await code(bare.unary('events', 'Forward', { envelope: { namespace: 'fwd', topic: '/forwarded/x', event: ev } }));
      expect(zero.code).toBe(GrpcCode.InvalidArgument);
      bare.close();
      watcher.close();
    });
  });

  describe('introspection', () => {
    test('lists the loaded plugins, filtered by type or id', async () => {
      const all = await client.unary('introspection', 'Plugins', {});
      const ids = all.plugins.map((p: any) => `${p.type}.${p.id}`);
      expect(ids).toEqual(
        expect.arrayContaining([
          'io.containerd.grpc.v1.version',
          'io.containerd.grpc.v1.namespaces',
          'io.containerd.grpc.v1.events',
          'io.containerd.grpc.v1.introspection',
          'io.containerd.metadata.v1.level',
        ]),
      );
      // dependencies come first
      expect(ids.indexOf('io.containerd.metadata.v1.level')).toBeLessThan(ids.indexOf('io.containerd.grpc.v1.namespaces'));
      expect(ids[ids.length - 1]).toBe('io.containerd.grpc.v1.introspection');
      expect(all.plugins.every((p: any) => !p.init_err || p.init_err.code === 0)).toBe(true);

      const grpcOnly = await client.unary('introspection', 'Plugins', { filters: ['type==io.containerd.grpc.v1'] });
      expect(grpcOnly.plugins.every((p: any) => p.type === 'io.containerd.grpc.v1')).toBe(true);
      const two = await client.unary('introspection', 'Plugins', { filters: ['id==version', 'id==events'] });
      expect(two.plugins.map((p: any) => p.id).sort()).toEqual(['events', 'version']);
    });

    test('reports a UUID', async () => {
      const { uuid } = await client.unary('introspection', 'Server', {});
      expect(uuid).toMatch(/^[0-9a-f-]{36}$/);
    });
  });
});

describe('berthd lifecycle', () => {
  const daemons: TestDaemon[] = [];
  afterEach(async () => {
    await cleanup(...daemons.splice(0));
  });

  test('after SIGKILL it restarts on the same socket and root with its namespaces, labels and UUID', async () => {
    const d = await startDaemon();
    daemons.push(d);
    let c = d.client();
    await c.unary('namespaces', 'Create', { namespace: { name: 'persist', labels: { k: 'v' } } });
    await c.unary('namespaces', 'Update', { namespace: { name: 'persist', labels: { k2: 'v2' } }, update_mask: { paths: ['labels.k2'] } });
    const { uuid } = await c.unary('introspection', 'Server', {});
    c.close();

    await d.kill();
    expect(fs.existsSync(d.address)).toBe(true); // the stale socket is left behind
    await d.start();
    c = d.client();
    expect((await c.unary('namespaces', 'Get', { name: 'persist' })).namespace.labels).toEqual({ k: 'v', k2: 'v2' });
    expect((await c.unary('introspection', 'Server', {})).uuid).toBe(uuid);
    c.close();
  });

  test('a second daemon on a live socket is refused with a clear message', async () => {
    const d = await startDaemon();
    daemons.push(d);
    const other = new TestDaemon(tempDir());
    daemons.push(other);
    Object.defineProperty(other, 'address', { value: d.address });
    const r = await other.runToExit();
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`another daemon is already serving on ${d.address}`);
    // the first daemon is unaffected
    const c = d.client();
    expect((await c.unary('version', 'Version')).version).toBeTruthy();
    c.close();
  });

  test('a second daemon on the same root is refused', async () => {
    const d = await startDaemon();
    daemons.push(d);
    const other = new TestDaemon(tempDir());
    daemons.push(other);
    Object.defineProperty(other, 'root', { value: d.root });
    const r = await other.runToExit();
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/is locked: is another berthd running with the same root/);
  });

  test('SIGTERM shuts down gracefully: streams end, socket removed, exit 0', async () => {
    const d = await startDaemon();
    daemons.push(d);
    const c = d.client();
    let ended = false;
    const reading = (async () => {
      try {
        for await (const _ of c.stream('events', 'Subscribe', {})) {
          // no events expected
        }
      } finally {
        ended = true;
      }
    })();
    await sleep(100);
    expect(await d.terminate()).toBe(0);
    await reading.catch(() => undefined);
    expect(ended).toBe(true);
    expect(fs.existsSync(d.address)).toBe(false);
    c.close();
  });

  test('a config file sets root, state, address and log level; a bad one stops start-up clearly', async () => {
    const dir = tempDir();
    const cfg = path.join(dir, 'config.toml');
    fs.writeFileSync(
      cfg,
      `version = 2\nroot = "${dir}/r"\nstate = "${dir}/s"\n[grpc]\naddress = "${dir}/cfg.sock"\n[debug]\nlevel = "warn"\n`,
    );
    const d = new TestDaemon(dir);
    daemons.push(d);
    d.args = () => ['--config', cfg];
    Object.defineProperty(d, 'address', { value: `${dir}/cfg.sock` });
    await d.start();
    expect(fs.existsSync(path.join(dir, 'r'))).toBe(true);
    expect(fs.existsSync(path.join(dir, 's'))).toBe(true);
    await d.terminate();

    fs.writeFileSync(cfg, `version = 2\n[grpc]\nadress = "typo"\n`);
    const r = await d.runToExit();
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('config: unknown key grpc.adress');
  });

  test('namespaces created by one client are seen by another right away', async () => {
    const d = await startDaemon();
    daemons.push(d);
    const a = d.client();
    const b = d.client();
    await Promise.all(Array.from({ length: 20 }, (_, i) => a.unary('namespaces', 'Create', { namespace: { name: `n${i}` } })));
    const names = (await b.unary('namespaces', 'List', {})).namespaces.map((n: any) => n.name);
    for (let i = 0; i < 20; i++) expect(names).toContain(`n${i}`);
    a.close();
    b.close();
    await waitFor('nothing', () => true);
  });
});
