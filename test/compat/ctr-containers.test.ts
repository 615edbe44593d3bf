// containerd's `ctr` managing container records in berthd, for both runtimes (Berth's shim and
// containerd's runc shim): containers create IMAGE ID (ctr prepares the snapshot from the pulled
// image), ls, info, a task started from the record, rm (record and snapshot); and the berth CLI
// reading what ctr created. Nothing is left behind.
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import { promisify } from 'node:util';
import { assertNothingLeft, BERTH, cleanup, startDaemon, type TestDaemon } from '../helpers/daemon';
import { buildImage, skopeoCopy, type TestImage } from '../helpers/images';
import { startRegistry, type TestRegistry } from '../helpers/registry';

const run = promisify(execFile);
const CTR = process.env.CTR ?? '/usr/bin/ctr';
const NS = 'ctr-containers';
const RUNC_AVAILABLE = fs.existsSync('/usr/bin/runc') && fs.existsSync('/usr/bin/containerd-shim-runc-v2');
const RUNTIMES = [
  { name: 'io.containerd.berth.v1', id: 'cb' },
  ...(RUNC_AVAILABLE ? [{ name: 'io.containerd.runc.v2', id: 'cr' }] : []),
];

(fs.existsSync(CTR) && process.getuid?.() === 0 ? describe : describe.skip)('ctr containers create, ls, info, rm against berthd', () => {
  let daemon: TestDaemon;
  let registry: TestRegistry;
  let image: TestImage;
  let ref: string;
  const ids = [...RUNTIMES.map((r) => r.id), 'cd'];
  const ctr = async (...args: string[]) => (await run(CTR, ['--address', daemon.address, '-n', NS, ...args], { timeout: 60_000 })).stdout;
  const berth = async (...args: string[]) => (await run(process.execPath, [BERTH, '--address', daemon.address, '--namespace', NS, ...args], { timeout: 60_000 })).stdout;
  const activeSnapshots = async () =>
    (await ctr('snapshots', 'ls'))
      .split('\n')
      .slice(1)
      .filter((l) => /\sActive\s*$/.test(l))
      .map((l) => l.trim().split(/\s+/)[0]);

  beforeAll(async () => {
    registry = await startRegistry();
    image = await buildImage();
    ref = `${registry.host}/test/busybox:1`;
    await skopeoCopy(image, ref);
    daemon = await startDaemon();
    await ctr('images', 'pull', '--plain-http', ref);
  });
  afterAll(async () => {
    for (const id of ids) {
      await ctr('tasks', 'rm', '-f', id).catch(() => undefined);
      await ctr('containers', 'rm', id).catch(() => undefined);
    }
    try {
      await assertNothingLeft(daemon, { namespaces: [NS], ids });
    } finally {
      await cleanup(daemon);
      await registry?.stop();
      image?.remove();
    }
  });

  test.each(RUNTIMES)('$name: create, ls, info, a task from the record, rm', async ({ name, id }) => {
    await ctr('containers', 'create', '--runtime', name, ref, id, '/bin/busybox', 'echo', `hello-${id}`);

    const ls = (await ctr('containers', 'ls')).split('\n');
    expect(ls[0]).toMatch(/^CONTAINER\s+IMAGE\s+RUNTIME\s*$/);
    expect(ls.find((l) => l.startsWith(`${id} `))).toMatch(new RegExp(`^${id}\\s+${ref.replace(/\./g, '\\.')}\\s+${name.replace(/\./g, '\\.')}\\s*$`));
    expect((await ctr('containers', 'ls', '-q')).split('\n')).toContain(id);

    const info = JSON.parse(await ctr('containers', 'info', id));
    expect(info).toMatchObject({ ID: id, Image: ref, Runtime: { Name: name }, Snapshotter: 'overlayfs', SnapshotKey: id });
    expect(info.Spec.process.args).toEqual(['/bin/busybox', 'echo', `hello-${id}`]);
    expect(info.Spec.linux.cgroupsPath).toBe(`/${NS}/${id}`);
    expect(await activeSnapshots()).toContain(id);

    // the berth CLI reads the same record
    expect((await berth('containers', 'ls')).split('\n').find((l) => l.startsWith(`${id} `))).toMatch(new RegExp(`^${id}\\s+\\S+\\s+${name.replace(/\./g, '\\.')}\\s+io\\.containerd\\.image\\.config\\.stop-signal=SIGTERM$`));
    expect(JSON.parse(await berth('containers', 'info', id)).spec.process.args).toEqual(['/bin/busybox', 'echo', `hello-${id}`]);

    // the record is runnable: ctr starts its task in the foreground, which deletes the task at exit
    expect(await ctr('tasks', 'start', id)).toBe(`hello-${id}\n`);
    expect((await ctr('tasks', 'ls', '-q')).split('\n')).not.toContain(id);

    await ctr('containers', 'rm', id);
    expect((await ctr('containers', 'ls', '-q')).split('\n')).not.toContain(id);
    expect(await activeSnapshots()).not.toContain(id);
    await expect(run(CTR, ['--address', daemon.address, '-n', NS, 'containers', 'info', id])).rejects.toMatchObject({
      stderr: expect.stringContaining(`container "${id}" in namespace "${NS}": not found`),
    });
  });

  test('a container berth run -d created with the default runtime: ctr sees io.containerd.berth.v1, and removes it once stopped', async () => {
    const id = 'cd';
    await berth('run', '-d', ref, id, '/bin/busybox', 'sleep', '1000');
    expect(JSON.parse(await ctr('containers', 'info', id)).Runtime.Name).toBe('io.containerd.berth.v1');
    await ctr('tasks', 'kill', '-s', 'SIGKILL', id);
    await ctr('tasks', 'rm', '-f', id).catch(() => undefined);
    await ctr('containers', 'rm', id);
    expect((await ctr('containers', 'ls', '-q')).split('\n')).not.toContain(id);
    expect(await activeSnapshots()).not.toContain(id);
  });
});
