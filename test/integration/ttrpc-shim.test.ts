// Interop of runtime/ttrpc with the real Go ttrpc 1.1 peer: containerd's own shim
// (/usr/bin/containerd-shim-runc-v2 from Debian's containerd 1.6 package), bootstrapped the way
// containerd does it (reference §7.2): `-namespace <ns> -address <addr> -publish-binary <bin>
// -id <id> start` in the bundle directory, TTRPC_ADDRESS pointing at a ttrpc server of ours that
// implements containerd.services.events.ttrpc.v1.Events/Forward, the `log` FIFO held open for
// reading, the printed address dialled with our client.
//
// Our client → Go server: Connect, State of an unknown id, the statuses Go's ttrpc answers for
// unknown services/methods, malformed and oversized frames, Shutdown.
// Go client → our server: with runc installed, a real container's lifecycle makes the shim
// forward /tasks/* events to our Events server.
//
// Every shim started here is killed by pid on cleanup, and its socket under /run/containerd/s/
// (and the runc state dir of the test namespace) removed.
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { fromAny } from '../../proto/codec';
import {
  FrameReader,
  TtrpcClient,
  TtrpcError,
  TtrpcServer,
  decodeResponse,
  encodeFrame,
  encodeRequest,
  socketPathOf,
  type FrameHeader,
  type ResponseEnvelope,
  type TtrpcCallContext,
} from '../../runtime/ttrpc';
import { encode } from '../../proto/codec';

const SHIM = '/usr/bin/containerd-shim-runc-v2';
const TASK = 'containerd.task.v2.Task';
const EVENTS = 'containerd.services.events.ttrpc.v1.Events';
const NS = `berth-ttrpc-${process.pid}`;

function which(bin: string): string | undefined {
  for (const dir of (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':').concat(['/usr/sbin', '/sbin'])) {
    const p = path.join(dir, bin);
    if (fs.existsSync(p)) return p;
  }
  return undefined;
}

const isRoot = process.getuid?.() === 0;
const haveShim = fs.existsSync(SHIM) && isRoot;
const RUNC = which('runc');
/** A statically linked busybox (Debian's busybox-static) to be the container's whole rootfs. */
const BUSYBOX = ['/usr/bin/busybox', '/bin/busybox'].find((p) => {
  try {
    // a dynamic executable names its loader (PT_INTERP) near the start of the file
    const head = Buffer.alloc(4096);
    const fd = fs.openSync(p, 'r');
    fs.readSync(fd, head, 0, head.length, 0);
    fs.closeSync(fd);
    return !head.includes('ld-linux');
  } catch {
    return false;
  }
});
const describeShim = haveShim ? describe : describe.skip;
const testWithRunc = RUNC && BUSYBOX ? test : test.skip;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Forwarded {
  namespace: string | undefined;
  topic: string;
  event: Record<string, any> | undefined;
  peerPid: number | undefined;
}

let tmp: string;
let eventsServer: TtrpcServer;
let forwarded: Forwarded[];
const clients: TtrpcClient[] = [];
const shims: { id: string; pid?: number; socket?: string; log?: net.Socket; logText: string[] }[] = [];

/** Whether a pid is a live (not zombie) process. */
function alive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

/** Shim daemons for an id of ours, found by command line (in case Connect never answered). */
function shimPidsFor(id: string): number[] {
  const out: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (argv[0].endsWith('containerd-shim-runc-v2') && argv.includes(NS) && argv[argv.indexOf('-id') + 1] === id) {
        out.push(Number(entry));
      }
    } catch {
      // gone
    }
  }
  return out;
}

async function waitFor(cond: () => boolean, ms = 5000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (cond()) return true;
    await sleep(20);
  }
  return cond();
}

/** A bundle directory as containerd prepares it: config.json and the `log` FIFO, held open. */
function makeBundle(id: string, config: object) {
  const bundle = path.join(tmp, id);
  fs.mkdirSync(bundle, { recursive: true });
  fs.writeFileSync(path.join(bundle, 'config.json'), JSON.stringify(config));
  execFileSync('mkfifo', ['-m', '0700', path.join(bundle, 'log')]);
  const fd = fs.openSync(path.join(bundle, 'log'), fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
  const log = new net.Socket({ fd, readable: true, writable: false });
  const record = { id, log, logText: [] as string[] };
  log.on('data', (d) => record.logText.push(String(d)));
  log.on('error', () => {});
  shims.push(record);
  return { bundle, record };
}

/** The socket address containerd's shim computes: sha256(<address>/<ns>/<id>) under /run/containerd/s. */
function expectedAddress(address: string, id: string): string {
  return `unix:///run/containerd/s/${createHash('sha256').update(path.join(address, NS, id)).digest('hex')}`;
}

/** Runs `<shim> … start` as containerd does; resolves with its combined, trimmed output. */
function startShim(id: string, bundle: string, containerdAddress: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(SHIM, ['-namespace', NS, '-address', containerdAddress, '-publish-binary', '/bin/true', '-id', id, 'start'], {
      cwd: bundle,
      env: { ...process.env, TTRPC_ADDRESS: path.join(tmp, 'containerd.sock.ttrpc'), GOMAXPROCS: '2' },
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: true, // containerd starts shims in a new process group
    });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    child.stdin.end(); // no runtime options
    child.once('error', reject);
    child.once('close', (code) => {
      if (code === 0) resolve(output.trim());
      else reject(new Error(`shim start exited ${code}: ${output}`));
    });
  });
}

async function rawConnection(address: string) {
  const socket = net.createConnection({ path: socketPathOf(address) });
  await new Promise((r, j) => {
    socket.once('connect', r);
    socket.once('error', j);
  });
  const frames: { header: FrameHeader; response: ResponseEnvelope }[] = [];
  const reader = new FrameReader((header, payload) => frames.push({ header: { ...header }, response: decodeResponse(payload!) }));
  socket.on('data', (d: Buffer) => reader.push(d));
  return {
    socket,
    frames,
    send: (b: Buffer) => socket.write(b),
    async next(count: number) {
      if (!(await waitFor(() => frames.length >= count))) throw new Error(`no response #${count}`);
      return frames[count - 1];
    },
  };
}

function requestFrame(streamId: number, service: string, method: string, payload: Buffer): Buffer {
  return encodeFrame(streamId, 1, encodeRequest({ service, method, payload, timeoutNano: 0, metadata: [] }));
}

describeShim('ttrpc interop with containerd-shim-runc-v2 (Go ttrpc 1.1)', () => {
  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-ttrpc-shim-'));
    forwarded = [];
    eventsServer = new TtrpcServer();
    eventsServer.register({
      name: EVENTS,
      handlers: {
        async Forward(request, ctx) {
          const c = ctx as TtrpcCallContext;
          forwarded.push({
            namespace: c.namespaceHeader,
            topic: request.envelope?.topic,
            event: fromAny(request.envelope?.event),
            peerPid: c.peer?.pid,
          });
        },
      },
    });
    await eventsServer.listen(path.join(tmp, 'containerd.sock.ttrpc'));
  });

  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    for (const shim of shims.splice(0)) {
      const pids = new Set([...(shim.pid ? [shim.pid] : []), ...shimPidsFor(shim.id)]);
      for (const pid of pids) {
        if (!alive(pid)) continue;
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
        await waitFor(() => !alive(pid), 2000);
      }
      if (RUNC && fs.existsSync(`/run/containerd/runc/${NS}/${shim.id}`)) {
        try {
          execFileSync(RUNC, ['--root', `/run/containerd/runc/${NS}`, 'delete', '-f', shim.id], { stdio: 'ignore' });
        } catch {
          // nothing to delete
        }
      }
      if (shim.socket) fs.rmSync(shim.socket, { force: true });
      shim.log?.destroy();
    }
  });

  afterAll(async () => {
    await eventsServer?.close(500);
    try {
      fs.rmdirSync(`/run/containerd/runc/${NS}`); // only if empty
    } catch {
      // absent or not ours to clear
    }
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  test('start → Connect, State of an unknown id, error statuses, Shutdown', async () => {
    const id = `conn-${process.pid}`;
    const { bundle, record } = makeBundle(id, { ociVersion: '1.0.2', process: { args: ['/bin/true'], cwd: '/' }, root: { path: 'rootfs' } });
    const containerdAddress = path.join(tmp, 'containerd.sock');
    const address = await startShim(id, bundle, containerdAddress);
    expect(address).toBe(expectedAddress(containerdAddress, id));
    expect(fs.readFileSync(path.join(bundle, 'address'), 'utf8')).toBe(address);
    const socketPath = socketPathOf(address);
    Object.assign(record, { socket: socketPath });
    expect(fs.statSync(socketPath).isSocket()).toBe(true);

    const client = await TtrpcClient.connect(address, { timeoutMs: 5000 });
    clients.push(client);
    const task = client.service(TASK);

    // Connect: the shim's pid; no task yet
    const connected = await task.Connect({ id }, { timeoutMs: 5000, namespace: NS });
    Object.assign(record, { pid: connected.shim_pid });
    expect(connected.shim_pid).toBeGreaterThan(1);
    expect(connected.task_pid).toBe(0);
    expect(alive(connected.shim_pid)).toBe(true);
    expect(fs.readFileSync(`/proc/${connected.shim_pid}/cmdline`, 'utf8')).toContain('containerd-shim-runc-v2');

    // State of an unknown container: NotFound, the shim's errdefs text
    const notFound = await task.State({ id: 'no-such-container' }, { timeoutMs: 2000 }).catch((e) => e);
    expect(notFound).toBeInstanceOf(TtrpcError);
    expect(notFound.kind).toBe('NotFound');
    expect(notFound.status).toEqual({ code: 5, message: 'container not created: not found' });

    // What Go's ttrpc answers for unknown services and methods, and for an undecodable payload
    const badService = await client.callRaw('no.such.Service', 'Foo', Buffer.alloc(0)).catch((e) => e);
    expect(badService.status).toEqual({ code: 12, message: 'service no.such.Service' });
    const badMethod = await client.callRaw(TASK, 'Bogus', Buffer.alloc(0)).catch((e) => e);
    expect(badMethod.status).toEqual({ code: 12, message: 'method Bogus' });
    expect(badMethod.kind).toBe('NotImplemented');
    const badPayload = await client.callRaw(TASK, 'State', Buffer.from([0x0f])).catch((e) => e);
    expect(badPayload.status.code).toBe(13);
    expect(badPayload.status.message).toMatch(/^ttrpc: error unmarshalling payload: /);

    // Multiplexing: many calls in flight on the one connection
    const many = await Promise.all(Array.from({ length: 64 }, () => task.Connect({ id })));
    expect(new Set(many.map((r) => r.shim_pid))).toEqual(new Set([connected.shim_pid]));

    // Raw frames: oversized, malformed envelope, even stream id — each answered on its stream id,
    // the connection kept in sync
    const raw = await rawConnection(address);
    try {
      const big = requestFrame(1, TASK, 'Connect', Buffer.alloc(5 << 20, 0x61));
      raw.send(big);
      raw.send(requestFrame(3, TASK, 'Connect', encode('containerd.task.v2.ConnectRequest', { id })));
      const over = await raw.next(1);
      expect(over.header).toMatchObject({ streamId: 1, type: 2 });
      expect(over.response.status).toEqual({ code: 8, message: `message length ${big.length - 10} exceed maximum message size of 4194304` });
      const after = await raw.next(2);
      expect(after.header.streamId).toBe(3);
      expect(after.response.status).toBeUndefined();

      raw.send(encodeFrame(5, 1, Buffer.from([0x0f, 0x01])));
      const malformed = await raw.next(3);
      expect(malformed.header.streamId).toBe(5);
      expect(malformed.response.status?.code).toBe(3);
      expect(malformed.response.status?.message).toMatch(/^unmarshal request error: /);

      raw.send(requestFrame(6, TASK, 'Connect', Buffer.alloc(0)));
      const even = await raw.next(4);
      expect(even.header.streamId).toBe(6);
      expect(even.response.status).toEqual({ code: 3, message: 'StreamID must be odd for client initiated streams' });
    } finally {
      raw.socket.destroy();
    }

    // Shutdown: the shim exits, the connection drops, the socket goes
    const closed = new Promise((r) => client.once('close', r));
    expect(await task.Shutdown({ id, now: true }, { timeoutMs: 3000 })).toEqual({});
    await closed;
    const after = await task.Connect({ id }).catch((e) => e);
    expect(after.kind).toBe('Unavailable');
    expect(await waitFor(() => !alive(connected.shim_pid))).toBe(true);
    expect(await waitFor(() => !fs.existsSync(socketPath))).toBe(true);
    // the shim daemon logged through the FIFO we held open
    expect(record.logText.join('')).toContain('starting signal loop');
  });

  testWithRunc('a container lifecycle: the shim forwards task events to our Events server', async () => {
    const id = `life-${process.pid}`;
    // `runc spec` writes its default config.json into the current directory
    const specDir = fs.mkdtempSync(path.join(tmp, 'spec-'));
    execFileSync(RUNC!, ['spec'], { cwd: specDir });
    const config = JSON.parse(fs.readFileSync(path.join(specDir, 'config.json'), 'utf8'));
    config.process.terminal = false;
    config.process.args = ['/bin/sh', '-c', 'exit 3'];
    config.root = { path: 'rootfs', readonly: false };
    const { bundle, record } = makeBundle(id, config);
    fs.mkdirSync(path.join(bundle, 'rootfs', 'bin'), { recursive: true });
    fs.copyFileSync(BUSYBOX!, path.join(bundle, 'rootfs', 'bin', 'busybox'));
    fs.chmodSync(path.join(bundle, 'rootfs', 'bin', 'busybox'), 0o755);
    fs.symlinkSync('busybox', path.join(bundle, 'rootfs', 'bin', 'sh'));

    const address = await startShim(id, bundle, path.join(tmp, 'containerd.sock'));
    Object.assign(record, { socket: socketPathOf(address) });
    const client = await TtrpcClient.connect(address, { timeoutMs: 5000 });
    clients.push(client);
    const task = client.service(TASK);
    const { shim_pid } = await task.Connect({ id });
    Object.assign(record, { pid: shim_pid });
    forwarded.length = 0;

    const created = await task.Create({ id, bundle }, { timeoutMs: 20000 });
    expect(created.pid).toBeGreaterThan(1);
    const waiting = task.Wait({ id }); // outstanding while the other calls complete
    const started = await task.Start({ id }, { timeoutMs: 10000 });
    expect(started.pid).toBe(created.pid);
    const waited = await waiting;
    expect(waited.exit_status).toBe(3);
    const deleted = await task.Delete({ id }, { timeoutMs: 10000 });
    expect(deleted).toMatchObject({ pid: created.pid, exit_status: 3 });

    expect(await waitFor(() => forwarded.some((e) => e.topic === '/tasks/delete'))).toBe(true);
    expect(forwarded.map((e) => e.topic)).toEqual(['/tasks/create', '/tasks/start', '/tasks/exit', '/tasks/delete']);
    for (const e of forwarded) {
      expect(e.namespace).toBe(NS); // sent as containerd-namespace-ttrpc by Go's ttrpc client
      expect(e.peerPid).toBe(shim_pid); // SO_PEERCRED of the shim's connection
    }
    expect(forwarded[0].event).toMatchObject({ container_id: id, bundle, pid: created.pid });
    expect(forwarded[2].event).toMatchObject({ container_id: id, id, pid: created.pid, exit_status: 3 });

    const closed = new Promise((r) => client.once('close', r));
    // The shim may exit before its reply leaves (containerd ignores Shutdown's error too).
    await task.Shutdown({ id, now: true }, { timeoutMs: 3000 }).catch((err) => expect(err.kind).toBe('Unavailable'));
    await closed;
    expect(await waitFor(() => !alive(shim_pid))).toBe(true);
  });
});
