// containerd's `ctr` against berthd: the image commands that work on recorded images
// (pull, check and unpack need snapshots and are covered with them).
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { cleanup, startDaemon, type TestDaemon } from '../helpers/daemon';
import { createLocalImage, type LocalImage } from '../helpers/local-image';

const run = promisify(execFile);
const CTR = process.env.CTR ?? '/usr/bin/ctr';

describe('ctr against berthd: images ls, tag, rm', () => {
  let daemon: TestDaemon;
  let image: LocalImage;
  const ctr = async (...args: string[]) => (await run(CTR, ['--address', daemon.address, ...args], { timeout: 20_000 })).stdout;

  beforeAll(async () => {
    daemon = await startDaemon();
    const client = daemon.client();
    try {
      image = await createLocalImage(client, 'test.local/busybox:1');
    } finally {
      client.close();
    }
  });
  afterAll(async () => {
    await cleanup(daemon);
  });

  test('images ls shows the image with its size and platform', async () => {
    const line = (await ctr('images', 'ls')).split('\n').find((l) => l.startsWith('test.local/busybox:1'))!;
    const cols = line.trim().split(/\s+/);
    expect(cols[0]).toBe('test.local/busybox:1');
    expect(cols[1]).toBe('application/vnd.oci.image.manifest.v1+json');
    expect(cols[2]).toBe(image.manifest.digest);
    expect(line).toMatch(/KiB|MiB/);
    expect(line).toContain(`linux/${process.arch === 'x64' ? 'amd64' : process.arch}`);
  });

  test('images tag, then rm of the tag leaves the original', async () => {
    await ctr('images', 'tag', 'test.local/busybox:1', 'test.local/busybox:tagged');
    expect((await ctr('images', 'ls', '-q')).split('\n').filter(Boolean).sort()).toEqual(['test.local/busybox:1', 'test.local/busybox:tagged']);
    await ctr('images', 'rm', 'test.local/busybox:tagged');
    expect((await ctr('images', 'ls', '-q')).split('\n').filter(Boolean)).toEqual(['test.local/busybox:1']);
    // ctr reports a missing image on stderr (and still exits 0)
    const missing = await run(CTR, ['--address', daemon.address, 'images', 'rm', '--sync', 'test.local/busybox:nonexist']).then(
      (r) => r.stderr,
      (e) => String(e.stderr),
    );
    expect(missing).toContain('test.local/busybox:nonexist: image not found'); // ctr's own wording after NotFound
  });

  test('images rm --sync of the last image releases its content', async () => {
    await ctr('images', 'rm', '--sync', 'test.local/busybox:1');
    expect(await ctr('content', 'ls', '-q')).toBe('');
  });
});
