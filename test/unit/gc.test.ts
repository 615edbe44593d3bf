// Garbage collection over a real metadata database and content store (no daemon).
import * as fs from 'node:fs';
import * as path from 'node:path';
import pino from 'pino';
import { ContentStore, digestOf } from '../../content-store';
import { Metadata } from '../../services/metadata';
import { tempDir } from '../helpers/daemon';

describe('garbage collection', () => {
  let dir: string;
  let store: ContentStore;
  let meta: Metadata;

  beforeEach(async () => {
    dir = tempDir('berth-gc-');
    store = new ContentStore(path.join(dir, 'content'));
    meta = await Metadata.open(path.join(dir, 'meta'), store, pino({ level: 'silent' }));
  });
  afterEach(async () => {
    await meta.close();
    store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  async function put(ns: string, data: string, labels: Record<string, string> = {}): Promise<string> {
    const w = await meta.content.writer(ns, `ref-${data}`, {});
    await w.write(Buffer.from(data));
    await w.commit(0, undefined, labels);
    return digestOf(Buffer.from(data));
  }

  test('images are roots: their target and what its labels reference are kept', async () => {
    const config = await put('n', 'config');
    const manifest = await put('n', 'manifest', { 'containerd.io/gc.ref.content.config': config });
    const loose = await put('n', 'loose');
    await meta.db.update((tx) => tx.putObject('n', 'images', 'docker.io/library/x:latest', { target: { digest: manifest }, labels: {} }));
    const report = await meta.gc.collect();
    expect(report.content).toEqual([{ namespace: 'n', digest: loose }]);
    expect(report.blobs).toEqual([loose]);
    expect(await store.exists(manifest)).toBe(true);
    expect(await store.exists(config)).toBe(true);
  });

  test('a blob being read is not removed until the read ends', async () => {
    const d = await put('n', 'being read');
    const stream = await meta.content.read('n', d, 0, 0);
    let report = await meta.gc.collect();
    expect(report.content).toEqual([{ namespace: 'n', digest: d }]); // the record goes…
    expect(report.blobs).toEqual([]); // …but not the blob under the reader
    const chunks: Buffer[] = [];
    for await (const c of stream) chunks.push(c as Buffer);
    expect(Buffer.concat(chunks).toString()).toBe('being read');
    await new Promise((r) => setImmediate(r));
    report = await meta.gc.collect();
    expect(report.blobs).toEqual([d]);
  });

  test('gc.ref.content labels may use "." or "/" after the prefix, and nothing else', async () => {
    const a = await put('n', 'a');
    const b = await put('n', 'b');
    const c = await put('n', 'c');
    await put('n', 'root', {
      'containerd.io/gc.root': '1',
      'containerd.io/gc.ref.content.x': a,
      'containerd.io/gc.ref.content/y': b,
      'containerd.io/gc.ref.contentz': c,
    });
    const report = await meta.gc.collect();
    expect(report.content.map((x) => x.digest)).toEqual([c]);
  });
});
