// Berth's shim (runtime io.containerd.berth.v1, bin/containerd-shim-berth-v1) under the REAL
// containerd 1.6 daemon as a peer, driven by the real `ctr`: containerd resolves the runtime to
// the shim through its PATH (a directory holding a symlink to our binary), runs its start/delete
// bootstrap and talks containerd.task.v2.Task to it over ttrpc; the shim publishes task events to
// containerd's ttrpc Events service.
//
// Everything lives in one temporary directory (containerd's root, state and sockets, ctr's FIFOs,
// the image archive and a rootfs), in a containerd namespace of its own (so the containers'
// cgroups are /<ns>/<id> in each hierarchy), and is removed afterwards, even when a test fails:
// tasks, containers, snapshots, mounts, cgroups, shim sockets, and processes by pid (shims found
// through the socket their bundle's `address` names, workloads through `ctr tasks ls`).
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tar from 'tar';
import { pidInFile, running } from '../../runtime/shim/pidfile';
import { peerCredentials } from '../../runtime/ttrpc/peercred';
import { PACKAGE_ROOT, sleep, tempDir, waitFor } from '../helpers/daemon';
import {
  containerdAvailable,
  ctr as ctrAt,
  CTR_BIN,
  mountsUnder,
  startContainerd,
  unmountUnder,
  writeOciLayout,
  type CtrResult,
  type PeerContainerd,
} from '../helpers/containerd';

const RUNTIME = 'io.containerd.berth.v1';
const SHIM = path.join(PACKAGE_ROOT, 'bin', 'containerd-shim-berth-v1');
const SHIM_SOCKET_DIR = '/run/berth/s';
const SCRIPT = '/usr/bin/script';
const IMAGE = 'berth.test/busybox:latest';
/** Our own containerd namespace: the containers' cgroups are /<NS>/<id>. */
const NS = `berthshim${crypto.randomBytes(4).toString('hex')}`;

const enabled = containerdAvailable() && process.getuid?.() === 0 && fs.existsSync(SHIM) && fs.existsSync(SCRIPT);

jest.setTimeout(60_000);

/** Single-quotes for sh. */
const shq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** A busybox root filesystem with every applet linked, the mount points the default spec uses. */
function makeRootfs(dir: string): string {
  const root = path.join(dir, 'rootfs');
  for (const d of ['bin', 'proc', 'dev', 'sys', 'etc', 'tmp', 'run', 'root']) fs.mkdirSync(path.join(root, d), { recursive: true });
  fs.copyFileSync('/bin/busybox', path.join(root, 'bin', 'busybox'));
  fs.chmodSync(path.join(root, 'bin', 'busybox'), 0o755);
  const applets = execFileSync('/bin/busybox', ['--list']).toString().split('\n').filter((a) => a && a !== 'busybox' && !a.includes('/'));
  for (const a of applets) fs.symlinkSync('busybox', path.join(root, 'bin', a));
  fs.writeFileSync(path.join(root, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  fs.writeFileSync(path.join(root, 'etc', 'group'), 'root:x:0:\n');
  fs.chmodSync(path.join(root, 'tmp'), 0o1777);
  return root;
}

async function tarOf(cwd: string, entries: string[]): Promise<Buffer> {
  const chunks: Buffer[] = [];
  const stream = tar.c({ cwd, portable: true }, entries) as unknown as NodeJS.ReadableStream;
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

const processAlive = running;

/**
 * Live processes our containerd started, and theirs: shims (and whatever else the shim's `start`
 * left running). containerd gives them TTRPC_ADDRESS=<its ttrpc socket>; the workloads get the
 * spec's environment instead.
 */
function peerChildren(ttrpcAddress: string): number[] {
  const needle = Buffer.from(`TTRPC_ADDRESS=${ttrpcAddress}\0`);
  const out: number[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      if (fs.readFileSync(`/proc/${name}/environ`).includes(needle) && processAlive(Number(name))) out.push(Number(name));
    } catch {
      /* gone, or a kernel thread */
    }
  }
  return out;
}

/** Paths of the unix sockets `pid` listens on. */
function listeningSockets(pid: number): string[] {
  const byInode = new Map<string, string>();
  for (const line of fs.readFileSync('/proc/net/unix', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    // Num RefCount Protocol Flags Type St Inode Path; flags 00010000 = listening
    if (f[7] && (parseInt(f[3]!, 16) & 0x10000) !== 0) byInode.set(f[6]!, f[7]);
  }
  const out = new Set<string>();
  try {
    for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
      const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`, 'utf8') as string);
      const p = m && byInode.get(m[1]!);
      if (p) out.add(p);
    }
  } catch {
    /* gone */
  }
  return [...out];
}

/** Removes a shim socket a killed shim left, and its own directory under the shim socket directory. */
function removeSocket(sock: string): void {
  fs.rmSync(sock, { force: true });
  const parent = path.dirname(sock);
  if (path.dirname(parent) === SHIM_SOCKET_DIR) fs.rmSync(parent, { recursive: true, force: true });
}

/** Our cgroup directories (/sys/fs/cgroup/<hierarchy>/<NS>/…, or /sys/fs/cgroup/<NS>/… on v2), deepest first. */
function ourCgroups(): string[] {
  const tops = [path.join('/sys/fs/cgroup', NS)];
  for (const h of fs.readdirSync('/sys/fs/cgroup')) tops.push(path.join('/sys/fs/cgroup', h, NS));
  const out: string[] = [];
  const walk = (d: string) => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) if (e.isDirectory()) walk(path.join(d, e.name));
    out.push(d);
  };
  for (const t of tops) if (fs.existsSync(t)) walk(t);
  return out;
}

function removeOurCgroups(): void {
  for (const d of ourCgroups()) {
    try {
      fs.rmdirSync(d);
    } catch {
      /* still busy: reported by the final check */
    }
  }
}

(enabled ? describe : describe.skip)('the berth shim under the real containerd, driven by ctr', () => {
  let dir: string;
  let peer: PeerContainerd;
  let rootfs: string;
  let fifoDir: string;
  const ids: string[] = [];
  /** the shim of each task of ours seen running, and the socket it serves (from the bundle's `address`) */
  const shims = new Map<string, { pid: number; socket: string }>();
  /** the workload of each task of ours seen running (pid and command line, to kill it by pid only if it is still that) */
  const workloads = new Map<string, { pid: number; cmdline: string }>();
  const background: ChildProcess[] = [];
  const hostNs: Record<string, string> = {};
  let hostMountinfo: string;

  const ctr = (args: string[], opts: { allowFail?: boolean; timeoutMs?: number } = {}): Promise<CtrResult> =>
    ctrAt(peer.address, args, { namespace: NS, timeoutMs: 45_000, ...opts });
  const ctrArgv = (args: string[]) => [CTR_BIN, '--address', peer.address, '--namespace', NS, ...args];
  /** ctr under a pseudo-terminal (util-linux script); resolves with what the terminal showed and the exit status. */
  const ctrTty = (args: string[]): Promise<{ stdout: string; code: number }> =>
    new Promise((resolve, reject) => {
      const child = execFile(SCRIPT, ['-qec', ctrArgv(args).map(shq).join(' '), '/dev/null'], { timeout: 45_000 }, (err, stdout, stderr) => {
        if (err && typeof err.code !== 'number') reject(new Error(`script: ${err.message} ${stderr}`));
        else resolve({ stdout, code: err ? (err.code as unknown as number) : 0 });
      });
      void child;
    });
  const tasks = async (): Promise<Record<string, { pid: number; status: string }>> =>
    Object.fromEntries(
      (await ctr(['tasks', 'ls'])).stdout
        .split('\n')
        .slice(1)
        .filter(Boolean)
        .map((l) => l.trim().split(/\s+/))
        .map(([id, pid, status]) => [id, { pid: Number(pid), status: status! }]),
    );
  const waitStatus = (id: string, status: string | undefined) =>
    waitFor(`task ${id} to be ${status ?? 'gone'}`, async () => ((await tasks())[id]?.status === status ? true : undefined), 20_000);
  /** The pid of a running task's workload (noted for the clean-up). */
  const workloadOf = async (id: string): Promise<number> => {
    const { pid } = (await tasks())[id]!;
    workloads.set(id, { pid, cmdline: fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8') });
    return pid;
  };
  const newId = (name: string) => {
    ids.push(name);
    return name;
  };
  /** The spare berth shim of our containerd (runtime/shim/spare.ts), where a released shim may go. */
  const spareShimPid = () => pidInFile(path.join('/run/berth/s', `spare-${crypto.createHash('sha256').update(peer.address).digest('hex')}`, 'pid'));
  /** The shim serving task `id`: who listens on the socket named in its bundle's `address` (containerd-wire §9.2), by SO_PEERCRED. */
  const shimOf = async (id: string): Promise<{ pid: number; socket: string }> => {
    const address = fs.readFileSync(path.join(peer.state, 'io.containerd.runtime.v2.task', NS, id, 'address'), 'utf8');
    const socket = address.replace(/^unix:\/\//, '');
    const pid = await new Promise<number>((resolve, reject) => {
      const conn = net.createConnection({ path: socket });
      conn.once('error', reject);
      conn.once('connect', () => {
        try {
          const cred = peerCredentials(conn);
          if (cred) resolve(cred.pid);
          else reject(new Error(`no peer credentials on ${socket}`));
        } catch (err) {
          reject(err);
        } finally {
          conn.destroy();
        }
      });
    });
    const shim = { pid, socket };
    shims.set(id, shim);
    return shim;
  };

  /**
   * `ctr events` on the peer, running until stop(); resolves once the subscription reports events
   * (ctr subscribes asynchronously: a probe container is created and removed until one shows).
   */
  const watchEvents = async () => {
    const proc = spawn(CTR_BIN, ['--address', peer.address, 'events'], { stdio: ['ignore', 'pipe', 'pipe'] });
    background.push(proc);
    let out = '';
    proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    /** the line "<time> <ns> <topic> <json>" of an event of ours about container `id` */
    const find = (topic: string, id: string) => out.split('\n').find((l) => l.includes(` ${NS} ${topic} `) && l.includes(`"container_id":"${id}"`));
    const stop = () => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    };
    try {
      await waitFor('ctr events to report', async () => {
        if (out.includes(`${NS} /containers/delete`)) return true;
        await ctr(['containers', 'create', '--runtime', RUNTIME, IMAGE, 'events-probe', '/bin/true']);
        await ctr(['containers', 'rm', 'events-probe']);
        await sleep(100);
        return undefined;
      });
    } catch (err) {
      stop();
      throw err;
    }
    return {
      stop,
      waitFor: (topic: string, id: string) => waitFor(`the ${topic} event of ${id}`, () => find(topic, id), 15_000),
    };
  };

  /** Kills and removes what a test left of one container: task, container (and snapshot), shim, socket, cgroup. */
  async function removeContainer(id: string): Promise<void> {
    // a test that failed while containerd was down: bring it back to delete through it
    if (peer && !peer.running) await peer.start().catch(() => undefined);
    if (peer?.running) {
      const t = (await tasks().catch(() => ({}) as Record<string, { status: string }>))[id];
      if (t) {
        if (t.status !== 'STOPPED') {
          await ctr(['tasks', 'kill', '-a', '-s', 'SIGKILL', id], { allowFail: true });
          await waitStatus(id, 'STOPPED').catch(() => undefined);
        }
        await ctr(['tasks', 'rm', '-f', id], { allowFail: true });
      }
      await ctr(['containers', 'rm', id], { allowFail: true });
    }
    const workload = workloads.get(id);
    workloads.delete(id);
    if (workload && processAlive(workload.pid)) {
      let cmdline = '';
      try {
        cmdline = fs.readFileSync(`/proc/${workload.pid}/cmdline`, 'utf8');
      } catch {
        /* gone */
      }
      if (cmdline === workload.cmdline) process.kill(workload.pid, 'SIGKILL');
    }
    const shim = shims.get(id);
    shims.delete(id);
    if (shim && processAlive(shim.pid) && peerChildren(peer.ttrpcAddress).includes(shim.pid)) {
      process.kill(shim.pid, 'SIGKILL');
      await waitFor(`shim ${shim.pid} to die`, () => (processAlive(shim.pid) ? undefined : true)).catch(() => undefined);
    }
    if (shim && !processAlive(shim.pid)) removeSocket(shim.socket);
  }

  beforeAll(async () => {
    dir = tempDir('berth-shim-compat-');
    hostMountinfo = fs.readFileSync('/proc/self/mountinfo', 'utf8');
    for (const n of ['net', 'uts', 'mnt', 'pid', 'ipc']) hostNs[n] = fs.readlinkSync(`/proc/self/ns/${n}`);
    // containerd finds containerd-shim-berth-v1 on its PATH
    const binDir = path.join(dir, 'bin');
    fs.mkdirSync(binDir);
    fs.symlinkSync(SHIM, path.join(binDir, 'containerd-shim-berth-v1'));
    fifoDir = path.join(dir, 'fifo');
    fs.mkdirSync(fifoDir);
    rootfs = makeRootfs(dir);
    peer = await startContainerd(path.join(dir, 'containerd'), { pathPrepend: [binDir] });
    // a one-layer image of the rootfs, imported from an OCI archive
    const layout = writeOciLayout([await tarOf(rootfs, fs.readdirSync(rootfs))], 'latest', path.join(dir, 'layout'));
    const archive = path.join(dir, 'image.tar');
    fs.writeFileSync(archive, await tarOf(layout.dir, ['oci-layout', 'index.json', 'blobs']));
    await ctr(['images', 'import', '--base-name', 'berth.test/busybox', archive], { timeoutMs: 60_000 });
    expect((await ctr(['images', 'ls', '-q'])).stdout.split('\n')).toContain(IMAGE);
  }, 120_000);

  afterEach(async () => {
    for (const id of ids.splice(0)) await removeContainer(id);
    removeOurCgroups();
  });

  afterAll(async () => {
    for (const p of background) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    for (const id of ids.splice(0)) await removeContainer(id).catch(() => undefined);
    if (peer) {
      await ctr(['images', 'rm', IMAGE], { allowFail: true }).catch(() => undefined);
      await peer.stop();
      // The spare berth shim leaves by itself within a second of containerd's socket going away.
      for (let i = 0; i < 60 && peerChildren(peer.ttrpcAddress).length > 0; i++) await sleep(50);
      // whatever containerd's shims left running (a shim of ours would be a leak; each test waits for its shims to exit)
      const left = peerChildren(peer.ttrpcAddress);
      for (const pid of left) {
        const sockets = listeningSockets(pid);
        const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
        console.warn(`killing process ${pid} left by the shim (${cmd.trim()}), listening on ${sockets.join(', ') || 'nothing'}`);
        process.kill(pid, 'SIGKILL');
        sockets.forEach(removeSocket);
      }
      fs.rmSync(path.join('/run/berth/s', `spare-${crypto.createHash('sha256').update(peer.address).digest('hex')}`), { recursive: true, force: true });
    }
    removeOurCgroups();
    if (dir) {
      unmountUnder(dir);
      const left = mountsUnder(dir);
      fs.rmSync(dir, { recursive: true, force: true });
      expect(left).toEqual([]);
    }
    expect(ourCgroups()).toEqual([]);
  }, 60_000);

  test('run --rm: output arrives; the workload is pid 1 in its own pid, uts, mount and network namespaces on an overlay root', async () => {
    const id = newId('run1');
    const script = [
      'echo out-ok',
      'echo pid=$$',
      'echo cmdline=$(tr "\\0\\n" "  " </proc/1/cmdline | cut -c1-10)',
      'echo hostname=$(hostname)',
      'for n in net uts mnt pid ipc; do echo ns-$n=$(readlink /proc/self/ns/$n); done',
      'echo ifs=$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d " " | tr "\\n" ",")',
      'echo ---mountinfo',
      'cat /proc/self/mountinfo',
    ].join('\n');
    const r = await ctr(['run', '--rm', '--runtime', RUNTIME, '--fifo-dir', fifoDir, IMAGE, id, '/bin/sh', '-c', script]);
    const [head, mountinfo = ''] = r.stdout.split('---mountinfo\n');
    const kv = Object.fromEntries(
      head!
        .split('\n')
        .filter((l) => l.includes('='))
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
    );
    expect(head!.startsWith('out-ok\n')).toBe(true);
    expect(kv.pid).toBe('1');
    expect(kv.cmdline).toBe('/bin/sh -c');
    // the spec ctr makes has no hostname: the new UTS namespace starts as a copy of the host's
    expect(kv.hostname).toBe(os.hostname());
    for (const n of ['net', 'uts', 'mnt', 'pid', 'ipc']) {
      expect(kv[`ns-${n}`]).toMatch(new RegExp(`^${n}:\\[\\d+\\]$`));
      expect(kv[`ns-${n}`]).not.toBe(hostNs[n]);
    }
    expect(kv.ifs).toBe('lo,');
    // its own mount table: / is the overlay containerd's snapshotter made, /proc its own
    expect(mountinfo).not.toBe(hostMountinfo);
    const mounts = mountinfo
      .split('\n')
      .filter(Boolean)
      .map((l) => {
        const [pre, post] = l.split(' - ');
        return { target: pre!.split(' ')[4], fstype: post!.split(' ')[0] };
      });
    expect(mounts.filter((m) => m.target === '/').map((m) => m.fstype)).toEqual(['overlay']);
    expect(mounts.find((m) => m.target === '/proc')?.fstype).toBe('proc');
    expect(mounts.find((m) => m.target === '/dev/pts')?.fstype).toBe('devpts');
    expect(mounts.some((m) => m.target.startsWith(peer.dir))).toBe(false);
    // --rm removed task, container, bundle, and the shim is gone
    expect(await tasks()).toEqual({});
    expect((await ctr(['containers', 'ls', '-q'])).stdout.trim()).toBe('');
    expect(fs.existsSync(path.join(peer.state, 'io.containerd.runtime.v2.task', NS, id))).toBe(false);
    expect(ourCgroups().filter((d) => d.endsWith(`/${id}`))).toEqual([]);
  });

  test('run --rm: the exit status reaches ctr', async () => {
    const id = newId('run2');
    const r = await ctr(['run', '--rm', '--runtime', RUNTIME, '--fifo-dir', fifoDir, IMAGE, id, '/bin/sh', '-c', 'echo to-stderr >&2; exit 3'], { allowFail: true });
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('to-stderr');
  });

  test('run -d; tasks ls, ps, exec (plain and -t), pause, resume, metrics, kill, rm; containers rm', async () => {
    const id = newId('det1');
    await ctr(['run', '-d', '--runtime', RUNTIME, '--fifo-dir', fifoDir, IMAGE, id, '/bin/sleep', '1000']);
    await waitStatus(id, 'RUNNING');
    const pid = await workloadOf(id);
    expect(pid).toBeGreaterThan(0);
    expect(processAlive(pid)).toBe(true);
    expect(fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8')).toBe('/bin/sleep\u00001000\u0000');
    const shim = await shimOf(id);
    expect(shim.pid).not.toBe(pid);

    const ps = (await ctr(['tasks', 'ps', id])).stdout.split('\n').slice(1).filter(Boolean).map((l) => Number(l.trim().split(/\s+/)[0]));
    expect(ps).toEqual([pid]);

    // exec without a terminal: stdout, stderr and the exit status
    expect((await ctr(['tasks', 'exec', '--fifo-dir', fifoDir, '--exec-id', 'e1', id, '/bin/sh', '-c', 'echo exec-out; echo pid1=$(cat /proc/1/cmdline | tr "\\0" " ")'])).stdout).toBe(
      'exec-out\npid1=/bin/sleep 1000\n',
    );
    const failing = await ctr(['tasks', 'exec', '--fifo-dir', fifoDir, '--exec-id', 'e2', id, '/bin/sh', '-c', 'echo exec-err >&2; exit 7'], { allowFail: true });
    expect(failing.code).toBe(7);
    expect(failing.stderr).toContain('exec-err');
    // exec with a terminal
    const t = await ctrTty(['tasks', 'exec', '-t', '--fifo-dir', fifoDir, '--exec-id', 'e3', id, '/bin/sh', '-c', 'tty; echo exec-tty-done']);
    expect(t.code).toBe(0);
    expect(t.stdout).toMatch(/\/dev\/pts\/\d+\r*\n/);
    expect(t.stdout).toContain('exec-tty-done');

    await ctr(['tasks', 'pause', id]);
    expect((await tasks())[id]!.status).toBe('PAUSED');
    expect(fs.readFileSync(`/proc/${pid}/status`, 'utf8')).toMatch(/^State:\s+[DS]/m);
    await ctr(['tasks', 'resume', id]);
    expect((await tasks())[id]!.status).toBe('RUNNING');

    const metrics = (await ctr(['tasks', 'metrics', id])).stdout;
    expect(metrics).toMatch(/memory\.usage_in_bytes\s+\d+/);
    expect(metrics).toMatch(/pids\.current\s+1\b/);

    await ctr(['tasks', 'kill', '-s', 'SIGKILL', id]);
    await waitStatus(id, 'STOPPED');
    await waitFor('the workload to be gone', () => (processAlive(pid) ? undefined : true));
    const again = await ctr(['tasks', 'kill', id], { allowFail: true });
    expect(again.code).not.toBe(0);
    expect(again.stderr).toContain('process already finished');
    const rm = await ctr(['tasks', 'rm', id]);
    expect(rm.stdout + rm.stderr).toContain('137');
    expect((await tasks())[id]).toBeUndefined();
    await ctr(['containers', 'rm', id]);
    expect((await ctr(['containers', 'ls', '-q'])).stdout.trim()).toBe('');
    await waitFor('the shim to exit, or to serve as the spare again', () => (!processAlive(shim.pid) || spareShimPid() === shim.pid ? true : undefined));
    expect(fs.existsSync(shim.socket)).toBe(false);
    expect(fs.existsSync(path.join(peer.state, 'io.containerd.runtime.v2.task', NS, id))).toBe(false);
  });

  test('run -t --rm: the workload has a terminal', async () => {
    const id = newId('tty1');
    const r = await ctrTty(['run', '-t', '--rm', '--runtime', RUNTIME, '--fifo-dir', fifoDir, IMAGE, id, '/bin/sh', '-c', 'tty; stty -g >/dev/null && echo stty-ok; echo hello-tty']);
    if (r.code !== 0) console.log('TTY-OUT', JSON.stringify(r.stdout));
    expect({ code: r.code, stdout: r.stdout }).toMatchObject({ code: 0 });
    expect(r.stdout).toMatch(/\/dev\/pts\/0\r*\n/);
    expect(r.stdout).toContain('stty-ok');
    expect(r.stdout).toContain('hello-tty');
    expect(await tasks()).toEqual({});
  });

  test('--memory-limit: a workload that allocates more is OOM-killed (137) and containerd publishes /tasks/oom', async () => {
    const id = newId('oom1');
    const events = await watchEvents();
    try {
      // dd holds one 64 MiB buffer, filled from /dev/zero: far over 16 MiB
      const r = await ctr(
        ['run', '--rm', '--runtime', RUNTIME, '--fifo-dir', fifoDir, '--memory-limit', String(16 * 1024 * 1024), IMAGE, id, '/bin/dd', 'if=/dev/zero', 'of=/dev/null', 'bs=64M', 'count=1'],
        { allowFail: true },
      );
      expect(r.code).toBe(137);
      await events.waitFor('/tasks/oom', id);
      expect(await events.waitFor('/tasks/exit', id)).toContain('"exit_status":137');
    } finally {
      events.stop();
    }
  });

  test('linux.resources.pids (ctr run --config): fork beyond the limit fails inside; the spec hostname is set', async () => {
    const id = newId('pids1');
    const limit = 10;
    const spec = JSON.parse((await ctr(['oci', 'spec'])).stdout);
    const script = [
      'echo hostname=$(hostname)',
      // the inner shell and the sleeps it starts share the limit with this shell
      `/bin/sh -c 'for i in $(seq 20); do /bin/sleep 1000 & echo started $i; done; echo unreachable'`,
      'echo inner-exit=$?',
    ].join('\n');
    spec.process.args = ['/bin/sh', '-c', script];
    spec.process.env = ['PATH=/bin'];
    spec.root = { path: rootfs, readonly: true };
    spec.hostname = 'berth-pids';
    spec.linux.cgroupsPath = `/${NS}/${id}`;
    spec.linux.resources = { ...spec.linux.resources, pids: { limit } };
    const specFile = path.join(dir, `${id}.json`);
    fs.writeFileSync(specFile, JSON.stringify(spec));
    const r = await ctr(['run', '--rm', '--runtime', RUNTIME, '--fifo-dir', fifoDir, '--config', specFile, id], { allowFail: true });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('hostname=berth-pids\n');
    expect(os.hostname()).not.toBe('berth-pids');
    const started = r.stdout.split('\n').filter((l) => l.startsWith('started ')).length;
    expect(started).toBeGreaterThan(0);
    expect(started).toBeLessThanOrEqual(limit - 2); // this shell and the inner one count too
    expect(r.stdout).not.toContain('unreachable');
    expect(r.stdout).toMatch(/inner-exit=[1-9]\d*\n/);
    expect(r.stderr).toMatch(/can't fork/);
    expect(await tasks()).toEqual({});
  });

  test('containerd killed with SIGKILL: the workload survives, a new containerd reconnects, exec, kill and rm work', async () => {
    const id = newId('surv1');
    await ctr(['run', '-d', '--runtime', RUNTIME, '--fifo-dir', fifoDir, IMAGE, id, '/bin/sleep', '1000']);
    await waitStatus(id, 'RUNNING');
    const pid = await workloadOf(id);
    const shim = await shimOf(id);

    const oldPid = peer.pid!;
    await peer.kill('SIGKILL');
    expect(processAlive(oldPid)).toBe(false);
    await sleep(200); // give a (wrongly) dying shim or workload the chance to show it
    expect(processAlive(pid)).toBe(true);
    expect(processAlive(shim.pid)).toBe(true);

    await peer.start();
    await waitStatus(id, 'RUNNING');
    expect((await tasks())[id]!.pid).toBe(pid);
    expect(await shimOf(id)).toEqual(shim); // containerd dialled the same shim again
    expect((await ctr(['tasks', 'exec', '--fifo-dir', fifoDir, '--exec-id', 'after', id, '/bin/echo', 'after-restart'])).stdout).toBe('after-restart\n');

    // the shim's events reach the new containerd (its ttrpc client reconnects to TTRPC_ADDRESS)
    const events = await watchEvents();
    try {
      await ctr(['tasks', 'kill', '-s', 'KILL', id]);
      await waitStatus(id, 'STOPPED');
      expect(processAlive(pid)).toBe(false);
      expect(await events.waitFor('/tasks/exit', id)).toContain('"exit_status":137');
    } finally {
      events.stop();
    }
    await ctr(['tasks', 'rm', id]);
    await ctr(['containers', 'rm', id]);
    expect(await tasks()).toEqual({});
    await waitFor('the shim to exit, or to serve as the spare again', () => (!processAlive(shim.pid) || spareShimPid() === shim.pid ? true : undefined));
    expect(fs.existsSync(shim.socket)).toBe(false);
    expect(fs.existsSync(path.join(peer.state, 'io.containerd.runtime.v2.task', NS, id))).toBe(false);
  });
});
