// The Containers service over the wire: records with the OCI spec as an Any (JSON inside, ctr's
// type URL), runtime, snapshot, labels and extensions; update rules; filters; events.
import type { Client } from '../../cli/client';
import { failure } from '../helpers/calls';
import { fromAny } from '../../proto/codec';
import { GrpcCode } from '../../services/errdefs';
import { cleanup, sleep, startDaemon, type TestDaemon } from '../helpers/daemon';

const SPEC_URL = 'types.containerd.io/opencontainers/runtime-spec/1/Spec';
const spec = (args: string[]) => ({ type_url: SPEC_URL, value: Buffer.from(JSON.stringify({ ociVersion: '1.0.2', process: { args } })) });
const runcOptions = { type_url: 'containerd.runc.v1.Options', value: Buffer.alloc(0) };
const ZERO = { seconds: -62135596800, nanos: 0 };


describe('containers service', () => {
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

  const container = (id: string, extra: Record<string, unknown> = {}) => ({
    id,
    labels: { app: 'web' },
    image: 'docker.io/library/busybox:latest',
    runtime: { name: 'io.containerd.runc.v2', options: runcOptions },
    spec: spec(['sleep', '1000']),
    snapshotter: 'overlayfs',
    snapshot_key: id,
    created_at: ZERO, // clients send zero timestamps; the server fills them
    updated_at: ZERO,
    ...extra,
  });

  test('Create echoes the stored record; Get, List, ListStream return it with the spec intact', async () => {
    const { container: c } = await client.unary('containers', 'Create', { container: container('c1') });
    expect(c).toMatchObject({ id: 'c1', image: 'docker.io/library/busybox:latest', snapshotter: 'overlayfs', snapshot_key: 'c1', labels: { app: 'web' } });
    expect(c.created_at.seconds).toBeGreaterThan(0);
    expect(c.spec.type_url).toBe(SPEC_URL);
    expect(JSON.parse(Buffer.from(c.spec.value).toString())).toEqual({ ociVersion: '1.0.2', process: { args: ['sleep', '1000'] } });
    expect(c.runtime).toEqual({ name: 'io.containerd.runc.v2', options: { type_url: 'containerd.runc.v1.Options', value: Buffer.alloc(0) } });

    expect((await client.unary('containers', 'Get', { id: 'c1' })).container).toEqual(c);
    await client.unary('containers', 'Create', { container: container('c2', { labels: { app: 'db' }, runtime: { name: 'io.containerd.berth.v1' } }) });
    const listed = await client.unary('containers', 'List', { filters: ['labels.app==db'] });
    expect(listed.containers.map((x: any) => x.id)).toEqual(['c2']);
    const streamed: string[] = [];
    for await (const m of client.stream('containers', 'ListStream', { filters: ['runtime.name==io.containerd.runc.v2', 'id==c2'] })) streamed.push(m.container.id);
    expect(streamed.sort()).toEqual(['c1', 'c2']);
  });

  test('Update: labels by key, spec and image; immutable fields; unknown paths', async () => {
    await client.unary('containers', 'Create', { container: container('u1') });
    const { container: u } = await client.unary('containers', 'Update', {
      container: { id: 'u1', labels: { foo: 'bar' }, runtime: {}, created_at: ZERO, updated_at: ZERO },
      update_mask: { paths: ['labels.foo'] },
    });
    expect(u.labels).toEqual({ app: 'web', foo: 'bar' });
    expect(u.snapshotter).toBe('overlayfs');
    const replaced = await client.unary('containers', 'Update', { container: container('u1', { image: 'other', labels: {} }) });
    expect(replaced.container).toMatchObject({ image: 'other', labels: {} });
    expect((await failure(client.unary('containers', 'Update', { container: container('u1', { snapshotter: 'native' }) }))).details).toBe(
      'container.Snapshotter field is immutable: invalid argument',
    );
    expect((await failure(client.unary('containers', 'Update', { container: container('u1'), update_mask: { paths: ['runtime'] } }))).details).toBe(
      'cannot update "runtime" field on "u1": invalid argument',
    );
    expect((await failure(client.unary('containers', 'Update', { container: container('nope'), update_mask: { paths: ['image'] } }))).code).toBe(GrpcCode.NotFound);
  });

  test('bad input and missing containers get containerd\'s codes and messages', async () => {
    expect(await failure(client.unary('containers', 'Get', { id: 'c404' }))).toEqual({
      code: GrpcCode.NotFound,
      details: 'container "c404" in namespace "default": not found',
    });
    await client.unary('containers', 'Create', { container: container('dup') });
    expect(await failure(client.unary('containers', 'Create', { container: container('dup') }))).toEqual({
      code: GrpcCode.AlreadyExists,
      details: 'container "dup": already exists',
    });
    expect((await failure(client.unary('containers', 'Create', { container: container('bad id') }))).details).toMatch(
      /^create container failed validation: container\.ID: identifier "bad id" must match/,
    );
    expect((await failure(client.unary('containers', 'Create', { container: container('nospec', { spec: null }) }))).details).toBe(
      'create container failed validation: container.Spec must be set: invalid argument',
    );
    expect((await failure(client.unary('containers', 'Create', { container: container('nort', { runtime: { name: '' } }) }))).details).toBe(
      'create container failed validation: container.Runtime.Name must be set: invalid argument',
    );
    expect((await failure(client.unary('containers', 'Create', { container: container('nosn', { snapshotter: '' }) }))).details).toBe(
      'create container failed validation: container.Snapshotter must be set if container.SnapshotKey is set: invalid argument',
    );
    expect(await failure(client.unary('containers', 'Delete', { id: 'c404' }))).toEqual({
      code: GrpcCode.NotFound,
      details: 'cannot delete container "c404" in namespace "default": not found',
    });
  });

  test('events /containers/create, /containers/update, /containers/delete', async () => {
    const watcher = daemon.client('default');
    const got: any[] = [];
    const reading = (async () => {
      for await (const e of watcher.stream('events', 'Subscribe', { filters: ['topic~=|^/containers/|'] })) {
        got.push(e);
        if (got.length === 3) break;
      }
    })();
    await sleep(100);
    await client.unary('containers', 'Create', { container: container('ev') });
    await client.unary('containers', 'Update', { container: container('ev', { labels: { l: '1' } }), update_mask: { paths: ['labels'] } });
    await client.unary('containers', 'Delete', { id: 'ev' });
    await reading;
    watcher.close();
    expect(got.map((e) => e.topic)).toEqual(['/containers/create', '/containers/update', '/containers/delete']);
    expect(fromAny(got[0].event)).toEqual({
      id: 'ev',
      image: 'docker.io/library/busybox:latest',
      runtime: { name: 'io.containerd.runc.v2', options: { type_url: 'containerd.runc.v1.Options', value: Buffer.alloc(0) } },
    });
    expect(fromAny(got[1].event)).toEqual({ id: 'ev', image: 'docker.io/library/busybox:latest', labels: { l: '1' }, snapshot_key: 'ev' });
    expect(fromAny(got[2].event)).toEqual({ id: 'ev' });
  });

  test('a container keeps the namespace from being deleted', async () => {
    const other = daemon.client('ctrns');
    try {
      await other.unary('containers', 'Create', { container: container('x') });
      expect((await failure(client.unary('namespaces', 'Delete', { name: 'ctrns' }))).details).toBe(
        'namespace "ctrns" must be empty, but it still has containers: failed precondition',
      );
      await other.unary('containers', 'Delete', { id: 'x' });
      await client.unary('namespaces', 'Delete', { name: 'ctrns' });
    } finally {
      other.close();
    }
  });
});
