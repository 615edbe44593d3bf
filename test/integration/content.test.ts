// The Content and Leases services over the wire: the Write session protocol, bad input,
// namespace isolation, reads, statuses, events, and garbage collection through leases.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Client } from '../../cli/client';
import { failure, putBlob as put, sha256, writeSession } from '../helpers/calls';
import { fromAny } from '../../proto/codec';
import { GrpcCode } from '../../services/errdefs';
import { cleanup, sleep, startDaemon, type TestDaemon } from '../helpers/daemon';



async function readAll(client: Client, digest: string, offset = 0, size = 0): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const m of client.stream('content', 'Read', { digest, offset, size })) parts.push(m.data);
  return Buffer.concat(parts);
}

describe('content service', () => {
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

  test('a Write session answers every message, sends its final reply twice, and commits', async () => {
    const data = Buffer.from('hello world\n');
    const replies = await writeSession(client, [
      { action: 'STAT', ref: 'w1', total: 12, expected: sha256(data) },
      { action: 'STAT' },
      { action: 'WRITE', data },
      { action: 'COMMIT', total: 12, expected: sha256(data), offset: 12, labels: { a: 'b' } },
    ]);
    expect(replies.map((r) => r.action)).toEqual(['STAT', 'STAT', 'WRITE', 'COMMIT', 'COMMIT']);
    expect(replies[0]).toMatchObject({ offset: 0, total: 12, digest: sha256('') });
    expect(replies[2]).toMatchObject({ offset: 12, digest: sha256(data) });
    expect(replies[4]).toEqual(replies[3]);
    const { info } = await client.unary('content', 'Info', { digest: sha256(data) });
    expect(info).toMatchObject({ digest: sha256(data), size: 12, labels: { a: 'b' } });
    expect(info.created_at.seconds).toBeGreaterThan(0);
    // The store holds the blob where an operator expects it.
    const blob = path.join(daemon.root, 'io.containerd.content.v1.content', 'blobs', 'sha256', sha256(data).slice(7));
    expect(fs.readFileSync(blob)).toEqual(data);
  });

  test('an expected digest already present is AlreadyExists on the first message', async () => {
    const d = await put(client, 'dup1', 'dup content');
    const r = await failure(writeSession(client, [{ action: 'STAT', ref: 'dup2', total: 11, expected: d }]));
    expect(r).toEqual({ code: GrpcCode.AlreadyExists, details: `content ${d}: already exists` });
  });

  test('wrong digest or size is FailedPrecondition and commits nothing; the ingest can be aborted', async () => {
    const data = Buffer.from('some bytes');
    const wrong = sha256('other');
    const r1 = await failure(
      writeSession(client, [
        { action: 'STAT', ref: 'bad-digest' },
        { action: 'WRITE', data },
        { action: 'COMMIT', offset: data.length, expected: wrong },
      ]),
    );
    expect(r1).toEqual({ code: GrpcCode.FailedPrecondition, details: `unexpected commit digest ${sha256(data)}, expected ${wrong}: failed precondition` });
    expect((await failure(client.unary('content', 'Info', { digest: sha256(data) }))).code).toBe(GrpcCode.NotFound);

    const r2 = await failure(
      writeSession(client, [
        { action: 'STAT', ref: 'bad-size', total: 99 },
        { action: 'WRITE', data },
        { action: 'COMMIT', offset: data.length },
      ]),
    );
    expect(r2).toEqual({ code: GrpcCode.FailedPrecondition, details: `"default/bad-size" failed size validation: 10 != 99: failed precondition` });
    expect((await failure(client.unary('content', 'Info', { digest: sha256(data) }))).code).toBe(GrpcCode.NotFound);

    // Both ingests are still there to resume or abort.
    const { statuses } = await client.unary('content', 'ListStatuses', { filters: ['ref~=^bad-'] });
    expect(statuses.map((s: any) => [s.ref, s.offset]).sort()).toEqual([
      ['bad-digest', 10],
      ['bad-size', 10],
    ]);
    await client.unary('content', 'Abort', { ref: 'bad-digest' });
    await client.unary('content', 'Abort', { ref: 'bad-size' });
    expect((await client.unary('content', 'ListStatuses', {})).statuses.filter((s: any) => s.ref.startsWith('bad-'))).toEqual([]);
    expect((await failure(client.unary('content', 'Abort', { ref: 'bad-size' }))).code).toBe(GrpcCode.NotFound);
  });

  test('malformed input: digests, missing ref, wrong offset', async () => {
    expect(await failure(client.unary('content', 'Info', { digest: 'sha256:xyz' }))).toEqual({
      code: GrpcCode.InvalidArgument,
      details: '"sha256:xyz" failed validation: invalid argument',
    });
    expect((await failure(client.unary('content', 'Info', { digest: `sha512:${'a'.repeat(128)}` }))).code).toBe(GrpcCode.InvalidArgument);
    expect((await failure(writeSession(client, [{ action: 'STAT', ref: 'x', expected: 'nope' }]))).code).toBe(GrpcCode.InvalidArgument);
    expect(await failure(writeSession(client, [{ action: 'STAT' }]))).toEqual({
      code: GrpcCode.InvalidArgument,
      details: 'first message must have a reference: invalid argument',
    });
    const r = await failure(
      writeSession(client, [
        { action: 'WRITE', ref: 'off', data: Buffer.from('abc') },
        { action: 'WRITE', offset: 7, data: Buffer.from('def') },
      ]),
    );
    expect(r).toEqual({ code: GrpcCode.OutOfRange, details: 'write @7 must occur at current offset 3: out of range' });
    await client.unary('content', 'Abort', { ref: 'off' });
  });

  test('a second writer on a ref being written is Unavailable until the first ends', async () => {
    const first = client.duplex('content', 'Write');
    const firstReplies = first.replies[Symbol.asyncIterator]();
    await first.write({ action: 'STAT', ref: 'locked' });
    await firstReplies.next();
    const r = await failure(writeSession(client, [{ action: 'STAT', ref: 'locked' }]));
    expect(r.code).toBe(GrpcCode.Unavailable);
    expect(r.details).toMatch(/^ref default\/locked locked for .* \(since .*\): unavailable$/);
    first.end();
    for await (const _ of { [Symbol.asyncIterator]: () => firstReplies }) {
      // drain
    }
    const replies = await writeSession(client, [{ action: 'STAT', ref: 'locked' }]);
    expect(replies).toHaveLength(1);
    await client.unary('content', 'Abort', { ref: 'locked' });
  });

  test('Read honours offset and size, with bounded chunks', async () => {
    const data = crypto.randomBytes(3 * 1024 * 1024 + 17);
    const d = await put(client, 'big', data);
    expect((await readAll(client, d)).equals(data)).toBe(true);
    expect((await readAll(client, d, 1000, 32768)).equals(data.subarray(1000, 1000 + 32768))).toBe(true);
    expect((await readAll(client, d, data.length - 5, 100)).equals(data.subarray(data.length - 5))).toBe(true);
    const chunks: number[] = [];
    for await (const m of client.stream('content', 'Read', { digest: d })) chunks.push(m.data.length);
    expect(Math.max(...chunks)).toBeLessThanOrEqual(1 << 20);
    expect(await failure(readAll(client, d, data.length + 1))).toEqual({
      code: GrpcCode.OutOfRange,
      details: `read past object length ${data.length} bytes: out of range`,
    });
  });

  test('Update by field path, List with filters, Delete with its event', async () => {
    const d = await put(client, 'upd', 'labelled', { keep: 'yes', drop: 'me' });
    const { info } = await client.unary('content', 'Update', {
      info: { digest: d, labels: { added: 'x' } },
      update_mask: { paths: ['labels.added', 'labels.drop'] },
    });
    expect(info.labels).toEqual({ keep: 'yes', added: 'x' });
    expect((await failure(client.unary('content', 'Update', { info: { digest: d }, update_mask: { paths: ['size'] } }))).details).toBe(
      `cannot update "size" field on content info "${d}": invalid argument`,
    );
    const listed: any[] = [];
    for await (const m of client.stream('content', 'List', { filters: ['labels.added==x'] })) listed.push(...m.info);
    expect(listed.map((i) => i.digest)).toEqual([d]);

    const events: any[] = [];
    const watcher = daemon.client('default');
    const reading = (async () => {
      for await (const e of watcher.stream('events', 'Subscribe', { filters: ['topic=="/content/delete"'] })) {
        events.push(e);
        break;
      }
    })();
    await sleep(100);
    await client.unary('content', 'Delete', { digest: d });
    await reading;
    watcher.close();
    expect(events[0].namespace).toBe('default');
    expect(fromAny(events[0].event)).toEqual({ digest: d });
    expect((await failure(client.unary('content', 'Delete', { digest: d }))).code).toBe(GrpcCode.NotFound);
  });

  test('namespaces are isolated: a blob committed in one is not visible in another until written there', async () => {
    const other = daemon.client('isolated');
    try {
      // gc.root: an unreferenced blob may be collected by a garbage collection another test set off
      const root = { 'containerd.io/gc.root': 'test' };
      const d = await put(client, 'shared', 'shared bytes', root);
      expect((await failure(other.unary('content', 'Info', { digest: d }))).code).toBe(GrpcCode.NotFound);
      // Writing it in the other namespace works (the store already has the blob) and records it there.
      await put(other, 'shared', 'shared bytes', { ns: 'isolated', ...root });
      expect((await other.unary('content', 'Info', { digest: d })).info.labels).toEqual({ ns: 'isolated', ...root });
      expect((await client.unary('content', 'Info', { digest: d })).info.labels).toEqual(root);
    } finally {
      other.close();
    }
  });

  test('a call without a namespace is FailedPrecondition', async () => {
    const bare = daemon.client('');
    try {
      expect((await failure(bare.unary('content', 'ListStatuses', {}))).code).toBe(GrpcCode.FailedPrecondition);
    } finally {
      bare.close();
    }
  });
});

describe('leases and garbage collection', () => {
  let daemon: TestDaemon;
  let client: Client;
  const blobPath = (d: string) => path.join(daemon.root, 'io.containerd.content.v1.content', 'blobs', 'sha256', d.slice(7));

  beforeAll(async () => {
    daemon = await startDaemon();
    client = daemon.client('gc');
  });
  afterAll(async () => {
    client?.close();
    await cleanup(daemon);
  });

  test('Create (given or generated id), List with filters, resources, Delete', async () => {
    const { lease } = await client.unary('leases', 'Create', { id: 'l1', labels: { team: 'a', empty: '' } });
    expect(lease).toMatchObject({ id: 'l1', labels: { team: 'a' } });
    const generated = (await client.unary('leases', 'Create', {})).lease.id;
    expect(generated).toMatch(/^\d+-[A-Za-z0-9_-]{4}$/);
    expect(await failure(client.unary('leases', 'Create', { id: 'l1' }))).toEqual({ code: GrpcCode.AlreadyExists, details: 'lease "l1": already exists' });
    const filtered = await client.unary('leases', 'List', { filters: ['labels.team==a'] });
    expect(filtered.leases.map((l: any) => l.id)).toEqual(['l1']);

    const digest = sha256('x');
    await client.unary('leases', 'AddResource', { id: 'l1', resource: { id: digest, type: 'content' } });
    await client.unary('leases', 'AddResource', { id: 'l1', resource: { id: 'snap1', type: 'snapshots/overlayfs' } });
    expect((await client.unary('leases', 'ListResources', { id: 'l1' })).resources).toEqual(
      expect.arrayContaining([
        { id: digest, type: 'content' },
        { id: 'snap1', type: 'snapshots/overlayfs' },
      ]),
    );
    expect((await failure(client.unary('leases', 'AddResource', { id: 'l1', resource: { id: 'nope', type: 'content' } }))).code).toBe(GrpcCode.InvalidArgument);
    expect((await failure(client.unary('leases', 'AddResource', { id: 'l1', resource: { id: 'x', type: 'images' } }))).code).toBe(GrpcCode.Unimplemented);
    await client.unary('leases', 'DeleteResource', { id: 'l1', resource: { id: 'snap1', type: 'snapshots/overlayfs' } });
    expect((await client.unary('leases', 'ListResources', { id: 'l1' })).resources).toEqual([{ id: digest, type: 'content' }]);
    await client.unary('leases', 'Delete', { id: 'l1' });
    await client.unary('leases', 'Delete', { id: generated });
    expect(await failure(client.unary('leases', 'Delete', { id: 'l1', sync: true }))).toEqual({ code: GrpcCode.NotFound, details: 'lease "l1": not found' });
  });

  test('deleting a lease with sync removes what it alone held and keeps what labels still reference', async () => {
    await client.unary('leases', 'Create', { id: 'pull' });
    const lease = { 'containerd-lease': 'pull' };
    const layer = await put(client, 'layer', 'layer bytes', {}, lease);
    const orphan = await put(client, 'orphan', 'nobody wants me', {}, lease);
    // A root (gc.root) that references the layer through a gc.ref.content label.
    const manifest = await put(client, 'manifest', 'manifest bytes', { 'containerd.io/gc.root': 'now', 'containerd.io/gc.ref.content.l.0': layer }, lease);
    expect((await client.unary('leases', 'ListResources', { id: 'pull' })).resources.map((r: any) => r.id).sort()).toEqual([layer, manifest, orphan].sort());

    await client.unary('leases', 'Delete', { id: 'pull', sync: true });
    // Gone before the call returned: the record and the blob file.
    expect((await failure(client.unary('content', 'Info', { digest: orphan }))).code).toBe(GrpcCode.NotFound);
    expect(fs.existsSync(blobPath(orphan))).toBe(false);
    // Kept: the root and what it references.
    expect((await client.unary('content', 'Info', { digest: manifest })).info.size).toBe(14);
    expect((await readAll(client, layer)).toString()).toBe('layer bytes');
    expect(fs.existsSync(blobPath(layer))).toBe(true);

    // Dropping the root label lets the next collection take both.
    await client.unary('content', 'Update', { info: { digest: manifest, labels: {} }, update_mask: { paths: ['labels.containerd.io/gc.root'] } });
    await client.unary('leases', 'Create', { id: 'tmp' });
    await client.unary('leases', 'Delete', { id: 'tmp', sync: true });
    expect((await failure(client.unary('content', 'Info', { digest: manifest }))).code).toBe(GrpcCode.NotFound);
    expect((await failure(client.unary('content', 'Info', { digest: layer }))).code).toBe(GrpcCode.NotFound);
    expect(fs.existsSync(blobPath(layer))).toBe(false);
  });

  test('a blob referenced from another namespace survives collection in this one', async () => {
    const other = daemon.client('gc-other');
    try {
      const d = await put(other, 'keep', 'kept elsewhere', { 'containerd.io/gc.root': 'x' });
      await client.unary('leases', 'Create', { id: 'p2' });
      await put(client, 'keep', 'kept elsewhere', {}, { 'containerd-lease': 'p2' });
      await client.unary('leases', 'Delete', { id: 'p2', sync: true });
      expect((await failure(client.unary('content', 'Info', { digest: d }))).code).toBe(GrpcCode.NotFound);
      expect((await readAll(other, d)).toString()).toBe('kept elsewhere');
    } finally {
      other.close();
    }
  });

  test('an ingest under a lease is attached to it and dropped when the lease goes', async () => {
    await client.unary('leases', 'Create', { id: 'ing' });
    const headers = { 'containerd-lease': 'ing' };
    await writeSession(client, [{ action: 'WRITE', ref: 'half', data: Buffer.from('half of it') }], headers);
    expect((await client.unary('leases', 'ListResources', { id: 'ing' })).resources).toEqual([{ id: 'half', type: 'ingests' }]);
    await client.unary('leases', 'Delete', { id: 'ing', sync: true });
    expect((await failure(client.unary('content', 'Status', { ref: 'half' }))).code).toBe(GrpcCode.NotFound);
    // A write under a lease that does not exist is refused.
    expect((await failure(writeSession(client, [{ action: 'STAT', ref: 'r' }], { 'containerd-lease': 'ghost' }))).code).toBe(GrpcCode.NotFound);
  });

  test('an expired lease no longer protects what it held', async () => {
    const past = new Date(Date.now() - 1000).toISOString();
    await client.unary('leases', 'Create', { id: 'old', labels: { 'containerd.io/gc.expire': past } });
    const d = await put(client, 'exp', 'expiring', {}, { 'containerd-lease': 'old' });
    await client.unary('leases', 'Create', { id: 'trigger' });
    await client.unary('leases', 'Delete', { id: 'trigger', sync: true });
    expect((await failure(client.unary('content', 'Info', { digest: d }))).code).toBe(GrpcCode.NotFound);
    expect((await client.unary('leases', 'List', {})).leases.map((l: any) => l.id)).not.toContain('old');
  });

  test('a namespace holding blobs cannot be deleted; with only leases it can', async () => {
    const ns = daemon.client('busy');
    try {
      const d = await put(ns, 'b', 'busy blob', { 'containerd.io/gc.root': 'x' });
      expect(await failure(client.unary('namespaces', 'Delete', { name: 'busy' }))).toEqual({
        code: GrpcCode.FailedPrecondition,
        details: 'namespace "busy" must be empty, but it still has blobs: failed precondition',
      });
      await ns.unary('content', 'Delete', { digest: d });
      await ns.unary('leases', 'Create', { id: 'only-lease' });
      await client.unary('namespaces', 'Delete', { name: 'busy' });
      expect((await client.unary('namespaces', 'List', {})).namespaces.map((n: any) => n.name)).not.toContain('busy');
    } finally {
      ns.close();
    }
  });
});
