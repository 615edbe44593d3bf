// runtime/oci: containerd-compatible defaults, the spec options, validation (every problem named,
// unsupported fields refused or explicitly ignored) and loading a bundle's config.json.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  checkSpec,
  defaultSpec,
  DEFAULT_CAPABILITIES,
  generateSpec,
  loadSpec,
  rootfsPath,
  RunnableSpec,
  validateProcess,
  validateSpec,
  withAddedCapabilities,
  withCgroupMount,
  withDefaultUnixDevices,
  withDroppedCapabilities,
  withEnv,
  withHostNamespace,
  withHostname,
  withMemoryLimit,
  withMounts,
  withNamespace,
  withProcessArgs,
  withReadonlyRootfs,
  withRlimit,
  withTTY,
  withUser,
} from '../../runtime/oci';

const valid = (): RunnableSpec => generateSpec('default', 'c1', withProcessArgs('sh'), withEnv([]));

/** The problems validateSpec reports for a spec edited by `edit`. */
function problems(edit: (s: RunnableSpec) => void, opts = {}): string {
  const s = valid();
  edit(s);
  try {
    validateSpec(s, opts);
    return '';
  } catch (err) {
    expect((err as { kind?: string }).kind).toBe('InvalidArgument');
    return (err as Error).message;
  }
}

describe('defaults (containerd 1.6 oci.GenerateSpec for Linux)', () => {
  test('the default spec is what ctr sends', () => {
    const s = defaultSpec('default', 'r1');
    expect(s.ociVersion).toBe('1.0.2-dev');
    expect(s.root).toEqual({ path: 'rootfs' });
    expect(s.process).toEqual({
      user: { uid: 0, gid: 0 },
      cwd: '/',
      noNewPrivileges: true,
      capabilities: { bounding: DEFAULT_CAPABILITIES, permitted: DEFAULT_CAPABILITIES, effective: DEFAULT_CAPABILITIES },
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: 1024, soft: 1024 }],
    });
    expect(DEFAULT_CAPABILITIES).toHaveLength(14);
    expect(s.mounts!.map((m) => `${m.destination}(${m.type})`)).toEqual([
      '/proc(proc)',
      '/dev(tmpfs)',
      '/dev/pts(devpts)',
      '/dev/shm(tmpfs)',
      '/dev/mqueue(mqueue)',
      '/sys(sysfs)',
      '/run(tmpfs)',
    ]);
    expect(s.mounts![2].options).toEqual(['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5']);
    expect(s.mounts![5].options).toEqual(['nosuid', 'noexec', 'nodev', 'ro']);
    expect(s.linux!.cgroupsPath).toBe('/default/r1');
    expect(s.linux!.namespaces).toEqual([{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }, { type: 'network' }]);
    expect(s.linux!.maskedPaths).toHaveLength(10);
    expect(s.linux!.maskedPaths).toContain('/proc/kcore');
    expect(s.linux!.readonlyPaths).toEqual(['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger']);
    expect(s.linux!.resources).toEqual({ devices: [{ allow: false, access: 'rwm' }] });
    // every call returns a fresh copy
    s.mounts!.pop();
    s.process.capabilities!.bounding!.pop();
    expect(defaultSpec('default', 'r1').mounts).toHaveLength(7);
    expect(defaultSpec('default', 'r1').process.capabilities!.bounding).toHaveLength(14);
  });

  test('options edit the spec in order', () => {
    const s = generateSpec(
      'ns',
      'id',
      withProcessArgs('echo', 'hi'),
      withEnv(['A=1']),
      withEnv(['A=2', 'B=3']),
      withHostname('box'),
      withUser(1000, 100, [5]),
      withTTY,
      withReadonlyRootfs,
      withRlimit('RLIMIT_NOFILE', 10, 20),
      withMemoryLimit(1 << 20),
      withDefaultUnixDevices,
      withCgroupMount,
      withMounts([{ destination: '/run', type: 'bind', source: '/host/run', options: ['rbind'] }]),
      withNamespace('cgroup'),
      withNamespace('network', '/proc/1/ns/net'),
      withHostNamespace('ipc'),
      withAddedCapabilities(['CAP_SYS_ADMIN']),
      withDroppedCapabilities(['CAP_KILL']),
    );
    expect(s.process.args).toEqual(['echo', 'hi']);
    expect(s.process.env).toEqual(['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'A=2', 'B=3']);
    expect(s.hostname).toBe('box');
    expect(s.process.user).toEqual({ uid: 1000, gid: 100, additionalGids: [5] });
    expect(s.process.terminal).toBe(true);
    expect(s.root).toEqual({ path: 'rootfs', readonly: true });
    expect(s.process.rlimits).toEqual([{ type: 'RLIMIT_NOFILE', soft: 10, hard: 20 }]);
    expect(s.linux!.resources!.memory).toEqual({ limit: 1 << 20 });
    expect(s.linux!.resources!.devices).toHaveLength(10);
    expect(s.mounts!.map((m) => m.destination)).toEqual(['/proc', '/dev', '/dev/pts', '/dev/shm', '/dev/mqueue', '/sys', '/sys/fs/cgroup', '/run']);
    expect(s.mounts!.find((m) => m.destination === '/run')!.type).toBe('bind');
    expect(s.mounts!.find((m) => m.destination === '/sys/fs/cgroup')!.options).toEqual(['ro', 'nosuid', 'noexec', 'nodev']);
    expect(s.linux!.namespaces).toEqual([{ type: 'pid' }, { type: 'uts' }, { type: 'mount' }, { type: 'cgroup' }, { type: 'network', path: '/proc/1/ns/net' }]);
    expect(s.process.capabilities!.bounding).toContain('CAP_SYS_ADMIN');
    expect(s.process.capabilities!.effective).not.toContain('CAP_KILL');
    expect(() => validateSpec(s)).not.toThrow();
  });
});

describe('validation', () => {
  test('a generated spec is valid; Docker-style extras pass when seccomp is explicitly ignored', () => {
    expect(checkSpec(valid())).toEqual({ errors: [], unsupported: [], ignored: [], warnings: [] });
    const docker = valid();
    Object.assign(docker, { hooks: {}, somethingNew: { x: 1 } });
    docker.linux!.seccomp = { defaultAction: 'SCMP_ACT_ERRNO' };
    docker.linux!.sysctl = { 'net.ipv4.ip_unprivileged_port_start': '0', 'net.ipv4.ping_group_range': '0 2147483647' };
    docker.process.oomScoreAdj = 0;
    expect(() => validateSpec(docker)).toThrow('unsupported: linux.seccomp (seccomp filters are not applied by Berth): invalid argument');
    const report = checkSpec(docker, { allowUnsupported: ['linux.seccomp'] });
    expect(report).toEqual({ errors: [], unsupported: [], ignored: ['linux.seccomp'], warnings: [] });
  });

  test('malformed fields are named, all at once', () => {
    const msg = problems((s) => {
      s.process.cwd = 'tmp';
      s.process.args = [];
      s.process.env = ['NOVALUE', '=x'];
      s.process.user = { uid: -1, gid: 1.5 };
      s.process.rlimits = [
        { type: 'RLIMIT_NOFILE', soft: 10, hard: 5 },
        { type: 'RLIMIT_BOGUS', soft: 1, hard: 1 },
      ];
      s.process.oomScoreAdj = -2000;
    });
    expect(msg).toMatch(/^invalid OCI runtime spec: /);
    for (const part of [
      'process.user.uid must be an integer from 0 to 4294967294',
      'process.user.gid must be an integer',
      'process.args must name the program to run',
      'process.env[0] "NOVALUE" must be KEY=VALUE',
      'process.env[1] "=x" must be KEY=VALUE',
      'process.cwd "tmp" must be an absolute path',
      'process.rlimits[0]: soft limit 10 is above the hard limit 5',
      'process.rlimits[1]: unknown resource limit "RLIMIT_BOGUS"',
      'process.oomScoreAdj must be an integer from -1000 to 1000',
    ]) {
      expect(msg).toContain(part);
    }
  });

  test('the spec must be a JSON object with a 1.x version, a process and a root', () => {
    expect(checkSpec('x').errors).toEqual(['the spec must be a JSON object']);
    const r = checkSpec({ ociVersion: '2.0.0', linux: { namespaces: [{ type: 'mount' }] } });
    expect(r.errors).toEqual(['ociVersion "2.0.0" is not a 1.x version of the runtime spec', 'root.path is required', 'process is required']);
    expect(checkSpec({ ociVersion: '1.1.0', linux: { namespaces: [{ type: 'mount' }] } }, { requireProcess: false, requireRoot: false }).errors).toEqual([]);
  });

  test('namespaces: known types once each, a mount namespace, UTS for a hostname', () => {
    expect(problems((s) => s.linux!.namespaces!.push({ type: 'pid' }))).toContain('linux.namespaces[5]: the pid namespace is listed twice');
    expect(problems((s) => s.linux!.namespaces!.push({ type: 'bogus' as never }))).toContain('unknown namespace type "bogus"');
    expect(problems((s) => (s.linux!.namespaces = [{ type: 'pid' }]))).toContain('must include a mount namespace');
    expect(problems((s) => s.linux!.namespaces!.push({ type: 'cgroup', path: 'relative' }))).toContain('linux.namespaces[5].path "relative" must be an absolute path');
    expect(problems((s) => ((s.hostname = 'h'), (s.linux!.namespaces = [{ type: 'mount' }])))).toContain('hostname needs a private UTS namespace');
    expect(problems((s) => s.linux!.namespaces!.push({ type: 'user' }))).toContain('linux.namespaces.user (user namespaces are not supported)');
  });

  test('mounts: absolute destinations, not "/", a type or bind, a source for binds', () => {
    const msg = problems((s) =>
      withMounts([
        { destination: 'rel', type: 'tmpfs' },
        { destination: '/a/..', type: 'tmpfs' },
        { destination: '/x', source: 'y' },
        { destination: '/b', type: 'bind' },
        { destination: '/c', type: 'tmpfs', options: ['tmpcopyup'] },
      ])(s),
    );
    expect(msg).toContain('destination "rel" must be an absolute path');
    expect(msg).toContain('destination "/a/..": mounting over the container\'s root is not allowed');
    expect(msg).toContain('mounts[9]: a mount needs a type (or the "bind" option)');
    expect(msg).toContain('mounts[10]: a bind mount needs a source');
    expect(msg).toContain('mounts[11].options.tmpcopyup');
  });

  test('sysctls must be namespaced and belong to a namespace the container has', () => {
    const msg = problems((s) => {
      s.linux!.sysctl = { 'kernel.panic': '1', 'net.core.somaxconn': '1', 'kernel.msgmax': '1', 'kernel.hostname': 'x', 'net/../../x': '1', 'fs.mqueue.queues_max': 1 as never };
      s.linux!.namespaces = s.linux!.namespaces!.filter((n) => n.type !== 'network' && n.type !== 'ipc');
    });
    expect(msg).toContain('linux.sysctl "kernel.panic" is not namespaced: it would change the host');
    expect(msg).toContain('linux.sysctl "net.core.somaxconn" needs a private network namespace');
    expect(msg).toContain('linux.sysctl "kernel.msgmax" needs a private IPC namespace');
    expect(msg).toContain('linux.sysctl "kernel.hostname": set "hostname" instead');
    expect(msg).toContain('linux.sysctl "net/../../x" is not a valid sysctl name');
    expect(msg).toContain('linux.sysctl "fs.mqueue.queues_max": the value must be a string');
  });

  test('unsupported fields are refused by name unless explicitly ignored', () => {
    const s = valid();
    s.process.apparmorProfile = 'docker-default';
    s.process.selinuxLabel = 'x';
    s.linux!.uidMappings = [{ containerID: 0, hostID: 1000, size: 1 }];
    s.linux!.intelRdt = {};
    s.linux!.seccomp = null as never; // null is "not set"
    s.hooks = { prestart: [{ path: '/bin/true' }], poststop: [] };
    const r = checkSpec(s, { allowUnsupported: ['process.selinuxLabel'] });
    expect(r.errors).toEqual([]);
    expect(r.ignored).toEqual(['process.selinuxLabel']);
    expect(r.unsupported).toEqual([
      'process.apparmorProfile (AppArmor is not supported)',
      'linux.uidMappings (user namespaces are not supported)',
      'hooks.prestart (OCI hooks are not run by Berth)',
    ]);
    // an empty object is "not set"
    expect(r.unsupported.some((u) => u.startsWith('linux.intelRdt'))).toBe(false);
  });

  test('unknown capability names are warnings (runc skips them too)', () => {
    const s = valid();
    s.process.capabilities!.effective!.push('CAP_NOT_A_THING');
    const r = checkSpec(s);
    expect(r.errors).toEqual([]);
    expect(r.warnings).toEqual(['process.capabilities.effective: unknown capability "CAP_NOT_A_THING" is skipped']);
  });

  test('devices, propagation, cgroupsPath, masked paths', () => {
    const msg = problems((s) => {
      s.linux!.devices = [
        { path: 'dev/x', type: 'c', major: 1, minor: 3 },
        { path: '/dev/y', type: 'q' as never, major: 1, minor: 3 },
        { path: '/dev/z', type: 'c' },
        { path: '/dev/fifo', type: 'p', fileMode: 0o10000 },
      ];
      s.linux!.rootfsPropagation = 'sideways' as never;
      s.linux!.cgroupsPath = 'system.slice:berth:x';
      s.linux!.maskedPaths = ['relative/path'];
    });
    expect(msg).toContain('linux.devices[0].path "dev/x" must be an absolute path');
    expect(msg).toContain('linux.devices[1].type must be one of c, b, u, p');
    expect(msg).toContain('linux.devices[2]: major and minor numbers are required for type c');
    expect(msg).toContain('linux.devices[3].fileMode must be a permission mode');
    expect(msg).toContain('linux.rootfsPropagation "sideways" must be one of');
    expect(msg).toContain('systemd "slice:prefix:name" paths are not supported');
    expect(msg).toContain('linux.maskedPaths[0] "relative/path" must be an absolute path');
    expect(problems((s) => (s.linux!.cgroupsPath = '/a/../../b'))).toContain('must not contain ".."');
  });

  test('exec process specs', () => {
    expect(validateProcess({ user: { uid: 0, gid: 0 }, cwd: '/', args: ['sh'] })).toEqual({ user: { uid: 0, gid: 0 }, cwd: '/', args: ['sh'] });
    expect(() => validateProcess({ user: { uid: 0, gid: 0 }, args: ['sh'] })).toThrow('invalid OCI process spec: process.cwd is required: invalid argument');
    expect(() => validateProcess({ user: { uid: 0, gid: 0 }, cwd: '/', args: ['sh'], apparmorProfile: 'x' })).toThrow(
      'unsupported: process.apparmorProfile (AppArmor is not supported)',
    );
  });
});

describe('loading a bundle', () => {
  let dir: string;
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-oci-'))));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('config.json: missing, not JSON, invalid, valid', async () => {
    await expect(loadSpec(dir)).rejects.toMatchObject({ kind: 'NotFound', message: `bundle ${dir}: no config.json: not found` });
    fs.writeFileSync(path.join(dir, 'config.json'), '{ nope');
    await expect(loadSpec(dir)).rejects.toMatchObject({ kind: 'InvalidArgument', message: expect.stringContaining('config.json is not valid JSON') });
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ociVersion: '1.0.2' }));
    await expect(loadSpec(dir)).rejects.toMatchObject({ kind: 'InvalidArgument', message: expect.stringContaining(`bundle ${dir}: invalid OCI runtime spec: root.path is required`) });
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(valid()));
    const spec = await loadSpec(dir);
    expect(spec.process.args).toEqual(['sh']);
    expect(rootfsPath(dir, spec)).toBe(path.join(dir, 'rootfs'));
    expect(rootfsPath(dir, { root: { path: '/abs/root' } })).toBe('/abs/root');
  });
});
