// containerd's `ctr` pulling from a real registry (Debian's docker-registry on 127.0.0.1)
// through berthd — ctr fetches, berthd stores and unpacks (Content.Write, Images, Leases,
// Snapshots, Diff.Apply) — then images ls/check/tag/rm, and running the image with
// containerd's runc shim.
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import { promisify } from 'node:util';
import { assertNothingLeft, cleanup, startDaemon, type TestDaemon } from '../helpers/daemon';
import { buildImage, skopeoCopy, type TestImage } from '../helpers/images';
import { startRegistry, type TestRegistry } from '../helpers/registry';

const run = promisify(execFile);
const CTR = process.env.CTR ?? '/usr/bin/ctr';
const RUNC_AVAILABLE = fs.existsSync('/usr/bin/runc') && fs.existsSync('/usr/bin/containerd-shim-runc-v2');

describe('ctr against berthd: images pull --plain-http, check, ls, tag, rm, run', () => {
  let daemon: TestDaemon;
  let registry: TestRegistry;
  let image: TestImage;
  let ref: string;
  const ctr = async (...args: string[]) => (await run(CTR, ['--address', daemon.address, ...args], { timeout: 60_000 })).stdout;

  beforeAll(async () => {
    registry = await startRegistry();
    image = await buildImage({ layers: 2 });
    ref = `${registry.host}/test/busybox:latest`;
    await skopeoCopy(image, ref);
    daemon = await startDaemon();
  });
  afterAll(async () => {
    await ctr('tasks', 'rm', '-f', 'p1').catch(() => undefined);
    await ctr('containers', 'rm', 'p1').catch(() => undefined);
    try {
      await assertNothingLeft(daemon, { ids: ['p1'] }); // also the namespace's empty cgroup parents runc leaves
    } finally {
      await cleanup(daemon);
    }
    await registry?.stop();
    image?.remove();
  });

  test('pull stores every blob with containerd\'s labels and unpacks the layers', async () => {
    await ctr('images', 'pull', '--plain-http', ref);
    const ls = (await ctr('images', 'ls')).split('\n').find((l) => l.startsWith(ref))!;
    expect(ls).toContain(image.root.digest);
    const check = (await ctr('images', 'check')).split('\n').find((l) => l.startsWith(ref))!;
    expect(check).toMatch(/complete \(3\/3\)/);
    expect(check.trim()).toMatch(/true$/); // unpacked
    const manifest = image.manifests[0];
    const info = await ctr('content', 'ls');
    const line = (d: string) => info.split('\n').find((l) => l.startsWith(d)) ?? '';
    expect(line(manifest.descriptor.digest)).toContain(`containerd.io/gc.ref.content.config=${manifest.config.digest}`);
    expect(line(manifest.descriptor.digest)).toContain(`containerd.io/gc.ref.content.l.1=${manifest.layers[1].digest}`);
    expect(line(manifest.layers[0].digest)).toContain(`containerd.io/uncompressed=${manifest.diffIDs[0]}`);
    expect(line(manifest.config.digest)).toMatch(/containerd\.io\/gc\.ref\.snapshot\.overlayfs=sha256:[0-9a-f]{64}/);
    // Two committed snapshots: the chain of the two layers.
    const snaps = (await ctr('snapshots', 'ls')).split('\n').slice(1).filter(Boolean);
    expect(snaps).toHaveLength(2);
    expect(snaps.every((l) => /Committed\s*$/.test(l))).toBe(true);
    expect(await ctr('leases', 'ls', '-q')).toBe('');
  });

  test('pulling again downloads nothing new and keeps one image', async () => {
    await ctr('images', 'pull', '--plain-http', ref);
    expect((await ctr('images', 'ls', '-q')).split('\n').filter(Boolean)).toEqual([ref]);
  });

  (RUNC_AVAILABLE ? test : test.skip)('run --rm of the pulled image (runc shim) prints its output', async () => {
    const out = await ctr('run', '--rm', ref, 'p1', '/bin/busybox', 'sh', '-c', 'echo pulled-and-running; cat /etc/hostname 2>/dev/null; ls /');
    expect(out.split('\n')[0]).toBe('pulled-and-running');
    expect((await ctr('containers', 'ls', '-q')).trim()).toBe('');
    expect((await ctr('snapshots', 'ls')).split('\n').slice(1).filter(Boolean)).toHaveLength(2); // the container's snapshot is gone
  });

  test('tag and rm; rm --sync of the last name releases content and snapshots', async () => {
    await ctr('images', 'tag', ref, 'test.local/copy:1');
    expect((await ctr('images', 'ls', '-q')).split('\n').filter(Boolean).sort()).toEqual([ref, 'test.local/copy:1'].sort());
    await ctr('images', 'rm', 'test.local/copy:1');
    await ctr('images', 'rm', '--sync', ref);
    expect(await ctr('images', 'ls', '-q')).toBe('');
    expect(await ctr('content', 'ls', '-q')).toBe('');
    expect((await ctr('snapshots', 'ls')).split('\n').slice(1).filter(Boolean)).toEqual([]);
  });
});
