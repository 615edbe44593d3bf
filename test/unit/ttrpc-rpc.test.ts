// ttrpc client ↔ server over a temporary unix socket (runtime/ttrpc): unary calls through the
// shim Task service of our Root, multiplexing with out-of-order replies, deadlines, cancellation,
// the error statuses ttrpc 1.1 answers (unknown service/method, oversized and malformed frames),
// connection loss, listening on an inherited fd, peer credentials, and bounded shutdown.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { fn } from '../../runtime/native/libc';
import {
  FrameReader,
  TtrpcClient,
  TtrpcError,
  TtrpcServer,
  decodeResponse,
  encodeFrame,
  encodeRequest,
  encodeResponse,
  type FrameHeader,
  type ResponseEnvelope,
  type TtrpcCallContext,
} from '../../runtime/ttrpc';
import { encode } from '../../proto/codec';
import { BerthError } from '../../services/errdefs';
import type { ServiceImplementation } from '../../services/server/rpc';

const TASK = 'containerd.task.v2.Task';
const EVENTS = 'containerd.services.events.ttrpc.v1.Events';

let tmp: string;
let sock: string;
const servers: TtrpcServer[] = [];
const clients: TtrpcClient[] = [];
const raws: net.Socket[] = [];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** What the test handlers saw, for assertions. */
const seen: { ctx: TtrpcCallContext; request: any }[] = [];
const aborted: unknown[] = [];

/** A Task service whose behaviour is steered by the request's id. */
const taskService: ServiceImplementation = {
  name: TASK,
  handlers: {
    async State(request, ctx) {
      seen.push({ ctx: ctx as TtrpcCallContext, request });
      const id: string = request.id;
      if (id.startsWith('delay:')) await sleep(Number(id.slice(6)));
      if (id === 'missing') throw new BerthError('NotFound', 'container not created');
      if (id === 'plain-error') throw new Error('something broke');
      if (id === 'hang') {
        await new Promise<void>((resolve) => {
          ctx.signal.addEventListener('abort', () => {
            aborted.push(ctx.signal.reason);
            resolve();
          });
        });
        throw ctx.signal.reason;
      }
      if (id === 'huge') return { id, bundle: 'x'.repeat(5 << 20) };
      return { id, bundle: `/b/${id}`, pid: 42, status: 'RUNNING', exec_id: request.exec_id };
    },
    async Connect(request) {
      return { shim_pid: process.pid, task_pid: 7, version: request.id };
    },
    async Shutdown() {
      // google.protobuf.Empty: returning nothing is fine
    },
  },
};

async function startServer(opts: ConstructorParameters<typeof TtrpcServer>[0] = {}, at = sock): Promise<TtrpcServer> {
  const server = new TtrpcServer(opts);
  server.register(taskService);
  await server.listen(at);
  servers.push(server);
  return server;
}

async function connect(at = sock): Promise<TtrpcClient> {
  const client = await TtrpcClient.connect(at);
  clients.push(client);
  return client;
}

/** A raw connection that sends hand-made frames and collects the responses. */
async function raw(at = sock) {
  const socket = net.createConnection({ path: at });
  raws.push(socket);
  await new Promise((r) => socket.once('connect', r));
  const frames: { header: FrameHeader; response: ResponseEnvelope }[] = [];
  const waiters: (() => void)[] = [];
  const reader = new FrameReader((header, payload) => {
    frames.push({ header: { ...header }, response: decodeResponse(payload!) });
    waiters.splice(0).forEach((w) => w());
  });
  socket.on('data', (d: Buffer) => reader.push(d));
  return {
    socket,
    frames,
    send: (b: Buffer) => socket.write(b),
    async next(count = frames.length + 1) {
      const deadline = Date.now() + 5000;
      while (frames.length < count) {
        if (Date.now() > deadline) throw new Error('no response');
        await new Promise<void>((r) => {
          waiters.push(r);
          setTimeout(r, 50);
        });
      }
      return frames[count - 1];
    },
  };
}

function request(streamId: number, service: string, method: string, payload: Buffer, extra: Partial<{ timeoutNano: number }> = {}) {
  return encodeFrame(streamId, 1, encodeRequest({ service, method, payload, timeoutNano: extra.timeoutNano ?? 0, metadata: [] }));
}

beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-ttrpc-'));
  sock = path.join(tmp, 'ttrpc.sock');
  seen.length = 0;
  aborted.length = 0;
});

afterEach(async () => {
  for (const r of raws.splice(0)) r.destroy();
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await Promise.all(servers.splice(0).map((s) => s.close(100)));
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('ttrpc client and server', () => {
  test('unary call round trip, namespace from metadata, peer credentials', async () => {
    await startServer();
    const client = await connect();
    const res = await client.call(TASK, 'State', 'containerd.task.v2.StateRequest', 'containerd.task.v2.StateResponse', { id: 'c1', exec_id: 'e1' }, { namespace: 'ns1', metadata: { 'X-Extra': ['a', 'b'] } });
    expect(res).toMatchObject({ id: 'c1', bundle: '/b/c1', pid: 42, status: 'RUNNING', exec_id: 'e1', exit_status: 0, terminal: false });
    const { ctx } = seen[0];
    expect(ctx.namespaceHeader).toBe('ns1');
    expect(ctx.service).toBe(TASK);
    expect(ctx.method).toBe('State');
    expect(ctx.metadata['x-extra']).toEqual(['a', 'b']);
    expect(ctx.peer).toEqual({ pid: process.pid, uid: process.getuid!(), gid: process.getgid!() });
    expect(ctx.signal.aborted).toBe(false);

    // containerd-namespace is the fallback, containerd-namespace-ttrpc wins
    await client.service(TASK).State({ id: 'c2' }, { metadata: { 'containerd-namespace': 'grpc-ns' } });
    expect(seen[1].ctx.namespaceHeader).toBe('grpc-ns');
    await client.service(TASK).State({ id: 'c3' }, { namespace: 'tt', metadata: { 'containerd-namespace': 'grpc-ns', 'containerd-lease': 'l1' } });
    expect(seen[2].ctx.namespaceHeader).toBe('tt');
    expect(seen[2].ctx.lease).toBe('l1');
    await client.service(TASK).State({ id: 'c4' });
    expect(seen[3].ctx.namespaceHeader).toBeUndefined();
  });

  test('typed service client; Empty responses; socket mode 0600', async () => {
    await startServer();
    expect(fs.statSync(sock).mode & 0o777).toBe(0o600);
    const client = await connect();
    const task = client.service(TASK);
    expect(client.service(TASK)).toBe(task);
    expect(await task.Connect({ id: 'v9' })).toEqual({ shim_pid: process.pid, task_pid: 7, version: 'v9' });
    expect(await task.Shutdown({ id: 'x', now: true })).toEqual({});
    expect(() => client.service('no.such.Service')).toThrow();
  });

  test('concurrent calls are multiplexed and answered out of order', async () => {
    await startServer();
    const client = await connect();
    const task = client.service(TASK);
    const order: string[] = [];
    const ids = ['delay:120', 'delay:10', 'delay:60', 'fast', 'delay:30'];
    const results = await Promise.all(ids.map((id) => task.State({ id }).then((r) => (order.push(r.id), r.id))));
    expect(results).toEqual(ids);
    expect(order).toEqual(['fast', 'delay:10', 'delay:30', 'delay:60', 'delay:120']);

    const many = await Promise.all(Array.from({ length: 500 }, (_, i) => task.State({ id: `n${i}` })));
    expect(many.map((r) => r.id)).toEqual(Array.from({ length: 500 }, (_, i) => `n${i}`));
    expect(client.pending).toBe(0);
  });

  test('the client uses odd, increasing stream ids and matches replies by id', async () => {
    // A hand-written server that answers every batch of three requests in reverse order.
    const seenIds: number[] = [];
    const server = net.createServer((conn) => {
      const batch: number[] = [];
      const reader = new FrameReader((header) => {
        seenIds.push(header.streamId);
        batch.push(header.streamId);
        if (batch.length === 3) {
          for (const id of batch.splice(0).reverse()) {
            const payload = encode('containerd.task.v2.ConnectResponse', { shim_pid: id });
            conn.write(encodeFrame(id, 2, encodeResponse({ payload })));
          }
        }
      });
      conn.on('data', (d: Buffer) => reader.push(d));
    });
    await new Promise<void>((r) => server.listen(sock, r));
    try {
      const client = await connect();
      const task = client.service(TASK);
      const a = await Promise.all([task.Connect({}), task.Connect({}), task.Connect({})]);
      const b = await Promise.all([task.Connect({}), task.Connect({}), task.Connect({})]);
      expect(seenIds).toEqual([1, 3, 5, 7, 9, 11]);
      expect([...a, ...b].map((r) => r.shim_pid)).toEqual([1, 3, 5, 7, 9, 11]);
    } finally {
      for (const c of clients.splice(0)) await c.close();
      await new Promise((r) => server.close(r));
    }
  });

  test('errors come back as statuses with kinds', async () => {
    await startServer();
    const client = await connect();
    const task = client.service(TASK);

    const notFound = await task.State({ id: 'missing' }).catch((e) => e);
    expect(notFound).toBeInstanceOf(TtrpcError);
    expect(notFound).toBeInstanceOf(BerthError);
    expect(notFound.kind).toBe('NotFound');
    expect(notFound.status).toEqual({ code: 5, message: 'container not created: not found' });
    expect(notFound.message).toBe('container not created: not found');

    const unknown = await task.State({ id: 'plain-error' }).catch((e) => e);
    expect(unknown.status).toEqual({ code: 2, message: 'something broke' });
    expect(unknown.kind).toBe('Unknown');

    // A method of the service without a handler
    const unimpl = await task.Pids({ id: 'x' }).catch((e) => e);
    expect(unimpl.status.code).toBe(12);
    expect(unimpl.kind).toBe('NotImplemented');
    expect(unimpl.status.message).toBe('containerd.task.v2.Task/Pids is not implemented by berth yet: not implemented');
  });

  test('unknown service and method answer Unimplemented as ttrpc does', async () => {
    await startServer();
    const client = await connect();
    const svc = await client.callRaw('no.such.Service', 'Foo', Buffer.alloc(0)).catch((e) => e);
    expect(svc.status).toEqual({ code: 12, message: 'service no.such.Service' });
    expect(svc.kind).toBe('NotImplemented');
    const method = await client.callRaw(TASK, 'Bogus', Buffer.alloc(0)).catch((e) => e);
    expect(method.status).toEqual({ code: 12, message: 'method Bogus' });
    // the connection is still fine
    expect((await client.service(TASK).State({ id: 'ok' })).id).toBe('ok');
  });

  test('deadlines: the client gives up, the server handler sees its signal fire', async () => {
    await startServer();
    const client = await connect();
    const task = client.service(TASK);
    const started = Date.now();
    const err = await task.State({ id: 'hang' }, { timeoutMs: 80 }).catch((e) => e);
    expect(err).toBeInstanceOf(BerthError);
    expect(err.kind).toBe('DeadlineExceeded');
    expect(Date.now() - started).toBeGreaterThanOrEqual(75);
    // the server got timeout_nano and aborted the handler at its own deadline
    for (let i = 0; i < 50 && aborted.length === 0; i++) await sleep(10);
    expect(aborted).toHaveLength(1);
    expect((aborted[0] as BerthError).kind).toBe('DeadlineExceeded');
    // the late reply is dropped quietly; the connection keeps working
    await sleep(20);
    expect((await task.State({ id: 'after' }, { timeoutMs: 1000 })).id).toBe('after');
    expect(client.pending).toBe(0);
  });

  test('timeout_nano goes on the wire', async () => {
    await startServer();
    const r = await raw();
    r.send(request(1, TASK, 'State', encode('containerd.task.v2.StateRequest', { id: 'hang' }), { timeoutNano: 30e6 }));
    const res = await r.next();
    expect(res.header).toMatchObject({ streamId: 1, type: 2 });
    expect(res.response.status).toEqual({ code: 4, message: 'deadline exceeded: context deadline exceeded' });
  });

  test('an AbortSignal cancels a call on the client', async () => {
    await startServer();
    const client = await connect();
    const ac = new AbortController();
    const p = client.service(TASK).State({ id: 'delay:200' }, { signal: ac.signal });
    setTimeout(() => ac.abort(), 20);
    const err = await p.catch((e) => e);
    expect(err.kind).toBe('Canceled');
    expect(client.pending).toBe(0);
    const pre = await client.service(TASK).State({ id: 'x' }, { signal: AbortSignal.abort() }).catch((e) => e);
    expect(pre.kind).toBe('Canceled');
  });

  test('closing the client fails pending calls with Unavailable and cancels them on the server', async () => {
    await startServer();
    const client = await connect();
    const closed = new Promise((r) => client.once('close', r));
    const p = client.service(TASK).State({ id: 'hang' }).catch((e) => e);
    for (let i = 0; i < 50 && seen.length === 0; i++) await sleep(5);
    await client.close();
    await closed;
    const err = await p;
    expect(err.kind).toBe('Unavailable');
    expect(client.closed).toBe(true);
    for (let i = 0; i < 50 && aborted.length === 0; i++) await sleep(10);
    expect((aborted[0] as BerthError).kind).toBe('Canceled');
    const after = await client.service(TASK).State({ id: 'x' }).catch((e) => e);
    expect(after.kind).toBe('Unavailable');
  });

  test('oversized messages: ResourceExhausted on that stream, connection stays in sync', async () => {
    await startServer();
    const r = await raw();
    const big = request(1, TASK, 'State', Buffer.alloc(5 << 20, 0x61));
    r.send(big);
    r.send(request(3, TASK, 'State', encode('containerd.task.v2.StateRequest', { id: 'after-big' })));
    const first = await r.next(1);
    expect(first.header.streamId).toBe(1);
    expect(first.response.status).toEqual({ code: 8, message: `message length ${big.length - 10} exceed maximum message size of 4194304` });
    const second = await r.next(2);
    expect(second.header.streamId).toBe(3);
    expect(second.response.status).toBeUndefined();

    // The client refuses to send one, and a response too large to send becomes ResourceExhausted.
    const client = await connect();
    const local = await client.callRaw(TASK, 'State', Buffer.alloc(5 << 20)).catch((e) => e);
    expect(local.kind).toBe('ResourceExhausted');
    const huge = await client.service(TASK).State({ id: 'huge' }).catch((e) => e);
    expect(huge.status.code).toBe(8);
    expect((await client.service(TASK).State({ id: 'still-ok' })).id).toBe('still-ok');
  });

  test('a response over 4 MiB from a server fails just that call', async () => {
    const server = net.createServer((conn) => {
      const reader = new FrameReader((header) => {
        const id = header.streamId;
        if (id === 1) {
          const head = Buffer.alloc(10);
          head.writeUInt32BE(5 << 20, 0);
          head.writeUInt32BE(1, 4);
          head[8] = 2;
          conn.write(head);
          conn.write(Buffer.alloc(5 << 20));
        } else {
          conn.write(encodeFrame(id, 2, Buffer.alloc(0)));
        }
      });
      conn.on('data', (d: Buffer) => reader.push(d));
    });
    await new Promise<void>((r) => server.listen(sock, r));
    try {
      const client = await connect();
      const big = await client.callRaw('s', 'm', Buffer.alloc(0)).catch((e) => e);
      expect(big.kind).toBe('ResourceExhausted');
      expect((await client.callRaw('s', 'm', Buffer.alloc(0))).length).toBe(0);
    } finally {
      for (const c of clients.splice(0)) await c.close();
      await new Promise((r) => server.close(r));
    }
  });

  test('malformed frames and payloads get error statuses without killing the connection', async () => {
    await startServer();
    const r = await raw();
    // envelope that does not decode (wire type 7)
    r.send(encodeFrame(1, 1, Buffer.from([0x0f, 0x01])));
    const bad = await r.next(1);
    expect(bad.header.streamId).toBe(1);
    expect(bad.response.status?.code).toBe(3);
    expect(bad.response.status?.message).toMatch(/^unmarshal request error: /);
    // even stream id
    r.send(request(2, TASK, 'State', Buffer.alloc(0)));
    expect((await r.next(2)).response.status).toEqual({ code: 3, message: 'StreamID must be odd for client initiated streams' });
    // a frame that is not a request is ignored
    r.send(encodeFrame(5, 2, Buffer.alloc(0)));
    r.send(encodeFrame(7, 3, Buffer.from('data')));
    // a payload that does not decode as the method's request type
    r.send(request(9, TASK, 'State', Buffer.from([0x0a, 0x09, 0x61])));
    const payload = await r.next(3);
    expect(payload.header.streamId).toBe(9);
    expect(payload.response.status?.code).toBe(13);
    expect(payload.response.status?.message).toMatch(/^ttrpc: error unmarshalling payload: /);
    // and the connection still works
    r.send(request(11, TASK, 'State', encode('containerd.task.v2.StateRequest', { id: 'fine' })));
    const ok = await r.next(4);
    expect(ok.header.streamId).toBe(11);
    expect(ok.response.status).toBeUndefined();
    expect(r.frames).toHaveLength(4);
  });

  test('server restart: the client sees Unavailable, a new client works', async () => {
    const server = await startServer();
    const client = await connect();
    const closed = new Promise<unknown>((r) => client.once('close', r));
    const pending = client.service(TASK).State({ id: 'delay:50' });
    for (let i = 0; i < 50 && seen.length === 0; i++) await sleep(5);
    await server.close(1000); // waits for the in-flight call
    expect((await pending).id).toBe('delay:50');
    await closed;
    const err = await client.service(TASK).State({ id: 'x' }).catch((e) => e);
    expect(err).toBeInstanceOf(BerthError);
    expect(err.kind).toBe('Unavailable');
    expect(fs.existsSync(sock)).toBe(false);

    const dial = await TtrpcClient.connect(sock).catch((e) => e);
    expect(dial.kind).toBe('Unavailable');

    await startServer();
    const again = await connect();
    expect((await again.service(TASK).State({ id: 'back' })).id).toBe('back');
  });

  test('server killed mid-call: pending calls fail with Unavailable', async () => {
    const server = await startServer();
    const client = await connect();
    const p = client.service(TASK).State({ id: 'hang' }).catch((e) => e);
    for (let i = 0; i < 50 && seen.length === 0; i++) await sleep(5);
    await server.close(0);
    const err = await p;
    expect(err.kind).toBe('Unavailable');
    expect(err.message).toMatch(/^ttrpc: closed/);
  });

  test('close() is bounded and new requests during close are refused', async () => {
    const server = await startServer();
    const client = await connect();
    const hanging = client.service(TASK).State({ id: 'hang' }).catch((e) => e);
    const slow = client.service(TASK).State({ id: 'delay:100' });
    for (let i = 0; i < 50 && seen.length < 2; i++) await sleep(5);
    const started = Date.now();
    const closing = server.close(300);
    const refused = await client.service(TASK).State({ id: 'late' }).catch((e) => e);
    expect(refused.status).toEqual({ code: 14, message: 'ttrpc: server closed' });
    expect((await slow).id).toBe('delay:100');
    await closing;
    expect(Date.now() - started).toBeLessThan(1000);
    expect((await hanging).kind).toBe('Unavailable');
    expect(server.connectionCount).toBe(0);
  });

  test('listen replaces a stale socket but not a live one', async () => {
    fs.writeFileSync(path.join(tmp, 'file'), '');
    await expect(new TtrpcServer().listen(path.join(tmp, 'file'))).rejects.toThrow(/not a socket/);
    // a stale socket file: bound by a server that is gone without unlinking
    const stale = net.createServer();
    await new Promise<void>((r) => stale.listen(sock, r));
    const linked = path.join(tmp, 'stale.sock');
    fs.linkSync(sock, linked);
    await new Promise((r) => stale.close(r));
    expect(fs.existsSync(linked)).toBe(true);
    await startServer({}, linked);
    const client = await connect(linked);
    expect((await client.service(TASK).State({ id: 'y' })).id).toBe('y');
    await expect(startServer({}, linked)).rejects.toThrow(/in use/);
  });

  test('serves an inherited listening fd (how a shim gets fd 3)', async () => {
    const AF_UNIX = 1;
    const SOCK_STREAM = 1;
    const SOCK_CLOEXEC = 0o2000000;
    const fd = fn('int socket(int, int, int)')(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0) as number;
    expect(fd).toBeGreaterThan(2);
    const addr = Buffer.alloc(110);
    addr.writeUInt16LE(AF_UNIX, 0);
    addr.write(sock, 2);
    expect(fn('int bind(int, void *, uint32_t)')(fd, addr, addr.length)).toBe(0);
    expect(fn('int listen(int, int)')(fd, 16)).toBe(0);

    const server = new TtrpcServer();
    server.register(taskService);
    await server.listenFd(fd);
    servers.push(server);
    const client = await connect();
    expect(await client.service(TASK).Connect({ id: 'fd' })).toMatchObject({ version: 'fd' });
    await server.close(100);
    servers.splice(servers.indexOf(server), 1);
    fs.rmSync(sock, { force: true });
  });

  test('peer credential check refuses connections it does not like', async () => {
    const checked: unknown[] = [];
    await startServer({
      checkPeerCredentials: (cred) => {
        checked.push(cred);
        return cred.uid === 123456;
      },
    });
    const client = await connect();
    const closed = new Promise((r) => client.once('close', r));
    const err = await client.service(TASK).State({ id: 'x' }).catch((e) => e);
    expect(err.kind).toBe('Unavailable');
    await closed;
    expect(checked).toEqual([{ pid: process.pid, uid: process.getuid!(), gid: process.getgid!() }]);
  });

  test('register: unknown method names, duplicates, services outside the Root', () => {
    const server = new TtrpcServer();
    expect(() => server.register({ name: TASK, handlers: { Nope: async () => ({}) } })).toThrow(/no unary method Nope/);
    server.register({ name: EVENTS, handlers: {} });
    expect(() => server.register({ name: EVENTS, handlers: {} })).toThrow(/duplicate/);
    expect(() => server.register({ name: 'no.such.Service', handlers: {} })).toThrow();
  });
});
