// Snapshot records and their backend snapshots: removal takes the record at once and the
// backend snapshot just after; backend snapshots left without a record are reconciled away.
import * as fs from 'node:fs';
import * as path from 'node:path';
import pino from 'pino';
import { ContentStore } from '../../content-store';
import { Metadata } from '../../services/metadata';
import { OverlaySnapshotter, type Snapshotter } from '../../snapshotter';
import { tempDir } from '../helpers/daemon';

describe('metadata snapshots over the overlay backend', () => {
  let dir: string;
  let store: ContentStore;
  let backend: OverlaySnapshotter;
  let meta: Metadata | undefined;

  const open = () => Metadata.open(path.join(dir, 'meta'), store, pino({ level: 'silent' }), new Map<string, Snapshotter>([['overlayfs', backend]]));
  const backendKeys = async () => {
    const keys: string[] = [];
    await backend.walk((info) => {
      keys.push(info.name);
    });
    return keys.sort();
  };

  beforeEach(async () => {
    dir = tempDir('berth-meta-snap-');
    store = new ContentStore(path.join(dir, 'content'));
    backend = await OverlaySnapshotter.open(path.join(dir, 'overlay'));
    meta = await open();
  });
  afterEach(async () => {
    await meta?.close();
    await backend.close();
    store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('remove takes the record at once and the backend snapshot and its directory right after', async () => {
    const m = meta!;
    await m.snapshots.create('Active', 'n', 'overlayfs', 'layer', '', {});
    await m.snapshots.commit('n', 'overlayfs', 'base', 'layer', {});
    await m.snapshots.create('Active', 'n', 'overlayfs', 'ctr', 'base', {});
    expect(await backendKeys()).toHaveLength(2);
    await expect(m.snapshots.remove('n', 'overlayfs', 'base')).rejects.toThrow('cannot remove snapshot with child');

    await m.snapshots.remove('n', 'overlayfs', 'ctr');
    await m.snapshots.remove('n', 'overlayfs', 'base');
    expect(await m.snapshots.list('n', 'overlayfs')).toEqual([]);
    await m.snapshots.settled();
    expect(await backendKeys()).toEqual([]);
    expect(fs.readdirSync(path.join(dir, 'overlay', 'snapshots'))).toEqual([]);
  });

  test('backend snapshots no record names are removed at start-up and by a collection, children first', async () => {
    // a collection root, or the collection would (rightly) take it as garbage
    await meta!.snapshots.create('Active', 'n', 'overlayfs', 'kept', '', { 'containerd.io/gc.root': 'test' });
    const recorded = await backendKeys();
    // What a crash between a backend prepare and its record (or a removal and its sweep) leaves.
    await backend.prepare('stray-layer', '');
    await backend.commit('stray-base', 'stray-layer');
    await backend.prepare('stray-child', 'stray-base');
    await meta!.close();
    meta = undefined;

    meta = await open();
    expect(await backendKeys()).toEqual(recorded);
    expect((await meta.snapshots.list('n', 'overlayfs')).map((s) => s.name)).toEqual(['kept']);

    await backend.prepare('stray-later', '');
    const report = await meta.gc.collect();
    expect(report.snapshots).toEqual(['overlayfs/stray-later']);
    expect(await backendKeys()).toEqual(recorded);
    expect(await meta.snapshots.mounts('n', 'overlayfs', 'kept')).toHaveLength(1);
  });
});
