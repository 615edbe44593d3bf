// containerd's `ctr` against berthd: snapshots prepare, view, commit, mounts, ls, usage, tree,
// label, info, rm — and the mount command ctr prints really mounts.
import { execFile, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { cleanup, startDaemon, tempDir, type TestDaemon } from '../helpers/daemon';

const run = promisify(execFile);
const CTR = process.env.CTR ?? '/usr/bin/ctr';

describe('ctr against berthd: snapshots', () => {
  let daemon: TestDaemon;
  let mnt: string;
  const mounted: string[] = [];
  const ctr = async (...args: string[]) => (await run(CTR, ['--address', daemon.address, ...args], { timeout: 20_000 })).stdout;
  const ctrErr = (...args: string[]) =>
    run(CTR, ['--address', daemon.address, ...args]).then(
      () => '',
      (e) => String(e.stderr),
    );
  /** Runs the `mount …` line ctr printed. */
  const mountLine = (line: string, target: string) => {
    const args = line.trim().split(/\s+/).slice(1);
    fs.mkdirSync(target, { recursive: true });
    execFileSync('mount', args.map((a) => (a.endsWith(path.basename(target)) ? target : a)));
    mounted.push(target);
  };

  beforeAll(async () => {
    daemon = await startDaemon();
    mnt = tempDir('berth-snap-mnt-');
  });
  afterAll(async () => {
    for (const m of mounted.reverse()) {
      try {
        execFileSync('umount', [m]);
      } catch {
        // already unmounted
      }
    }
    await cleanup(daemon);
    fs.rmSync(mnt, { recursive: true, force: true });
  });

  test('prepare, mount what ctr prints, write, commit, prepare a child, view, tree, usage', async () => {
    await ctr('snapshots', 'prepare', 'base');
    const a = path.join(mnt, 'a');
    const line = await ctr('snapshots', 'mounts', a, 'base');
    expect(line).toMatch(/^mount -t bind \S+\/snapshots\/\d+\/fs \S+ -o rw,rbind\n$/);
    mountLine(line, a);
    fs.writeFileSync(path.join(a, 'hello'), 'from base\n');
    execFileSync('umount', [a]);
    mounted.pop();

    expect((await ctr('snapshots', 'usage', 'base')).split('\n')[1]).toMatch(/^base\s+\d+(\.\d+)? KiB\s+2\s*$/);
    await ctr('snapshots', 'commit', 'base-c', 'base');
    await ctr('snapshots', 'prepare', 'child', 'base-c');
    const b = path.join(mnt, 'b');
    const overlay = await ctr('snapshots', 'mounts', b, 'child');
    expect(overlay).toMatch(/^mount -t overlay overlay \S+ -o index=off,workdir=\S+\/work,upperdir=\S+\/fs,lowerdir=\S+\/fs\n$/);
    mountLine(overlay, b);
    expect(fs.readFileSync(path.join(b, 'hello'), 'utf8')).toBe('from base\n');
    fs.writeFileSync(path.join(b, 'child-file'), 'x');
    execFileSync('umount', [b]);
    mounted.pop();

    await ctr('snapshots', 'view', 'v1', 'base-c');
    const ls = (await ctr('snapshots', 'ls')).split('\n').slice(1).filter(Boolean).map((l) => l.trim().split(/\s+/));
    expect(ls).toEqual(
      expect.arrayContaining([
        ['base-c', 'Committed'],
        ['child', 'base-c', 'Active'],
        ['v1', 'base-c', 'View'],
      ]),
    );
    expect(await ctr('snapshots', 'tree')).toMatch(/^ base-c\n {2}\\_ child\n {2}\\_ v1\n$|^ base-c\n {2}\\_ v1\n {2}\\_ child\n$/);
  });

  test('label and info; rm refuses a parent with children; errors', async () => {
    await ctr('snapshots', 'label', 'base-c', 'team=infra');
    const info = JSON.parse(await ctr('snapshots', 'info', 'base-c'));
    expect(info).toMatchObject({ Kind: 'Committed', Name: 'base-c', Labels: { team: 'infra' } });
    expect(await ctrErr('snapshots', 'rm', 'base-c')).toContain('cannot remove snapshot with child: failed precondition');
    expect(await ctrErr('snapshots', 'prepare', 'child', 'base-c')).toContain('snapshot "child": already exists');
    expect(await ctrErr('snapshots', 'rm', 'nonexist')).toContain('snapshot nonexist does not exist: not found');
    await ctr('snapshots', 'rm', 'child', 'v1');
    await ctr('snapshots', 'rm', 'base-c');
    expect((await ctr('snapshots', 'ls')).trim().split('\n')).toHaveLength(1);
  });

  test('a namespace holding snapshots cannot be deleted', async () => {
    await run(CTR, ['--address', daemon.address, '-n', 'snapns', 'snapshots', 'prepare', 'x']);
    expect(await ctrErr('namespaces', 'rm', 'snapns')).toContain('namespace "snapns" must be empty, but it still has snapshots on "overlayfs" snapshotter');
  });
});
