import * as fs from 'node:fs';
import { MetadataDB, objectKey } from '../../services/metadata/db';
import { NamespaceStore } from '../../services/metadata/namespaces';
import { tempDir } from '../helpers/daemon';

describe('metadata', () => {
  let dir: string;
  let db: MetadataDB;
  let store: NamespaceStore;

  beforeEach(async () => {
    dir = tempDir('berth-meta-');
    db = await MetadataDB.open(dir);
    store = new NamespaceStore(db);
  });
  afterEach(async () => {
    await db.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('an update commits all its writes together, or none when it throws', async () => {
    await expect(
      db.update(async (tx) => {
        await store.create(tx, 'a', {});
        await store.create(tx, 'b', {});
        throw new Error('abort');
      }),
    ).rejects.toThrow('abort');
    expect(await store.list()).toEqual([]);
    await db.update(async (tx) => {
      await store.create(tx, 'a', {});
      await store.create(tx, 'b', {});
    });
    expect((await store.list()).map((n) => n.name)).toEqual(['a', 'b']);
  });

  test('a transaction reads its own pending writes', async () => {
    await db.update(async (tx) => {
      await store.create(tx, 'a', { x: '1' });
      await expect(store.create(tx, 'a', {})).rejects.toThrow('namespace "a": already exists');
      await store.setLabel(tx, 'a', 'y', '2');
      expect(await tx.get('ns/a')).toEqual({ labels: { x: '1', y: '2' } });
    });
  });

  test('the first write of an object brings its namespace into being', async () => {
    expect(await store.exists('fresh')).toBe(false);
    await db.update(async (tx) => tx.putObject('fresh', 'images', 'docker.io/library/busybox:latest', { x: 1 }));
    expect(await store.exists('fresh')).toBe(true);
  });

  test('a namespace holding images, blobs, containers or snapshots cannot be deleted; leases go with it', async () => {
    await db.update(async (tx) => {
      await tx.putObject('busy', 'images', 'img', {});
      await tx.putObject('busy', 'content', 'sha256:abc', {});
      await tx.putObject('busy', 'snapshots/overlayfs/key', 'k', {});
      await tx.putObject('busy', 'leases', 'l1', {});
    });
    await expect(db.update((tx) => store.delete(tx, 'busy'))).rejects.toThrow(
      'namespace "busy" must be empty, but it still has images, blobs, snapshots on "overlayfs" snapshotter: failed precondition',
    );
    await db.update(async (tx) => {
      tx.del(objectKey('busy', 'images', 'img'));
      tx.del(objectKey('busy', 'content', 'sha256:abc'));
      tx.del(objectKey('busy', 'snapshots/overlayfs/key', 'k'));
    });
    await db.update((tx) => store.delete(tx, 'busy'));
    expect(await store.exists('busy')).toBe(false);
    expect(await db.hasPrefix('o/busy/')).toBe(false);
  });

  test('deleting an unknown namespace is NotFound', async () => {
    await expect(db.update((tx) => store.delete(tx, 'nope'))).rejects.toThrow('namespace "nope": not found');
  });

  test('writers are serialised: concurrent read-modify-write updates lose nothing', async () => {
    await db.update((tx) => store.create(tx, 'c', {}));
    await Promise.all(Array.from({ length: 50 }, (_, i) => db.update((tx) => store.setLabel(tx, 'c', `k${i}`, String(i)))));
    expect(Object.keys(await store.labels('c'))).toHaveLength(50);
  });

  test('scans see keys with any characters, in order, and nothing past the prefix', async () => {
    await db.update(async (tx) => {
      await tx.putObject('n', 'images', 'b/ü:1', 1);
      await tx.putObject('n', 'images', 'a', 2);
      await tx.putObject('n', 'imagesx', 'z', 3);
      await tx.putObject('n', 'images', '\u4e2d', 4);
    });
    const keys: string[] = [];
    for await (const [k] of db.scan('o/n/images/')) keys.push(k);
    expect(keys).toEqual(['a', 'b/ü:1', '\u4e2d']);
  });

  test('what is committed is on disk as JSON and read back after a reopen, in the same order', async () => {
    await db.update(async (tx) => {
      for (let i = 0; i < 100; i++) await tx.putObject('r', 'content', `sha256:${String(i).padStart(3, '0')}`, { size: i });
      await tx.putObject('r', 'images', 'img', { target: { digest: 'sha256:x' } });
    });
    await db.update(async (tx) => {
      tx.del(objectKey('r', 'content', 'sha256:050'));
      tx.put(objectKey('r', 'content', 'sha256:001'), { size: 1001 });
    });
    await db.close();
    // level itself (not our copy of it) holds the JSON text
    const { Level } = await import('level');
    const raw = new Level<string, string>(dir, { valueEncoding: 'utf8' });
    expect(await raw.get(objectKey('r', 'images', 'img'))).toBe('{"target":{"digest":"sha256:x"}}');
    expect(await raw.get(objectKey('r', 'content', 'sha256:050'))).toBeUndefined();
    await raw.close();

    db = await MetadataDB.open(dir);
    const sizes: number[] = [];
    for await (const [, rec] of db.scan<{ size: number }>('o/r/content/')) sizes.push(rec.size);
    expect(sizes).toHaveLength(99);
    expect(sizes.slice(0, 3)).toEqual([0, 1001, 2]);
    expect(await db.hasPrefix('o/r/images/')).toBe(true);
    expect(await db.hasPrefix('o/r/leases/')).toBe(false);
  });

  test('a failed update leaves nothing behind, a scan sees the state it began in, and a read is a copy', async () => {
    await db.update(async (tx) => tx.putObject('m', 'images', 'a', { n: 1 }));
    await expect(
      db.update(async (tx) => {
        await tx.putObject('m', 'images', 'b', {});
        throw new Error('abort');
      }),
    ).rejects.toThrow('abort');
    expect(await db.get(objectKey('m', 'images', 'b'))).toBeUndefined();

    const seen: string[] = [];
    for await (const [k] of db.scan('o/m/images/')) {
      seen.push(k);
      // many writes at once (the bulk path) while the scan is under way
      await db.update(async (tx) => {
        for (let i = 0; i < 100; i++) tx.put(objectKey('m', 'images', `z${i}`), {});
        tx.del(objectKey('m', 'images', 'a'));
      });
    }
    expect(seen).toEqual(['a']);
    const keys: string[] = [];
    for await (const [k] of db.scan('o/m/images/')) keys.push(k);
    expect(keys).toHaveLength(100);
    expect(keys[0]).toBe('z0');
    expect(keys).toEqual([...keys].sort());

    const first = await db.get<{ n?: number }>(objectKey('m', 'images', 'z1'));
    first!.n = 5;
    expect(await db.get(objectKey('m', 'images', 'z1'))).toEqual({});
  });

  test('a second open of the same directory is refused clearly', async () => {
    await expect(MetadataDB.open(dir)).rejects.toThrow(/is locked: is another berthd running with the same root/);
  });
});
