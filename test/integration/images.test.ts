// The Images service over the wire: records, field-path updates, filters, events, and images as
// garbage-collection roots (a synchronous delete releases what only the image kept).
import type { Client } from '../../cli/client';
import { failure, putBlob, sha256 } from '../helpers/calls';
import { fromAny } from '../../proto/codec';
import { GrpcCode } from '../../services/errdefs';
import { cleanup, sleep, startDaemon, type TestDaemon } from '../helpers/daemon';

const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';


describe('images service', () => {
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

  const target = (digest: string, size = 100) => ({ media_type: MANIFEST, digest, size, annotations: {} });

  test('Create, Get, List with filters, Update by field path, Delete', async () => {
    const d = sha256('m1');
    const created = await client.unary('images', 'Create', { image: { name: 'docker.io/library/a:1', labels: { team: 'x' }, target: target(d) } });
    expect(created.image).toMatchObject({ name: 'docker.io/library/a:1', labels: { team: 'x' }, target: { digest: d, size: 100, media_type: MANIFEST } });
    expect(created.image.created_at.seconds).toBeGreaterThan(0);
    await client.unary('images', 'Create', { image: { name: 'docker.io/library/b:1', target: { ...target(sha256('m2')), annotations: { 'org.opencontainers.image.ref.name': '1' } } } });

    expect((await client.unary('images', 'Get', { name: 'docker.io/library/a:1' })).image.labels).toEqual({ team: 'x' });
    const byLabel = await client.unary('images', 'List', { filters: ['labels.team==x'] });
    expect(byLabel.images.map((i: any) => i.name)).toEqual(['docker.io/library/a:1']);
    const byName = await client.unary('images', 'List', { filters: ['name~=b:1$', `target.digest==${d}`] });
    expect(byName.images.map((i: any) => i.name).sort()).toEqual(['docker.io/library/a:1', 'docker.io/library/b:1']);
    const byAnnotation = await client.unary('images', 'List', { filters: ['annotations."org.opencontainers.image.ref.name"==1'] });
    expect(byAnnotation.images.map((i: any) => i.name)).toEqual(['docker.io/library/b:1']);

    const updated = await client.unary('images', 'Update', {
      image: { name: 'docker.io/library/a:1', labels: { extra: 'y' }, target: target(sha256('ignored')) },
      update_mask: { paths: ['labels.extra', 'labels.team'] },
    });
    expect(updated.image.labels).toEqual({ extra: 'y' });
    expect(updated.image.target.digest).toBe(d); // not in the mask
    // Without a mask the image is replaced (as ctr's pull does after AlreadyExists).
    const replaced = await client.unary('images', 'Update', { image: { name: 'docker.io/library/a:1', target: target(sha256('new'), 7) } });
    expect(replaced.image).toMatchObject({ labels: {}, target: { digest: sha256('new'), size: 7 } });
    expect(replaced.image.created_at).toEqual(created.image.created_at);

    await client.unary('images', 'Delete', { name: 'docker.io/library/a:1' });
    await client.unary('images', 'Delete', { name: 'docker.io/library/b:1' });
    expect((await client.unary('images', 'List', {})).images).toEqual([]);
  });

  test('errors are containerd\'s', async () => {
    expect(await failure(client.unary('images', 'Get', { name: 'busybox:nonexist' }))).toEqual({ code: GrpcCode.NotFound, details: 'image "busybox:nonexist": not found' });
    expect(await failure(client.unary('images', 'Delete', { name: 'busybox:nonexist', sync: true }))).toEqual({ code: GrpcCode.NotFound, details: 'image "busybox:nonexist": not found' });
    await client.unary('images', 'Create', { image: { name: 'dup', target: target(sha256('dup')) } });
    expect(await failure(client.unary('images', 'Create', { image: { name: 'dup', target: target(sha256('dup')) } }))).toEqual({
      code: GrpcCode.AlreadyExists,
      details: 'image "dup": already exists',
    });
    expect((await failure(client.unary('images', 'Create', { image: { name: '', target: target(sha256('x')) } }))).details).toBe('image name must not be empty: invalid argument');
    expect((await failure(client.unary('images', 'Create', { image: { name: 'n', target: { ...target('sha256:nope') } } }))).code).toBe(GrpcCode.InvalidArgument);
    expect((await failure(client.unary('images', 'Create', { image: { name: 'n', target: target(sha256('x'), 0) } }))).details).toBe(
      'Target.Size must be greater than zero: invalid argument',
    );
    expect((await failure(client.unary('images', 'Create', { image: { name: 'n', target: { ...target(sha256('x')), media_type: '' } } }))).details).toBe(
      'Target.MediaType must be set: invalid argument',
    );
    expect((await failure(client.unary('images', 'Update', { image: { name: 'dup', target: target(sha256('dup')) }, update_mask: { paths: ['name'] } }))).details).toBe(
      'cannot update "name" field on image "dup": invalid argument',
    );
    await client.unary('images', 'Delete', { name: 'dup' });
  });

  test('events /images/create, /images/update, /images/delete', async () => {
    const watcher = daemon.client('default');
    const got: any[] = [];
    const reading = (async () => {
      for await (const e of watcher.stream('events', 'Subscribe', { filters: ['topic~=|^/images/|'] })) {
        got.push(e);
        if (got.length === 3) break;
      }
    })();
    await sleep(100);
    await client.unary('images', 'Create', { image: { name: 'ev', labels: { a: 'b' }, target: target(sha256('ev')) } });
    await client.unary('images', 'Update', { image: { name: 'ev', target: target(sha256('ev2')) } });
    await client.unary('images', 'Delete', { name: 'ev' });
    await reading;
    watcher.close();
    expect(got.map((e) => [e.topic, e.event.type_url])).toEqual([
      ['/images/create', 'containerd.services.images.v1.ImageCreate'],
      ['/images/update', 'containerd.services.images.v1.ImageUpdate'],
      ['/images/delete', 'containerd.services.images.v1.ImageDelete'],
    ]);
    expect(fromAny(got[0].event)).toEqual({ name: 'ev', labels: { a: 'b' } });
    expect(fromAny(got[2].event)).toEqual({ name: 'ev' });
  });

  test('an image keeps its manifest and what the manifest references; a synchronous delete releases them', async () => {
    await client.unary('leases', 'Create', { id: 'pull' });
    const lease = { 'containerd-lease': 'pull' };
    const layer = await putBlob(client, 'l', 'layer', {}, lease);
    const config = await putBlob(client, 'c', '{"config":{}}', {}, lease);
    const manifest = await putBlob(client, 'm', 'manifest', { 'containerd.io/gc.ref.content.l.0': layer, 'containerd.io/gc.ref.content.config': config }, lease);
    await client.unary('images', 'Create', { image: { name: 'gc/img:1', target: target(manifest, 8) } });
    await client.unary('leases', 'Delete', { id: 'pull', sync: true });
    for (const d of [layer, config, manifest]) expect((await client.unary('content', 'Info', { digest: d })).info.digest).toBe(d);

    await client.unary('images', 'Delete', { name: 'gc/img:1', sync: true });
    for (const d of [layer, config, manifest]) expect((await failure(client.unary('content', 'Info', { digest: d }))).code).toBe(GrpcCode.NotFound);
  });

  test('a namespace holding images cannot be deleted', async () => {
    const other = daemon.client('imgns');
    try {
      await other.unary('images', 'Create', { image: { name: 'x', target: target(sha256('x')) } });
      expect((await failure(client.unary('namespaces', 'Delete', { name: 'imgns' }))).details).toBe(
        'namespace "imgns" must be empty, but it still has images: failed precondition',
      );
    } finally {
      other.close();
    }
  });
});
