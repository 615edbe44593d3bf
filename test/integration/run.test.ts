// berth run as an operator uses it, on both runtimes (Berth's own shim, the default, and
// containerd's runc shim): the image is pulled when missing, output and exit status arrive, stdin
// is relayed and closed, -t gives an interactive terminal, -d leaves the task running (with -t, its
// FIFOs kept for tasks attach), --rm removes everything, and nothing is left behind.
import { execFile, spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import * as fs from 'node:fs';
import { promisify } from 'node:util';
import { fifoRoot } from '../../cli/stdio';
import { assertNothingLeft, BERTH, cleanup, startDaemon, waitFor, type TestDaemon } from '../helpers/daemon';
import { buildImage, skopeoCopy, type TestImage } from '../helpers/images';
import { startRegistry, type TestRegistry } from '../helpers/registry';

const run = promisify(execFile);
const RUNC_AVAILABLE = fs.existsSync('/usr/bin/runc') && fs.existsSync('/usr/bin/containerd-shim-runc-v2');
const PYTHON = ['/usr/bin/python3', '/usr/local/bin/python3'].find((p) => fs.existsSync(p)) ?? 'python3';

// Runs a command on a new pseudo-terminal (python's pty module), relaying our pipes to its master
// and exiting with the command's status. Input is never ended: the command decides when it is done.
const PTY_RELAY = `
import os, pty, select, struct, sys, fcntl, termios
pid, fd = pty.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack('HHHH', 40, 100, 0, 0))
inputs = [fd, 0]
while True:
    ready, _, _ = select.select(inputs, [], [])
    if fd in ready:
        try:
            data = os.read(fd, 4096)
        except OSError:
            data = b''
        if not data:
            break
        os.write(1, data)
    if 0 in ready:
        data = os.read(0, 4096)
        if data:
            os.write(fd, data)
        else:
            inputs.remove(0)
_, status = os.waitpid(pid, 0)
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
`;

/** A command on a terminal, driven like an operator would: wait for text, type, wait for exit. */
class PtySession {
  output = '';
  readonly exited: Promise<number | null>;
  private readonly proc: ChildProcessWithoutNullStreams;

  constructor(argv: string[]) {
    this.proc = spawn(PYTHON, ['-c', PTY_RELAY, ...argv]);
    this.proc.stdout.on('data', (d) => (this.output += d.toString()));
    this.proc.stderr.on('data', (d) => (this.output += d.toString()));
    this.exited = new Promise((resolve) => this.proc.once('exit', (code) => resolve(code)));
  }

  /** Waits until the output (from `from` on) matches. */
  async expect(pattern: RegExp, from = 0, timeoutMs = 30_000): Promise<void> {
    await waitFor(`${pattern} in the terminal output`, () => (pattern.test(this.output.slice(from)) ? true : undefined), timeoutMs).catch((err: Error) => {
      throw new Error(`${err.message}: ${JSON.stringify(this.output)}`);
    });
  }

  type(text: string): void {
    this.proc.stdin.write(text);
  }

  kill(): void {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill('SIGKILL');
  }
}

let registry: TestRegistry;
let image: TestImage;
let ref: string;

beforeAll(async () => {
  registry = await startRegistry();
  image = await buildImage();
  ref = `${registry.host}/test/busybox:1`;
  await skopeoCopy(image, ref);
});
afterAll(async () => {
  await registry?.stop();
  image?.remove();
});

/** The same cases for a runtime: `runtimeArgs` is what selects it on the command line ([] for the default). */
function runCases(runtime: string, runtimeArgs: string[]): void {
  // A namespace of its own: its cgroups (/<ns>/<id>) and FIFO directories are this file's alone.
  const ns = `berth-run-${runtime.split('.')[2]}`;
  const ids = ['r1', 'r2', 'bg', 'fg', 't1', 'att', 'det', 'again'];
  let daemon: TestDaemon;
  const argv = (...args: string[]) => [process.execPath, BERTH, '--address', daemon.address, '--namespace', ns, ...args];
  const berth = async (...args: string[]) => (await run(process.execPath, argv(...args).slice(1), { timeout: 60_000 })).stdout;
  const berthSync = (args: string[], input?: string) => spawnSync(process.execPath, argv(...args).slice(1), { timeout: 60_000, ...(input !== undefined ? { input } : {}) });
  const runArgs = (...args: string[]) => ['run', ...runtimeArgs, ...args];
  const taskStatus = async (id: string) => (await berth('tasks', 'ls')).split('\n').find((l) => l.startsWith(`${id} `))?.trim().split(/\s+/)[2];
  const fifoDirs = (id: string) => (fs.existsSync(fifoRoot()) ? fs.readdirSync(fifoRoot()).filter((e) => e.startsWith(`${ns}-${id}-`)) : []);
  const sessions: PtySession[] = [];
  const pty = (...args: string[]) => {
    const s = new PtySession(argv(...args));
    sessions.push(s);
    return s;
  };

  /** Attaches to `id` and types `line` until `answer` comes back (the output before attaching is gone). */
  const attachAndAnswer = async (id: string, line: string, answer: RegExp, timeoutMs = 30_000) => {
    const s = pty('tasks', 'attach', id);
    await waitFor(`${answer} from the attached task`, async () => {
      s.type(line);
      await s.expect(answer, 0, 2000).catch(() => undefined);
      return answer.test(s.output) ? true : undefined;
    }, timeoutMs).catch((err: Error) => {
      throw new Error(`${err.message}: ${JSON.stringify(s.output)}`);
    });
    return s;
  };

  beforeAll(async () => {
    daemon = await startDaemon();
  });
  afterAll(async () => {
    for (const s of sessions) s.kill();
    for (const id of ids) {
      await berth('tasks', 'rm', '-f', id).catch(() => undefined);
      await berth('containers', 'rm', id).catch(() => undefined);
    }
    try {
      await assertNothingLeft(daemon, { namespaces: [ns], ids });
    } finally {
      await cleanup(daemon);
    }
  });

  test('--rm pulls the missing image, relays stdout and stderr, returns the exit status, removes the container', async () => {
    const r = berthSync(runArgs('--rm', '--plain-http', ref, 'r1', '/bin/busybox', 'sh', '-c', 'echo to-out; echo to-err >&2; exit 7'));
    // one comparison, so that a failure shows all three
    expect({ stdout: r.stdout.toString(), stderr: r.stderr.toString().replace(/^pulling .*\n/, ''), status: r.status }).toEqual({ stdout: 'to-out\n', stderr: 'to-err\n', status: 7 });
    expect((await berth('images', 'ls', '-q')).trim()).toBe(ref);
    expect((await berth('containers', 'ls', '-q')).trim()).toBe('');
    expect((await berth('tasks', 'ls', '-q')).trim()).toBe('');
  });

  test('stdin is relayed and closed at its end; --env and the image config reach the process', async () => {
    const r = berthSync(runArgs('--rm', '--env', 'GREETING=hi', ref, 'r2', '/bin/busybox', 'sh', '-c', 'cat; echo $GREETING; echo $PATH'), 'from-stdin\n');
    expect(r.stdout.toString().split('\n')).toEqual(['from-stdin', 'hi', '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', '']);
    expect({ status: r.status, stderr: r.stderr.toString() }).toEqual({ status: 0, stderr: '' });
  });

  test('-d leaves the task running on the runtime chosen; tasks exec runs in it with stdio and exit status', async () => {
    await berth(...runArgs('-d', ref, 'bg', '/bin/busybox', 'sleep', '1000'));
    expect(await taskStatus('bg')).toBe('RUNNING');
    expect((await berth('containers', 'ls')).split('\n').find((l) => l.startsWith('bg '))).toMatch(new RegExp(`^bg\\s+\\S+\\s+${runtime.replace(/\./g, '\\.')}\\s`));
    const r = berthSync(['tasks', 'exec', 'bg', '/bin/busybox', 'sh', '-c', 'cat; echo pid1=$(cat /proc/1/cmdline | tr "\\0" " "); exit 5'], 'in-exec\n');
    expect(r.stdout.toString()).toBe('in-exec\npid1=/bin/busybox sleep 1000\n');
    expect({ status: r.status, stderr: r.stderr.toString() }).toEqual({ status: 5, stderr: '' });
    // a task started without -t has no FIFOs (null IO, as ctr run -d): attach says so
    const attach = berthSync(['tasks', 'attach', 'bg']);
    expect({ status: attach.status, stderr: attach.stderr.toString() }).toEqual({
      status: 1,
      stderr: 'berth: task bg has no stdio to attach to: it was started without FIFOs (start it with run -d -t)\n',
    });
    await berth('tasks', 'kill', '-s', 'KILL', 'bg');
    await waitFor('bg to stop', async () => ((await taskStatus('bg')) === 'STOPPED' ? true : undefined));
    await berth('tasks', 'rm', 'bg');
    await berth('containers', 'rm', 'bg');
  });

  test('tasks start runs a created container in the foreground', async () => {
    await berth(...runArgs('-d', ref, 'fg', '/bin/busybox', 'echo', 'again'));
    await berth('tasks', 'rm', '-f', 'fg').catch(() => undefined);
    const r = berthSync(['tasks', 'start', 'fg']);
    expect(r.stderr.toString()).toBe('');
    expect(r.stdout.toString()).toBe('again\n');
    expect({ status: r.status, stderr: r.stderr.toString() }).toEqual({ status: 0, stderr: '' });
    expect((await berth('tasks', 'ls', '-q')).split('\n')).not.toContain('fg');
    await berth('containers', 'rm', 'fg');
  });

  test('--rm -t gives an interactive shell on a terminal; its exit status returns and the container is removed', async () => {
    const s = pty(...runArgs('--rm', '-t', ref, 't1', 'sh'));
    await s.expect(/\/ # /); // the shell's prompt: it reads from the terminal now
    s.type('tty; busybox stty size; echo hello-$((6*7))\n');
    await s.expect(/hello-42\r*\n/);
    expect(s.output).toMatch(/\/dev\/pts\/\d+\r*\n40 100\r*\n/); // our terminal's size reached the container's
    s.type('exit 3\n');
    expect(await s.exited).toBe(3);
    expect((await berth('containers', 'ls', '-q')).split('\n')).not.toContain('t1');
    expect((await berth('tasks', 'ls', '-q')).split('\n')).not.toContain('t1');
  });

  test('-d -t keeps the FIFOs; tasks attach relays the terminal until the task exits; tasks rm removes them', async () => {
    await berth(...runArgs('-d', '-t', ref, 'att', 'sh'));
    expect(await taskStatus('att')).toBe('RUNNING');
    expect(fifoDirs('att')).toHaveLength(1);

    // Typed input reaches the shell and its output comes back (the prompt may have gone by unseen).
    const s = await attachAndAnswer('att', 'busybox stty size; echo attached-$((6*7))\n', /attached-42\r*\n/);
    expect(s.output).toMatch(/40 100\r*\nattached-42/); // attach gave the task's terminal our size
    s.type('exit 4\n');
    expect(await s.exited).toBe(4);
    await waitFor('att to stop', async () => ((await taskStatus('att')) === 'STOPPED' ? true : undefined));
    expect(fifoDirs('att')).toHaveLength(1); // the task still exists, and so do its FIFOs
    expect(await berth('tasks', 'rm', 'att')).toBe('att\n');
    expect(fifoDirs('att')).toEqual([]);
    await berth('containers', 'rm', 'att');
  });

  test('tasks attach: Ctrl-P Ctrl-Q detaches, the task keeps running; containers rm removes the FIFOs of a stopped task', async () => {
    await berth(...runArgs('-d', '-t', ref, 'det', 'sh', '-c', 'while read line; do echo got-$line; done'));
    const s = await attachAndAnswer('det', 'ping\n', /got-ping\r*\n/);
    s.type('\x10\x11');
    expect(await s.exited).toBe(0);
    expect(await taskStatus('det')).toBe('RUNNING');
    await berth('tasks', 'kill', '-s', 'KILL', 'det');
    await waitFor('det to stop', async () => ((await taskStatus('det')) === 'STOPPED' ? true : undefined));
    expect(fifoDirs('det')).toHaveLength(1);
    await berth('containers', 'rm', 'det');
    expect(fifoDirs('det')).toEqual([]);
  });

  // The shim keeps a terminal's stdin FIFO open across clients (as runc's shim does), so the
  // second attach's input reaches the task too.
  test('tasks attach again after a detach: input still reaches the task', async () => {
    await berth(...runArgs('-d', '-t', ref, 'again', 'sh', '-c', 'while read line; do echo got-$line; done'));
    try {
      const first = await attachAndAnswer('again', 'one\n', /got-one\r*\n/);
      first.type('\x10\x11');
      expect(await first.exited).toBe(0);
      const second = await attachAndAnswer('again', 'two\n', /got-two\r*\n/, 10_000);
      second.type('\x10\x11');
      expect(await second.exited).toBe(0);
    } finally {
      await berth('tasks', 'rm', '-f', 'again');
      await berth('containers', 'rm', 'again');
    }
  });
}

(RUNC_AVAILABLE ? describe : describe.skip)('berth run --runtime io.containerd.runc.v2', () => runCases('io.containerd.runc.v2', ['--runtime', 'io.containerd.runc.v2']));

describe('berth run (default runtime, io.containerd.berth.v1)', () => runCases('io.containerd.berth.v1', []));
