// berth run as an operator uses it: the image is pulled when missing, output and exit status
// arrive, stdin is relayed and closed, -d leaves the task running, --rm removes everything.
import { execFile, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { promisify } from 'node:util';
import { BERTH, cleanup, startDaemon, type TestDaemon } from '../helpers/daemon';
import { buildImage, skopeoCopy, type TestImage } from '../helpers/images';
import { startRegistry, type TestRegistry } from '../helpers/registry';

const run = promisify(execFile);
const RUNC_AVAILABLE = fs.existsSync('/usr/bin/runc') && fs.existsSync('/usr/bin/containerd-shim-runc-v2');

(RUNC_AVAILABLE ? describe : describe.skip)('berth run (runc runtime)', () => {
  let daemon: TestDaemon;
  let registry: TestRegistry;
  let image: TestImage;
  let ref: string;
  const berth = async (...args: string[]) => (await run(process.execPath, [BERTH, '--address', daemon.address, ...args], { timeout: 60_000 })).stdout;

  beforeAll(async () => {
    registry = await startRegistry();
    image = await buildImage();
    ref = `${registry.host}/test/busybox:1`;
    await skopeoCopy(image, ref);
    daemon = await startDaemon();
  });
  afterAll(async () => {
    await berth('tasks', 'rm', '-f', 'bg').catch(() => undefined);
    await berth('containers', 'rm', 'bg').catch(() => undefined);
    await cleanup(daemon);
    await registry?.stop();
    image?.remove();
  });

  test('--rm pulls the missing image, relays stdout and stderr, returns the exit status, removes the container', async () => {
    const r = spawnSync(process.execPath, [BERTH, '--address', daemon.address, 'run', '--rm', '--plain-http', ref, 'r1', '/bin/busybox', 'sh', '-c', 'echo to-out; echo to-err >&2; exit 7'], {
      timeout: 60_000,
    });
    expect(r.stdout.toString()).toBe('to-out\n');
    expect(r.stderr.toString()).toContain('to-err\n');
    expect(r.status).toBe(7);
    expect((await berth('images', 'ls', '-q')).trim()).toBe(ref);
    expect((await berth('containers', 'ls', '-q')).trim()).toBe('');
    expect((await berth('tasks', 'ls', '-q')).trim()).toBe('');
  });

  test('stdin is relayed and closed at its end; --env and the image config reach the process', async () => {
    const r = spawnSync(process.execPath, [BERTH, '--address', daemon.address, 'run', '--rm', '--env', 'GREETING=hi', ref, 'r2', '/bin/busybox', 'sh', '-c', 'cat; echo $GREETING; echo $PATH'], {
      input: 'from-stdin\n',
      timeout: 60_000,
    });
    expect(r.stdout.toString().split('\n')).toEqual(['from-stdin', 'hi', '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', '']);
    expect({ status: r.status, stderr: r.stderr.toString() }).toEqual({ status: 0, stderr: '' });
  });

  test('-d leaves the task running; tasks exec runs in it with stdio and exit status', async () => {
    await berth('run', '-d', ref, 'bg', '/bin/busybox', 'sleep', '1000');
    expect((await berth('tasks', 'ls')).split('\n').find((l) => l.startsWith('bg'))).toMatch(/RUNNING$/);
    const r = spawnSync(process.execPath, [BERTH, '--address', daemon.address, 'tasks', 'exec', 'bg', '/bin/busybox', 'sh', '-c', 'cat; echo pid1=$(cat /proc/1/cmdline | tr "\\0" " "); exit 5'], {
      input: 'in-exec\n',
      timeout: 60_000,
    });
    expect(r.stdout.toString()).toBe('in-exec\npid1=/bin/busybox sleep 1000\n');
    expect({ status: r.status, stderr: r.stderr.toString() }).toEqual({ status: 5, stderr: '' });
    await berth('tasks', 'kill', '-s', 'KILL', 'bg');
  });

  test('tasks start runs a created container in the foreground', async () => {
    await berth('run', '-d', ref, 'fg', '/bin/busybox', 'echo', 'again');
    await berth('tasks', 'rm', '-f', 'fg').catch(() => undefined);
    const r = spawnSync(process.execPath, [BERTH, '--address', daemon.address, 'tasks', 'start', 'fg'], { timeout: 60_000 });
    expect(r.stderr.toString()).toBe('');
    expect(r.stdout.toString()).toBe('again\n');
    expect({ status: r.status, stderr: r.stderr.toString() }).toEqual({ status: 0, stderr: '' });
    expect((await berth('tasks', 'ls', '-q')).split('\n')).not.toContain('fg');
    await berth('containers', 'rm', 'fg');
  });
});
