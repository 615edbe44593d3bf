// runtime/init without namespaces: the plan a spec becomes (which step runs where, what is created,
// flags, credentials), path cleaning, and the stdio preparation.
import * as fs from 'node:fs';
import {
  CLONE_NEWCGROUP,
  CLONE_NEWIPC,
  CLONE_NEWNET,
  CLONE_NEWNS,
  CLONE_NEWPID,
  CLONE_NEWUTS,
  MS_BIND,
  MS_NOSUID,
  MS_PRIVATE,
  MS_RDONLY,
  MS_REC,
  MS_SLAVE,
} from '../../runtime/native/constants';
import { isNonblock } from '../../runtime/native/fs';
import { DEFAULT_DEVICES, planInit, planProcess } from '../../runtime/init';
import { cleanPath, isWithin } from '../../runtime/init/plan';
import { components } from '../../runtime/init/fsroot';
import { prepareStdio } from '../../runtime/init/stdio';
import { generateSpec, RunnableSpec, withHostNamespace, withMounts, withNamespace, withProcessArgs, withUser } from '../../runtime/oci';

const opts = { id: 'c1', bundle: '/bundles/c1', rootfs: '/bundles/c1/rootfs' };
const spec = (...o: Parameters<typeof generateSpec>[2][]): RunnableSpec => generateSpec('default', 'c1', withProcessArgs('sh'), ...o);

describe('planInit', () => {
  test('the default spec: new namespaces, procfs and what lies under it deferred to the helper', () => {
    const p = planInit(spec(), opts);
    expect(p.unshareFlags).toBe(CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNS | CLONE_NEWNET);
    expect(p.joins).toEqual([]);
    expect(p.pidNamespace).toBe(true);
    expect(p.newMountNamespace).toBe(true);
    expect(p.newCgroupNamespace).toBe(false);
    expect(p.rootPropagation).toBe(MS_SLAVE | MS_REC);
    expect(p.mounts.map((m) => `${m.destination}:${m.phase}`)).toEqual([
      '/proc:helper',
      '/dev:worker',
      '/dev/pts:worker',
      '/dev/shm:worker',
      '/dev/mqueue:worker',
      '/sys:worker',
      '/run:worker',
    ]);
    const sys = p.mounts.find((m) => m.destination === '/sys')!;
    expect(sys.flags & MS_RDONLY).toBe(MS_RDONLY);
    expect(p.mounts[2].data).toBe('newinstance,ptmxmode=0666,mode=0620,gid=5');
    expect(p.masked.filter((m) => m.phase === 'worker').map((m) => m.path)).toEqual(['/sys/firmware']);
    expect(p.masked.filter((m) => m.phase === 'helper')).toHaveLength(9);
    expect(p.readonlyPaths.every((m) => m.phase === 'helper')).toBe(true);
    expect(p.setupDev).toBe(true);
    expect(p.devices.map((d) => d.path)).toEqual(DEFAULT_DEVICES.map((d) => d.path));
    expect(p.process).toMatchObject({ args: ['sh'], cwd: '/', uid: 0, gid: 0, additionalGids: [], umask: 0o022, noNewPrivileges: true, terminal: false });
    expect(p.process.caps!.effective.toString(16)).toBe('a80425fb');
    expect(p.process.caps!.bounding!.toString(16)).toBe('a80425fb');
    expect(p.process.caps!.ambient).toBeUndefined();
    expect(p.process.rlimits).toEqual([{ type: 'RLIMIT_NOFILE', resource: 7, soft: 1024, hard: 1024 }]);
  });

  test('without a PID namespace procfs is mounted by the worker', () => {
    const p = planInit(spec(withHostNamespace('pid')), opts);
    expect(p.pidNamespace).toBe(false);
    expect(p.unshareFlags & CLONE_NEWPID).toBe(0);
    expect(p.mounts[0]).toMatchObject({ destination: '/proc', phase: 'worker' });
    expect(p.masked.every((m) => m.phase === 'worker')).toBe(true);
  });

  test('mounts beneath a deferred procfs are deferred too; binds resolve against the bundle', () => {
    const p = planInit(
      spec(
        withMounts([
          { destination: '/proc/meminfo', type: 'bind', source: 'lxcfs/meminfo', options: ['bind', 'ro'] },
          { destination: '/procfoo', type: 'tmpfs', source: 'tmpfs' },
          { destination: '/data/', type: 'bind', source: '/srv/data/../data', options: ['rbind', 'rprivate', 'nosuid'] },
        ]),
      ),
      opts,
    );
    const m = Object.fromEntries(p.mounts.map((x) => [x.destination, x]));
    expect(m['/proc/meminfo']).toMatchObject({ phase: 'helper', bind: true, recursive: false, source: '/bundles/c1/lxcfs/meminfo', type: 'bind' });
    expect(m['/proc/meminfo'].flags).toBe(MS_BIND | MS_RDONLY);
    expect(m['/procfoo'].phase).toBe('worker');
    expect(m['/data']).toMatchObject({ phase: 'worker', recursive: true, source: '/srv/data', propagation: [MS_PRIVATE | MS_REC] });
    expect(m['/data'].flags).toBe(MS_BIND | MS_REC | MS_NOSUID);
  });

  test('a /dev bind from the host means no device nodes; spec devices override the defaults', () => {
    expect(planInit(spec(withMounts([{ destination: '/dev', type: 'bind', source: '/dev', options: ['rbind'] }])), opts)).toMatchObject({ setupDev: false, devices: [] });
    const s = spec();
    s.linux!.devices = [{ path: '/dev/null', type: 'c', major: 1, minor: 3, fileMode: 0o600, uid: 5 }, { path: '/dev/fuse', type: 'c', major: 10, minor: 229 }];
    const p = planInit(s, opts);
    expect(p.devices.find((d) => d.path === '/dev/null')).toEqual({ path: '/dev/null', kind: 'c', major: 1, minor: 3, mode: 0o600, uid: 5, gid: 0 });
    expect(p.devices.find((d) => d.path === '/dev/fuse')).toMatchObject({ major: 10, minor: 229, mode: 0o666 });
    expect(p.devices).toHaveLength(7);
  });

  test('namespaces joined by path: in spec order, the mount namespace last', () => {
    const s = spec(withNamespace('mount', '/proc/9/ns/mnt'), withNamespace('network', '/proc/9/ns/net'), withNamespace('cgroup'));
    s.mounts = [];
    delete s.linux!.maskedPaths;
    delete s.linux!.readonlyPaths;
    const p = planInit(s, opts);
    expect(p.joins).toEqual([
      { type: 'network', path: '/proc/9/ns/net' },
      { type: 'mount', path: '/proc/9/ns/mnt' },
    ]);
    expect(p.newMountNamespace).toBe(false);
    expect(p.newCgroupNamespace).toBe(true);
    expect(p.unshareFlags).toBe(CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP);
  });

  test('joining a mount namespace excludes mounts and masks', () => {
    expect(() => planInit(spec(withNamespace('mount', '/proc/9/ns/mnt')), opts)).toThrow(/cannot have mounts, masked or read-only paths/);
    const s = spec(withNamespace('mount', '/proc/9/ns/mnt'));
    s.mounts = [];
    s.linux!.maskedPaths = [];
    s.linux!.readonlyPaths = [];
    expect(planInit(s, opts)).toMatchObject({ newMountNamespace: false, setupDev: false });
  });

  test('a cgroup mount gets the hierarchy layout, mounted afresh only with a cgroup namespace', () => {
    const s = spec(withMounts([{ destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['ro'] }]));
    const info = { version: 1 as const, hierarchies: [{ controllers: ['memory'], mountpoint: '/sys/fs/cgroup/memory' }], path: '/default/c1' };
    expect(planInit(s, { ...opts, cgroupMount: info }).cgroupMount).toEqual({ ...info, viaNamespace: false });
    expect(planInit(spec(withNamespace('cgroup'), withMounts(s.mounts!.slice(-1))), { ...opts, cgroupMount: info }).cgroupMount!.viaNamespace).toBe(true);
    expect(planInit(spec(), { ...opts, cgroupMount: info }).cgroupMount).toBeUndefined();
  });
});

describe('planProcess', () => {
  test('credentials, capability masks and limits', () => {
    const s = spec(withUser(1000, 1000, [10, 20]));
    s.process.user.umask = 0o077;
    s.process.capabilities = { bounding: ['CAP_KILL', 'CAP_NET_BIND_SERVICE'], effective: ['net_bind_service'], permitted: ['CAP_NET_BIND_SERVICE'], ambient: ['CAP_NET_BIND_SERVICE'] };
    s.process.oomScoreAdj = 100;
    s.process.consoleSize = { height: 24, width: 80 };
    const p = planProcess(s.process);
    expect(p).toMatchObject({ uid: 1000, gid: 1000, additionalGids: [10, 20], umask: 0o077, oomScoreAdj: 100, consoleSize: { height: 24, width: 80 } });
    expect(p.caps).toEqual({ bounding: (1n << 5n) | (1n << 10n), effective: 1n << 10n, permitted: 1n << 10n, inheritable: 0n, ambient: 1n << 10n });
    delete s.process.capabilities;
    expect(planProcess(s.process).caps).toBeUndefined();
    expect(() => planProcess({ ...s.process, rlimits: [{ type: 'RLIMIT_X', soft: 1, hard: 1 }] })).toThrow('unknown resource limit RLIMIT_X');
  });
});

describe('paths', () => {
  test('cleaning and containment', () => {
    expect(cleanPath('a/./b/../c/')).toBe('/a/c');
    expect(cleanPath('/../../etc')).toBe('/etc');
    expect(cleanPath('/')).toBe('/');
    expect(components('/../x/./y/..')).toEqual(['x']);
    expect(isWithin('/proc/sys', '/proc')).toBe(true);
    expect(isWithin('/proc', '/proc')).toBe(true);
    expect(isWithin('/procfoo', '/proc')).toBe(false);
    expect(isWithin('/anything', '/')).toBe(true);
  });
});

describe('stdio', () => {
  test('fds are duplicated to 10 and above, blocking; missing ones are /dev/null; a terminal takes no fds', () => {
    const fd = fs.openSync('/dev/null', fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
    try {
      const { plan, owned } = prepareStdio({ stdout: fd }, false);
      expect(plan.kind).toBe('fds');
      const fds = (plan as { fds: number[] }).fds;
      expect(fds).toEqual(owned);
      expect(fds.every((f) => f >= 10)).toBe(true);
      expect(new Set(fds).size).toBe(3);
      expect(isNonblock(fds[1])).toBe(false);
      expect(isNonblock(fd)).toBe(false); // the open file description is shared
      owned.forEach((f) => fs.closeSync(f));
      expect(prepareStdio({ terminal: true }, true)).toEqual({ plan: { kind: 'terminal' }, owned: [] });
      expect(() => prepareStdio({ stdout: fd }, true)).toThrow(/the process has a terminal/);
      expect(() => prepareStdio({ stdin: '/nonexistent/in' }, false)).toThrow('stdin /nonexistent/in: no such file: not found');
    } finally {
      fs.closeSync(fd);
    }
  });
});
