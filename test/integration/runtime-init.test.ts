// runtime/init on the real kernel, as root: containers built by worker threads of this (jest)
// process from OCI specs, each over its own temp bundle with a busybox rootfs. Every container is
// deleted in afterEach (killed first if it still runs); the test cgroups live under
// /berth-init-test-<pid> and are removed in afterAll. Only pids these tests started are signalled.
import { execFile, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { loadCgroup } from '../../runtime/cgroups';
import type { CgroupV1 } from '../../runtime/cgroups';
import { fn } from '../../runtime/native/libc';
import { waitFor } from '../helpers/daemon';
import {
  Container,
  createContainer,
  CreateContainerOptions,
  ExecProcess,
  sharedRuntime,
} from '../../runtime/init';
import {
  generateSpec,
  RunnableSpec,
  SpecOpt,
  withCapabilities,
  withCgroupMount,
  withDefaultUnixDevices,
  withEnv,
  withHostname,
  withMemoryLimit,
  withMounts,
  withNamespace,
  withProcessArgs,
  withProcessCwd,
  withReadonlyRootfs,
  withRlimit,
  withTTY,
  withConsoleSize,
  withUser,
  withNoNewPrivileges,
} from '../../runtime/oci';

const run = promisify(execFile);
const CG_ROOT = `/berth-init-test-${process.pid}`;
const APPLETS = ['sh', 'echo', 'cat', 'ls', 'id', 'hostname', 'mount', 'sleep', 'true', 'false', 'tty', 'stty', 'touch', 'pwd', 'wc', 'grep', 'env', 'kill', 'stat', 'readlink', 'head', 'tr'];

let tmp: string;
let seq = 0;
const containers: Container[] = [];
const execs: ExecProcess[] = [];

/** A bundle dir with rootfs/bin/busybox and applet links. */
function makeBundle(): string {
  const bundle = fs.mkdtempSync(path.join(tmp, 'bundle-'));
  const bin = path.join(bundle, 'rootfs', 'bin');
  fs.mkdirSync(bin, { recursive: true });
  fs.copyFileSync('/bin/busybox', path.join(bin, 'busybox'));
  fs.chmodSync(path.join(bin, 'busybox'), 0o755);
  for (const a of APPLETS) fs.symlinkSync('busybox', path.join(bin, a));
  return bundle;
}

function nextId(): string {
  return `c${process.pid}-${++seq}`;
}

/** The default spec (as ctr makes it) for `args`, in this suite's cgroup tree. */
function specFor(id: string, ...opts: SpecOpt[]): RunnableSpec {
  const spec = generateSpec('ignored', id, withDefaultUnixDevices, ...opts);
  spec.linux!.cgroupsPath = `${CG_ROOT}/${id}`;
  return spec;
}

async function create(opts: Omit<CreateContainerOptions, 'id' | 'bundle'> & { id?: string; bundle?: string }): Promise<Container> {
  const c = await createContainer({ id: opts.id ?? nextId(), bundle: opts.bundle ?? makeBundle(), ...opts });
  containers.push(c);
  return c;
}

interface Result {
  stdout: string;
  stderr: string;
  exitStatus: number;
  container: Container;
}

/** Creates, starts and waits for a container; stdout/stderr go to files read afterwards. */
async function runContainer(spec: RunnableSpec, extra: Partial<CreateContainerOptions> = {}): Promise<Result> {
  const bundle = extra.bundle ?? makeBundle();
  const outFile = path.join(bundle, 'stdout');
  const errFile = path.join(bundle, 'stderr');
  const out = fs.openSync(outFile, 'w');
  const err = fs.openSync(errFile, 'w');
  try {
    const container = await create({ ...extra, id: spec.linux?.cgroupsPath?.split('/').pop() ?? nextId(), bundle, spec, stdio: { stdout: out, stderr: err } });
    await container.start();
    const { exitStatus } = await container.wait();
    return { stdout: fs.readFileSync(outFile, 'utf8'), stderr: fs.readFileSync(errFile, 'utf8'), exitStatus, container };
  } finally {
    fs.closeSync(out);
    fs.closeSync(err);
  }
}

async function sh(script: string, ...opts: SpecOpt[]): Promise<Result> {
  const id = nextId();
  return runContainer(specFor(id, withProcessArgs('sh', '-c', script), ...opts));
}

/** pipe2(O_CLOEXEC): [read, write] */
function pipe(): [number, number] {
  const b = Buffer.alloc(8);
  if (fn('int pipe2(void *, int)')(b, 0o2000000) < 0) throw new Error('pipe2 failed');
  return [b.readInt32LE(0), b.readInt32LE(4)];
}

/** Everything read from a pty master until the slave side is closed everywhere (EIO). */
function readPty(master: number): { text: () => string; done: Promise<string> } {
  let text = '';
  const done = new Promise<string>((resolve) => {
    const buf = Buffer.alloc(4096);
    const loop = () =>
      fs.read(master, buf, 0, buf.length, null, (err, n) => {
        if (err || n === 0) return resolve(text);
        text += buf.toString('utf8', 0, n);
        loop();
      });
    loop();
  });
  return { text: () => text, done };
}

function hostMountsUnder(dir: string): string[] {
  return fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((l) => (l.split(' ')[4] ?? '').startsWith(dir));
}

function capMask(...caps: number[]): string {
  return caps.reduce((m, c) => m | (1n << BigInt(c)), 0n).toString(16).padStart(16, '0');
}

function statusField(status: string, key: string): string {
  return new RegExp(`^${key}:\\s*(.*)$`, 'm').exec(status)?.[1].trim() ?? '';
}

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), `berth-init-test-${process.pid}-`));
  await sharedRuntime().pool.prewarm();
});

afterEach(async () => {
  for (const e of execs.splice(0)) await e.delete({ force: true }).catch(() => undefined);
  for (const c of containers.splice(0)) await c.delete({ force: true });
});

afterAll(async () => {
  await sharedRuntime().pool.close();
  await sharedRuntime().helper.close();
  await sharedRuntime().reaper.close();
  await loadCgroup(CG_ROOT).delete().catch(() => undefined);
  // runc (the reference peer) also makes its cgroups in the hybrid layout's cgroup2 hierarchy
  const unified = path.join('/sys/fs/cgroup/unified', CG_ROOT);
  if (fs.existsSync(unified)) {
    for (const d of fs.readdirSync(unified, { withFileTypes: true })) if (d.isDirectory()) fs.rmdirSync(path.join(unified, d.name));
    fs.rmdirSync(unified);
  }
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('running a workload', () => {
  test('/bin/echo hi: stdout captured, exit 0, init is PID 1', async () => {
    const r = await runContainer(specFor(nextId(), withProcessArgs('/bin/echo', 'hi')));
    expect(r.stdout).toBe('hi\n');
    expect(r.exitStatus).toBe(0);
    const pid1 = await sh('echo $$');
    expect(pid1.stdout).toBe('1\n');
  });

  test('exit statuses: exit codes, and 128+signal for a signalled process', async () => {
    expect((await sh('exit 3')).exitStatus).toBe(3);
    expect((await runContainer(specFor(nextId(), withProcessArgs('false')))).exitStatus).toBe(1);
    // PID 1 of a namespace ignores signals it has no handler for, even SIGKILL, from inside
    expect(await sh('kill -9 $$; echo survived')).toMatchObject({ stdout: 'survived\n', exitStatus: 0 });
    expect((await sh('sh -c \'kill -9 $$\'; echo $?')).stdout).toBe('137\n');
    const c = await create({ spec: specFor(nextId(), withProcessArgs('sleep', '1000')) });
    await c.start();
    await c.kill('SIGKILL');
    expect(await c.wait()).toMatchObject({ exitStatus: 137, signal: 'SIGKILL' });
    const trapped = await create({ spec: specFor(nextId(), withProcessArgs('sh', '-c', 'trap "exit 42" TERM; echo ready; while :; do sleep 0.05; done')) });
    await trapped.start();
    await new Promise((r) => setTimeout(r, 200));
    await trapped.kill('SIGTERM');
    expect((await trapped.wait()).exitStatus).toBe(42);
  });

  test('hostname in a new UTS namespace; the host keeps its own', async () => {
    const r = await sh('hostname', withHostname('berth-box'));
    expect(r.stdout).toBe('berth-box\n');
    expect(os.hostname()).not.toBe('berth-box');
  });

  test('environment (HOME added when missing), cwd (created), args', async () => {
    const r = await sh('echo "$FOO|$HOME|$PATH"; pwd; echo "$0 $1"', withEnv(['FOO=bar baz']), withProcessCwd('/work/dir'));
    expect(r.stdout).toBe('bar baz|/|/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n/work/dir\nsh \n');
    const withArgs = await runContainer(specFor(nextId(), withProcessArgs('sh', '-c', 'echo "$0-$1-$2"', 'zero', 'one', 'two')));
    expect(withArgs.stdout).toBe('zero-one-two\n');
  });

  test('user 1000:1000 with additional groups; HOME from /etc/passwd', async () => {
    const bundle = makeBundle();
    fs.mkdirSync(path.join(bundle, 'rootfs/etc'));
    fs.writeFileSync(path.join(bundle, 'rootfs/etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n');
    const id = nextId();
    const r = await runContainer(specFor(id, withProcessArgs('sh', '-c', 'id -u; id -g; id -G; echo $HOME; grep -E "^(Uid|Gid|Groups)" /proc/self/status'), withUser(1000, 1000, [2000, 3000])), { bundle });
    const [uid, gid, groups, home] = r.stdout.split('\n');
    expect(uid).toBe('1000');
    expect(gid).toBe('1000');
    expect(groups.split(' ').sort()).toEqual(expect.arrayContaining(['2000', '3000']));
    expect(home).toBe('/home/app');
    expect(r.stdout).toMatch(/Uid:\s+1000\s+1000\s+1000\s+1000/);
    expect(r.stdout).toMatch(/Groups:\s+2000 3000/);
  });

  test('stdio from paths, stdin from a file', async () => {
    const bundle = makeBundle();
    const input = path.join(bundle, 'in.txt');
    fs.writeFileSync(input, 'from stdin\n');
    const outPath = path.join(bundle, 'out-by-path');
    const id = nextId();
    const c = await create({ id, bundle, spec: specFor(id, withProcessArgs('cat')), stdio: { stdin: input, stdout: outPath } });
    await c.start();
    expect((await c.wait()).exitStatus).toBe(0);
    expect(fs.readFileSync(outPath, 'utf8')).toBe('from stdin\n');
  });
});

describe('the root filesystem and mounts', () => {
  test('read-only rootfs: writes fail, mounts on top still work', async () => {
    const r = await sh('touch /file; echo "touch=$?"; echo x > /dev/shm/ok && cat /dev/shm/ok', withReadonlyRootfs);
    expect(r.stdout).toBe('touch=1\nx\n');
    expect(r.stderr).toMatch(/Read-only file system/);
  });

  test('/proc works, a tmpfs mount, a read-only bind of a host dir', async () => {
    const host = fs.mkdtempSync(path.join(tmp, 'hostdir-'));
    fs.writeFileSync(path.join(host, 'greeting'), 'hello from the host\n');
    const r = await sh(
      'cat /proc/1/comm; grep " /scratch " /proc/mounts; echo t > /scratch/f && cat /scratch/f; cat /data/greeting; touch /data/new; echo "rw=$?"',
      withMounts([
        { destination: '/scratch', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'size=1m', 'mode=1777'] },
        { destination: '/data', type: 'bind', source: host, options: ['rbind', 'ro', 'rprivate'] },
      ]),
    );
    const lines = r.stdout.split('\n');
    expect(lines[0]).toBe('sh');
    expect(lines[1]).toMatch(/^tmpfs \/scratch tmpfs rw,nosuid,nodev,relatime,size=1024k /);
    expect(lines.slice(2, 5)).toEqual(['t', 'hello from the host', 'rw=1']);
    expect(fs.existsSync(path.join(host, 'new'))).toBe(false);
    expect(hostMountsUnder(host)).toEqual([]);
  });

  test('/dev: the default device nodes, links, devpts, shm, mqueue', async () => {
    const r = await sh('ls /dev | tr "\\n" " "; echo; stat -c "%n %F %t:%T %a" /dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty; readlink /dev/ptmx; readlink /dev/fd; readlink /dev/stdin; echo x > /dev/null && echo null-ok; head -c 4 /dev/zero | wc -c');
    const listing = r.stdout.split('\n')[0];
    for (const name of ['null', 'zero', 'full', 'random', 'urandom', 'tty', 'ptmx', 'pts', 'shm', 'mqueue', 'fd', 'stdin', 'stdout', 'stderr']) {
      expect(listing.split(/\s+/)).toContain(name);
    }
    expect(r.stdout).toContain('/dev/null character special file 1:3 666');
    expect(r.stdout).toContain('/dev/zero character special file 1:5 666');
    expect(r.stdout).toContain('/dev/full character special file 1:7 666');
    expect(r.stdout).toContain('/dev/random character special file 1:8 666');
    expect(r.stdout).toContain('/dev/urandom character special file 1:9 666');
    expect(r.stdout).toContain('/dev/tty character special file 5:0 666');
    expect(r.stdout).toContain('pts/ptmx\n/proc/self/fd\n/proc/self/fd/0\nnull-ok\n4\n');
  });

  test('masked paths read empty, read-only paths refuse writes', async () => {
    const hostTimerList = fs.readFileSync('/proc/timer_list', 'utf8').length;
    expect(hostTimerList).toBeGreaterThan(0);
    const r = await sh('wc -c < /proc/timer_list; wc -c < /proc/keys; ls -A /proc/acpi | wc -l; ls -A /sys/firmware | wc -l; (echo 1 > /proc/sys/kernel/ns_last_pid) && echo sys-writable || echo sys-ro; (echo h > /proc/sysrq-trigger) && echo sysrq-writable || echo sysrq-ro');
    expect(r.stdout.split('\n').slice(0, 6)).toEqual(['0', '0', '0', '0', 'sys-ro', 'sysrq-ro']);
    expect(r.stderr).toMatch(/Read-only file system/);
  });

  test('a symlink in the rootfs pointing outside cannot take a mount outside', async () => {
    // etc -> /etc resolves to <rootfs>/etc itself: a loop, the create fails cleanly
    const bundle = makeBundle();
    fs.symlinkSync('/etc', path.join(bundle, 'rootfs', 'etc'));
    const id = nextId();
    const spec = specFor(id, withProcessArgs('true'), withMounts([{ destination: '/etc/x', type: 'tmpfs', source: 'tmpfs', options: [] }]));
    await expect(create({ id, bundle, spec })).rejects.toThrow(/mount tmpfs on \/etc\/x: .*ELOOP|Too many levels of symbolic links/);
    expect(fs.existsSync('/etc/x')).toBe(false);
    expect(hostMountsUnder('/etc')).toEqual([]);
    expect(fs.existsSync(path.join('/sys/fs/cgroup/memory', CG_ROOT, id))).toBe(false);

    // data -> ../../../../<host dir>: resolved inside the rootfs, the mount lands there
    const hostDir = fs.mkdtempSync(path.join(tmp, 'victim-'));
    const bundle2 = makeBundle();
    fs.symlinkSync('../../../../../../..' + hostDir, path.join(bundle2, 'rootfs', 'data'));
    fs.mkdirSync(path.join(bundle2, 'rootfs', hostDir), { recursive: true }); // the same path inside the rootfs
    const r = await runContainer(
      specFor(nextId(), withProcessArgs('sh', '-c', 'echo inside > /data/x/marker; cat /data/x/marker; grep -c " /data/x " /proc/self/mountinfo'), withMounts([{ destination: '/data/x', type: 'tmpfs', source: 'tmpfs', options: [] }])),
      { bundle: bundle2 },
    );
    expect(r.stdout).toBe('inside\n0\n'); // mounted at <rootfs><hostDir>/x, not at /data/x of the host
    expect(fs.readdirSync(hostDir)).toEqual([]);
    expect(fs.existsSync(path.join(bundle2, 'rootfs', hostDir.slice(1), 'x'))).toBe(true);
  });

  test('the cgroup mount with a cgroup namespace: the container sees its own cgroup as the root', async () => {
    const id = nextId();
    const bundle = makeBundle();
    const outFile = path.join(bundle, 'out');
    const out = fs.openSync(outFile, 'w');
    const c = await create({
      id,
      bundle,
      spec: specFor(
        id,
        withProcessArgs('sh', '-c', 'grep memory /proc/self/cgroup; cat /sys/fs/cgroup/memory/memory.limit_in_bytes; ls /sys/fs/cgroup; touch /sys/fs/cgroup/memory/x; echo "w=$?"'),
        withNamespace('cgroup'),
        withCgroupMount,
        withMemoryLimit(64 << 20),
      ),
      stdio: { stdout: out, stderr: out },
    });
    fs.closeSync(out);
    // the worker thread joined the cgroup to create the namespace, and left before create returned
    expect(await c.cgroup!.procs()).toEqual([c.pid]);
    expect(await c.cgroup!.threads()).toEqual([c.pid]);
    await c.start();
    await c.wait();
    const r = { stdout: fs.readFileSync(outFile, 'utf8') };
    const lines = r.stdout.split('\n');
    expect(lines[0]).toMatch(/^\d+:memory:\/$/);
    expect(lines[1]).toBe(String(64 << 20));
    expect(r.stdout).toMatch(/\bcpu\b[\s\S]*\bmemory\b[\s\S]*\bsystemd\b/);
    expect(r.stdout).toContain('w=1');
  });
});

describe('credentials, capabilities, limits, cgroups', () => {
  test('capabilities: all five sets as the spec says (root, and a user with ambient caps)', async () => {
    const rootCaps = await sh('grep ^Cap /proc/self/status', withCapabilities(['CAP_CHOWN', 'CAP_KILL', 'CAP_NET_BIND_SERVICE']));
    expect(statusField(rootCaps.stdout, 'CapEff')).toBe(capMask(0, 5, 10));
    expect(statusField(rootCaps.stdout, 'CapPrm')).toBe(capMask(0, 5, 10));
    expect(statusField(rootCaps.stdout, 'CapBnd')).toBe(capMask(0, 5, 10));
    expect(statusField(rootCaps.stdout, 'CapInh')).toBe(capMask());
    expect(statusField(rootCaps.stdout, 'CapAmb')).toBe(capMask());

    const id = nextId();
    const spec = specFor(id, withProcessArgs('sh', '-c', 'grep ^Cap /proc/self/status'), withUser(1000, 1000));
    spec.process.capabilities = {
      bounding: ['CAP_NET_BIND_SERVICE', 'CAP_KILL'],
      effective: ['CAP_NET_BIND_SERVICE'],
      permitted: ['CAP_NET_BIND_SERVICE'],
      inheritable: ['CAP_NET_BIND_SERVICE'],
      ambient: ['CAP_NET_BIND_SERVICE'],
    };
    const user = await runContainer(spec);
    expect(statusField(user.stdout, 'CapEff')).toBe(capMask(10));
    expect(statusField(user.stdout, 'CapPrm')).toBe(capMask(10));
    expect(statusField(user.stdout, 'CapInh')).toBe(capMask(10));
    expect(statusField(user.stdout, 'CapAmb')).toBe(capMask(10));
    expect(statusField(user.stdout, 'CapBnd')).toBe(capMask(5, 10));
  });

  test('no_new_privs follows the spec', async () => {
    expect(statusField((await sh('cat /proc/self/status')).stdout, 'NoNewPrivs')).toBe('1');
    expect(statusField((await sh('cat /proc/self/status', withNoNewPrivileges(false))).stdout, 'NoNewPrivs')).toBe('0');
  });

  test('rlimits: the default NOFILE 1024, and custom limits for a non-root user', async () => {
    expect((await sh('ulimit -n; ulimit -Hn')).stdout).toBe('1024\n1024\n');
    const r = await sh('ulimit -n; ulimit -Hn; ulimit -c', withUser(1000, 1000), withRlimit('RLIMIT_NOFILE', 256, 512), withRlimit('RLIMIT_CORE', 0, 0));
    expect(r.stdout).toBe('256\n512\n0\n');
  });

  test('cgroup placement and a memory limit, read back from the host; oom_score_adj clamped', async () => {
    const id = nextId();
    const spec = specFor(id, withProcessArgs('sh', '-c', 'cat /proc/self/cgroup; cat /proc/self/oom_score_adj; echo END; sleep 30'), withMemoryLimit(32 << 20));
    spec.process.oomScoreAdj = -500; // below ours: clamped (no CAP_SYS_RESOURCE here)
    const bundle = makeBundle();
    const [r, w] = pipe();
    const c = await create({ id, bundle, spec, stdio: { stdout: w } });
    fs.closeSync(w);
    const cg = c.cgroup as CgroupV1;
    expect(cg.path).toBe(`${CG_ROOT}/${id}`);
    expect(await cg.procs()).toEqual([c.pid]);
    expect(fs.readFileSync(path.join(cg.dir('memory')!, 'memory.limit_in_bytes'), 'utf8').trim()).toBe(String(32 << 20));
    await c.start();
    const sock = new net.Socket({ fd: r, readable: true, writable: false });
    let out = '';
    await new Promise<void>((resolve) => sock.on('data', (d) => ((out += d), out.includes('END\n') && resolve())).on('end', resolve));
    sock.destroy();
    const own = parseInt(fs.readFileSync('/proc/self/oom_score_adj', 'utf8'), 10);
    expect(out).toContain(`:memory:${CG_ROOT}/${id}\n`);
    expect(out).toContain(`:pids:${CG_ROOT}/${id}\n`);
    const lines = out.trim().split('\n');
    expect(lines[lines.length - 2]).toBe(String(Math.max(-500, own)));
    await c.kill('SIGKILL');
    expect((await c.wait()).exitStatus).toBe(137);
  });
});

describe('terminals, exec, lifecycle', () => {
  test('a pty: tty is /dev/pts/0, the console size is set, output arrives through the master', async () => {
    const id = nextId();
    const c = await create({ id, spec: specFor(id, withProcessArgs('sh', '-c', 'tty; stty size; test -t 0 && echo is-a-tty; readlink /proc/self/fd/1'), withTTY, withConsoleSize(100, 30)) });
    expect(c.pty).toBeDefined();
    const reader = readPty(c.pty!.master);
    await c.start();
    expect((await c.wait()).exitStatus).toBe(0);
    const text = (await reader.done).replace(/\r\n/g, '\n');
    expect(text).toBe('/dev/pts/0\n30 100\nis-a-tty\n/dev/pts/0\n');
  });

  test('the pty is the controlling terminal (job control: the foreground process group)', async () => {
    const id = nextId();
    const c = await create({ id, spec: specFor(id, withProcessArgs('sh', '-c', 'exec cat /proc/self/stat'), withTTY) });
    const reader = readPty(c.pty!.master);
    await c.start();
    await c.wait();
    const stat = (await reader.done).replace(/\r\n/g, '\n').trim().split('\n').pop()!;
    expect(stat).toMatch(/^1 \(cat\) /);
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // session (field 6) is PID 1's, tty_nr (field 7) is /dev/pts/0 (136:0): a controlling terminal
    expect(fields[3]).toBe('1');
    expect(Number(fields[4])).toBe((136 << 8) | 0);
  });

  test('exec into a running container: same hostname, PID namespace, cgroup; own user and exit code', async () => {
    const id = nextId();
    const [r, w] = pipe();
    const c = await create({ id, spec: specFor(id, withProcessArgs('sh', '-c', 'echo ready; exec sleep 1000'), withHostname('exec-box')), stdio: { stdout: w } });
    fs.closeSync(w);
    await c.start();
    const sock = new net.Socket({ fd: r, readable: true, writable: false });
    await new Promise((resolve) => sock.once('data', resolve));
    sock.destroy();

    const bundleOut = path.join(tmp, `exec-${id}`);
    const out = fs.openSync(bundleOut, 'w');
    const e = await c.exec(
      { user: { uid: 1000, gid: 1000, additionalGids: [1000] }, cwd: '/', args: ['sh', '-c', 'hostname; echo $$; cat /proc/1/cmdline | tr "\\0" " "; echo; id -u; grep memory /proc/self/cgroup; exit 7'], env: ['PATH=/bin'] },
      { id: 'e1', stdio: { stdout: out, stderr: out } },
    );
    execs.push(e);
    fs.closeSync(out);
    expect(e.pid).toBeGreaterThan(0);
    await e.start();
    expect((await e.wait()).exitStatus).toBe(7);
    const lines = fs.readFileSync(bundleOut, 'utf8').split('\n');
    expect(lines[0]).toBe('exec-box');
    expect(Number(lines[1])).toBeGreaterThan(1);
    expect(lines[2]).toBe('sleep 1000 ');
    expect(lines[3]).toBe('1000');
    expect(lines[4]).toMatch(new RegExp(`:memory:${CG_ROOT}/${id}$`));

    // an exec with a terminal
    const t = await c.exec({ user: { uid: 0, gid: 0 }, cwd: '/', args: ['tty'], terminal: true }, { id: 'e2', stdio: { terminal: true } });
    execs.push(t);
    const reader = readPty(t.pty!.master);
    await t.start();
    await t.wait();
    expect((await reader.done).trim()).toMatch(/^\/dev\/pts\/\d+$/);

    // kill --all: every process of the container's cgroup
    const e3 = await c.exec({ user: { uid: 0, gid: 0 }, cwd: '/', args: ['sleep', '1000'] }, { id: 'e3' });
    execs.push(e3);
    await e3.start();
    expect((await c.cgroup!.procs()).sort()).toEqual([c.pid, e3.pid].sort());
    await c.kill('SIGKILL', { all: true });
    expect((await c.wait()).exitStatus).toBe(137);
    expect((await e3.wait()).exitStatus).toBe(137);
  });

  test('created, not started: the process exists parked; delete kills it and removes everything', async () => {
    const id = nextId();
    const bundle = makeBundle();
    const c = await create({ id, bundle, spec: specFor(id, withProcessArgs('sh', '-c', 'echo should-not-run > /tmp/ran')) });
    expect(c.status).toBe('created');
    const status = fs.readFileSync(`/proc/${c.pid}/status`, 'utf8');
    expect(statusField(status, 'NSpid').split(/\s+/)).toEqual([String(c.pid), '1']);
    expect(fs.readFileSync(`/proc/${c.pid}/wchan`, 'utf8')).toBe('wait_for_partner'); // blocked in the exec FIFO's open
    await c.delete();
    expect(c.exitStatus?.exitStatus).toBe(137);
    expect(fs.existsSync(`/proc/${c.pid}`)).toBe(false);
    expect(fs.existsSync(path.join(bundle, 'rootfs/tmp/ran'))).toBe(false);
    expect(fs.existsSync(path.join('/sys/fs/cgroup/memory', CG_ROOT, id))).toBe(false);
    containers.splice(containers.indexOf(c), 1);
  });

  test('delete refuses a running container unless forced', async () => {
    const c = await create({ spec: specFor(nextId(), withProcessArgs('sleep', '1000')) });
    await c.start();
    await expect(c.delete()).rejects.toThrow(/is running: failed precondition/);
    expect((await c.delete({ force: true })).exitStatus).toBe(137);
  });
});

describe('invalid and hostile specs', () => {
  test('validation errors name every problem; nothing is created', async () => {
    const id = nextId();
    const spec = specFor(id, withProcessArgs('true'));
    spec.process.cwd = 'relative';
    spec.linux!.seccomp = { defaultAction: 'SCMP_ACT_ERRNO' };
    spec.linux!.sysctl = { 'kernel.panic': '1' };
    spec.linux!.namespaces!.push({ type: 'user' });
    const err = await create({ id, spec }).catch((e) => e);
    expect(err.kind).toBe('InvalidArgument');
    expect(err.message).toContain('process.cwd "relative" must be an absolute path');
    expect(err.message).toContain('linux.sysctl "kernel.panic" is not namespaced');
    expect(err.message).toContain('linux.seccomp (seccomp filters are not applied by Berth)');
    expect(err.message).toContain('linux.namespaces.user (user namespaces are not supported)');
    expect(fs.existsSync(path.join('/sys/fs/cgroup/memory', CG_ROOT, id))).toBe(false);
  });

  test('runtime failures: a missing bind source, a missing program; nothing is left behind', async () => {
    const id = nextId();
    const missing = specFor(id, withProcessArgs('true'), withMounts([{ destination: '/data', type: 'bind', source: path.join(tmp, 'no-such-dir'), options: ['rbind'] }]));
    await expect(create({ id, spec: missing })).rejects.toThrow(/no-such-dir|ENOENT/);
    expect(fs.existsSync(path.join('/sys/fs/cgroup/memory', CG_ROOT, id))).toBe(false);

    const id2 = nextId();
    const err = await create({ id: id2, spec: specFor(id2, withProcessArgs('no-such-program')) }).catch((e) => e);
    expect(err.kind).toBe('InvalidArgument');
    expect(err.message).toMatch(/exec: "no-such-program": executable file not found in \$PATH/);
    expect(fs.existsSync(path.join('/sys/fs/cgroup/memory', CG_ROOT, id2))).toBe(false);
    expect(hostMountsUnder(tmp)).toEqual([]);

    // found and executable, but not a program: created, and start fails with the exec error
    const id3 = nextId();
    const bundle = makeBundle();
    fs.writeFileSync(path.join(bundle, 'rootfs/bin/not-elf'), 'garbage\n', { mode: 0o755 });
    const c = await create({ id: id3, bundle, spec: specFor(id3, withProcessArgs('/bin/not-elf')) });
    await expect(c.start()).rejects.toThrow(/start .*: start the workload: exec "\/bin\/not-elf": ENOEXEC \(Exec format error\)/);
    // 127 is the status glibc's posix_spawn child exits with after a failed execve; 255 when the
    // reaper finds the child already collected. Which one wins is a race (to make deterministic).
    expect([127, 255]).toContain((await c.wait()).exitStatus);
    // the failed worker threads have ended (only the pool's warm one may remain)
    // a thread may end between the listing and the read of its name
    const threadName = (t: string) => {
      try {
        return fs.readFileSync(`/proc/self/task/${t}/comm`, 'utf8').trim();
      } catch {
        return '';
      }
    };
    const initThreads = () => fs.readdirSync('/proc/self/task').filter((t) => threadName(t) === 'berth-init').length;
    for (let i = 0; i < 100 && initThreads() > 1; i++) await new Promise((r) => setTimeout(r, 20));
    expect(initThreads()).toBeLessThanOrEqual(1);
  });
});

describe('idle threads', () => {
  const named = (name: string) =>
    fs.readdirSync('/proc/self/task').filter((t) => {
      try {
        return fs.readFileSync(`/proc/self/task/${t}/comm`, 'utf8').trim() === name;
      } catch {
        return false; // ended between the listing and the read
      }
    }).length;

  test('the warm init thread refilled after a create and the namespace helper end when unused; the next create starts them again', async () => {
    process.env.BERTH_INIT_IDLE_MS = '300';
    try {
      const first = await runContainer(specFor(nextId(), withProcessArgs('echo', 'one')));
      expect(first.stdout).toBe('one\n');
      await waitFor('the warm init thread and the helper to end', () => (named('berth-init') === 0 && named('berth-nshelper') === 0 ? true : undefined), 10_000);
      const second = await runContainer(specFor(nextId(), withProcessArgs('echo', 'two')));
      expect(second.stdout).toBe('two\n');
    } finally {
      delete process.env.BERTH_INIT_IDLE_MS;
      await sharedRuntime().pool.prewarm(); // as the other tests expect: warm, without a limit
    }
  });
});

describe('namespaces joined by path, sysctls', () => {
  test('a second container joins the first one\'s network, IPC and PID namespaces (a pod)', async () => {
    const id = nextId();
    const first = await create({ id, spec: specFor(id, withProcessArgs('sleep', '1000'), withHostname('pod')) });
    await first.start();
    const ns = (t: string) => fs.readlinkSync(`/proc/${first.pid}/ns/${t}`);
    const r = await sh(
      'readlink /proc/self/ns/net; readlink /proc/self/ns/ipc; readlink /proc/self/ns/pid; echo $$; cat /proc/1/comm; hostname',
      withNamespace('network', `/proc/${first.pid}/ns/net`),
      withNamespace('ipc', `/proc/${first.pid}/ns/ipc`),
      withNamespace('pid', `/proc/${first.pid}/ns/pid`),
      withHostname('member'),
    );
    const [net_, ipc, pid, self, comm, host] = r.stdout.split('\n');
    expect([net_, ipc, pid]).toEqual([ns('net'), ns('ipc'), ns('pid')]);
    expect(Number(self)).toBeGreaterThan(1); // not the init of that PID namespace
    expect(comm).toBe('sleep'); // its /proc shows the pod's PID namespace
    expect(host).toBe('member'); // its own UTS namespace
  });

  test('namespaced sysctls are set in the container only', async () => {
    const host = fs.readFileSync('/proc/sys/net/ipv4/ip_unprivileged_port_start', 'utf8').trim();
    const id = nextId();
    const spec = specFor(id, withProcessArgs('sh', '-c', 'cat /proc/sys/net/ipv4/ip_unprivileged_port_start /proc/sys/kernel/shmmni'));
    spec.linux!.sysctl = { 'net.ipv4.ip_unprivileged_port_start': '0', 'kernel.shmmni': '1234' };
    const r = await runContainer(spec);
    expect(r.stdout).toBe('0\n1234\n');
    expect(fs.readFileSync('/proc/sys/net/ipv4/ip_unprivileged_port_start', 'utf8').trim()).toBe(host);
  });
});

describe('runc on the same bundle (reference peer)', () => {
  const SCRIPT =
    'grep -E "^(Cap|NoNewPrivs|Uid|Gid|Groups)" /proc/self/status; ulimit -n; ulimit -Hn; hostname; umask; pwd; env | sort; ' +
    'ls -la /dev | sed 1d | awk "{print \\$1, \\$NF}" | sort; awk "{print \\$5, \\$6, \\$9, \\$NF}" /proc/self/mountinfo | sort; grep -v "^0::" /proc/self/cgroup | sort';

  async function both(...opts: SpecOpt[]): Promise<{ runc: string; berth: string }> {
    const id = nextId();
    const bundle = makeBundle();
    for (const a of ['sed', 'awk', 'sort']) fs.symlinkSync('busybox', path.join(bundle, 'rootfs/bin', a));
    const spec = specFor(id, withProcessArgs('sh', '-c', SCRIPT), withEnv([]), ...opts);
    fs.writeFileSync(path.join(bundle, 'config.json'), JSON.stringify(spec));
    const state = path.join(tmp, 'runc-state');
    const runcOut = await run('runc', ['--root', state, 'run', '--bundle', bundle, id], { encoding: 'utf8' }).finally(() =>
      run('runc', ['--root', state, 'delete', '-f', id]).catch(() => undefined),
    );
    const r = await runContainer(spec, { bundle });
    return { runc: runcOut.stdout, berth: r.stdout };
  }

  test('the default spec: same credentials, capabilities, limits, /dev, mounts and cgroups as runc', async () => {
    const { runc, berth } = await both(withHostname('peer'));
    expect(berth).toBe(runc);
  });

  test('a non-root user with extra groups, a read-only rootfs and a bind mount: same as runc', async () => {
    const host = fs.mkdtempSync(path.join(tmp, 'peer-bind-'));
    const { runc, berth } = await both(
      withUser(1000, 1000, [10, 20]),
      withReadonlyRootfs,
      withRlimit('RLIMIT_NOFILE', 100, 200),
      withMounts([{ destination: '/data', type: 'bind', source: host, options: ['rbind', 'ro', 'nosuid'] }]),
    );
    expect(berth).toBe(runc);
  });
});

describe('start-up time', () => {
  /** ms from createContainer to the first byte of output. */
  async function timeToFirstOutput(warm: boolean): Promise<{ total: number; timings: Record<string, number> }> {
    const id = nextId();
    if (warm) await sharedRuntime().pool.prewarm();
    const [r, w] = pipe();
    const sock = new net.Socket({ fd: r, readable: true, writable: false });
    const first = new Promise<bigint>((resolve) => sock.once('data', () => resolve(process.hrtime.bigint())));
    const t0 = process.hrtime.bigint();
    const c = await create({ id, spec: specFor(id, withProcessArgs('echo', 'hi'), withEnv([])), stdio: { stdout: w }, warm });
    await c.start();
    fs.closeSync(w);
    const t1 = await first;
    sock.destroy();
    await c.wait();
    return { total: Number(t1 - t0) / 1e6, timings: c.timings };
  }

  /** ms from `runc run` to its first byte of output, on a bundle with the same spec. */
  async function runcTimeToFirstOutput(): Promise<number> {
    const id = nextId();
    const bundle = makeBundle();
    fs.writeFileSync(path.join(bundle, 'config.json'), JSON.stringify(specFor(id, withProcessArgs('echo', 'hi'), withEnv([]))));
    const t0 = process.hrtime.bigint();
    const child = spawn('runc', ['--root', path.join(tmp, 'runc-state'), 'run', '--bundle', bundle, id], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise((resolve) => child.once('exit', resolve));
    const first = await new Promise<bigint>((resolve, reject) => {
      child.stdout.once('data', () => resolve(process.hrtime.bigint()));
      child.once('error', reject);
      void exited.then(() => reject(new Error(`runc run produced no output: ${stderr}`)));
    });
    await exited;
    await run('runc', ['--root', path.join(tmp, 'runc-state'), 'delete', '-f', id]).catch(() => undefined);
    return Number(first - t0) / 1e6;
  }

  test('create + start → first output, warm and cold worker, and runc run for comparison', async () => {
    const median = (xs: number[]) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    const warm: number[] = [];
    const cold: number[] = [];
    const runc: number[] = [];
    let sample: Record<string, number> = {};
    for (let i = 0; i < 5; i++) {
      const w = await timeToFirstOutput(true);
      warm.push(w.total);
      sample = w.timings;
      cold.push((await timeToFirstOutput(false)).total);
      runc.push(await runcTimeToFirstOutput());
    }
    const fmt = (xs: number[]) => `median ${median(xs).toFixed(1)} ms (${xs.map((x) => x.toFixed(1)).join(', ')})`;
    // eslint-disable-next-line no-console
    console.log(
      `create+start → first output\n  warm worker: ${fmt(warm)}\n  cold worker: ${fmt(cold)}\n  runc run:    ${fmt(runc)}\n  warm steps: ${JSON.stringify(sample)}`,
    );
    expect(median(warm)).toBeLessThan(median(cold));
  }, 120_000);
});
