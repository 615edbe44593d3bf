// Pure parts of the snapshotter package: name cleaning, lowerdir compaction, where to apply for
// a set of mounts, the metadata store's all-or-nothing updates, and the error texts.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { isKind } from '../../services/errdefs';
import { applyTarget, cleanName } from '../../snapshotter/apply';
import * as errs from '../../snapshotter/errors';
import { MetaStore } from '../../snapshotter/metastore';
import { compactLowerdirOption } from '../../snapshotter/mount';
import { kindFromNumber, KIND_NUMBER } from '../../snapshotter/types';

let tmp: string;
beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-snapshot-unit-'));
});
afterEach(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

test('cleanName: lexical clean, .. stops at the root, absolute names become relative', () => {
  expect(cleanName('./a/b/')).toBe('a/b');
  expect(cleanName('../../etc/x')).toBe('etc/x');
  expect(cleanName('/etc/x')).toBe('etc/x');
  expect(cleanName('a/../../b')).toBe('b');
  expect(cleanName('a//./b/../c')).toBe('a/c');
  expect(cleanName('./')).toBe('');
  expect(cleanName('..')).toBe('');
});

test('compactLowerdirOption follows containerd (common parent of the lowerdirs, Go path.Dir)', () => {
  const lower = Array.from({ length: 12 }, (_, i) => `/var/lib/berth/snapshots/${i + 1}/fs`);
  expect(compactLowerdirOption(['index=off', `lowerdir=${lower.join(':')}`])).toEqual({
    chdir: '/var/lib/berth/snapshots/',
    options: ['index=off', `lowerdir=${lower.map((_, i) => `${i + 1}/fs`).join(':')}`],
  });
  // ids sharing a leading digit: the prefix ends inside a name and is cut back to the directory
  expect(compactLowerdirOption(['lowerdir=/s/11/fs:/s/12/fs']).chdir).toBe('/s/');
  expect(compactLowerdirOption(['lowerdir=/a/fs:/b/fs']).chdir).toBe('');
});

test('applyTarget: overlay upper dir with its lowers, rw bind source, otherwise a temporary mount', () => {
  expect(applyTarget([{ type: 'overlay', source: 'overlay', options: ['index=off', 'workdir=/r/2/work', 'upperdir=/r/2/fs', 'lowerdir=/r/1/fs:/r/0/fs'] }])).toEqual({
    dir: '/r/2/fs',
    mode: 'overlay',
    parents: ['/r/1/fs', '/r/0/fs'],
  });
  expect(applyTarget([{ type: 'bind', source: '/r/1/fs', options: ['rw', 'rbind'] }])).toEqual({ dir: '/r/1/fs', mode: 'plain', parents: [] });
  expect(applyTarget([{ type: 'bind', source: '/r/1/fs', options: ['ro', 'rbind'] }])).toBeUndefined();
  expect(applyTarget([{ type: 'overlay', source: 'overlay', options: ['lowerdir=/a:/b'] }])).toBeUndefined();
  expect(applyTarget([])).toBeUndefined();
});

test('MetaStore: an update is all or nothing, and survives a reopen', async () => {
  const ms = await MetaStore.open(tmp);
  await ms.update((d) => {
    d.snapshots.set('a', { id: '1', kind: 'Active', parent: '', labels: { x: 'y' }, created: 't', updated: 't' });
    d.nextId = 2;
  });
  const before = fs.readFileSync(path.join(tmp, 'metadata.json'), 'utf8');
  await expect(
    ms.update((d) => {
      d.snapshots.get('a')!.labels.x = 'changed';
      d.snapshots.delete('a');
      throw new Error('boom');
    }),
  ).rejects.toThrow('boom');
  expect(ms.get('a')?.labels).toEqual({ x: 'y' });
  expect(fs.readFileSync(path.join(tmp, 'metadata.json'), 'utf8')).toBe(before);
  // a temp file left by a crash is ignored
  fs.writeFileSync(path.join(tmp, 'metadata.json.tmp'), '{"half');
  const again = await MetaStore.open(tmp);
  expect(again.get('a')).toMatchObject({ id: '1', kind: 'Active' });
  expect(again.nextIdHint).toBe(2);
  // an unreadable file is an error, not an empty store
  fs.writeFileSync(path.join(tmp, 'metadata.json'), '{"version":');
  await expect(MetaStore.open(tmp)).rejects.toMatchObject({ kind: 'Internal' });
});

test('MetaStore: parent chains, children', async () => {
  const ms = await MetaStore.open(tmp);
  await ms.update((d) => {
    d.snapshots.set('c1', { id: '1', kind: 'Committed', parent: '', labels: {}, created: 't', updated: 't' });
    d.snapshots.set('c2', { id: '2', kind: 'Committed', parent: 'c1', labels: {}, created: 't', updated: 't' });
    d.snapshots.set('a', { id: '7', kind: 'Active', parent: 'c2', labels: {}, created: 't', updated: 't' });
  });
  expect(ms.parentIds('a')).toEqual(['2', '1']);
  expect(ms.parentIds('c1')).toEqual([]);
  expect(ms.hasChildren('c2')).toBe(true);
  expect(ms.hasChildren('a')).toBe(false);
  expect([...ms.ids()].sort()).toEqual(['1', '2', '7']);
});

test('error texts and kinds are containerd\'s', () => {
  const cases: Array<[Error, string, string]> = [
    [errs.snapshotNotFound('k'), 'NotFound', 'snapshot k does not exist: not found'],
    [errs.snapshotExists('k'), 'AlreadyExists', 'snapshot "k": already exists'],
    [errs.hasChildren(), 'FailedPrecondition', 'cannot remove snapshot with child: failed precondition'],
    [errs.parentNotCommitted('p'), 'InvalidArgument', 'parent "p" is not committed snapshot: invalid argument'],
    [errs.notActive('k'), 'FailedPrecondition', 'snapshot "k" is not active: failed precondition'],
    [errs.immutableField('parent', 'k'), 'InvalidArgument', 'cannot update "parent" field on snapshot "k": invalid argument'],
  ];
  for (const [err, kind, message] of cases) {
    expect(isKind(err, kind as never)).toBe(true);
    expect(err.message).toBe(message);
  }
  expect(KIND_NUMBER).toEqual({ View: 1, Active: 2, Committed: 3 });
  expect(kindFromNumber(2)).toBe('Active');
  expect(kindFromNumber(0)).toBeUndefined();
});
