// The CLI's FIFO relay (cli/stdio.ts pipeFrom): what the shim writes arrives whole, also when a
// garbage collection runs between the open and the write (a descriptor owned by an unreferenced
// FileHandle was once closed by GC under the relay, and `berth run` lost its output).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import { execFileSync } from 'node:child_process';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { pipeFrom } from '../../cli/stdio';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-stdio-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

function collect(): { out: PassThrough; text: () => string } {
  const out = new PassThrough();
  const chunks: Buffer[] = [];
  out.on('data', (c: Buffer) => chunks.push(c));
  return { out, text: () => Buffer.concat(chunks).toString() };
}

test('output written after a garbage collection arrives, and EOF ends the relay', async () => {
  const fifo = path.join(dir, 'stdout');
  execFileSync('mkfifo', [fifo]);
  const { out, text } = collect();
  const relay = pipeFrom(fifo, out);
  // A writer, as the shim's: O_RDWR does not wait, and lets the relay's blocking open return.
  const writer = fs.openSync(fifo, fs.constants.O_RDWR);
  await new Promise((r) => setTimeout(r, 100));
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((r) => setImmediate(r));
  }
  fs.writeSync(writer, 'after-gc\n');
  fs.closeSync(writer);
  await relay.done;
  expect(text()).toBe('after-gc\n');
});

test('close() lets go of a relay whose writer never came, and of one that is reading', async () => {
  const idle = path.join(dir, 'idle');
  execFileSync('mkfifo', [idle]);
  // The thread pool busy (four opens waiting for writers), so that the relay's own open has not
  // reached the kernel yet when close() comes: it must still return once it does.
  const blockers = Array.from({ length: 4 }, (_, i) => path.join(dir, `blocker${i}`));
  const blocked = blockers.map((b) => {
    execFileSync('mkfifo', [b]);
    return new Promise<number>((resolve, reject) => fs.open(b, fs.constants.O_RDONLY, (err, fd) => (err ? reject(err) : resolve(fd))));
  });
  const first = pipeFrom(idle, collect().out);
  first.close();
  const writers = blockers.map((b) => fs.openSync(b, fs.constants.O_RDWR));
  for (const fd of [...(await Promise.all(blocked)), ...writers]) fs.closeSync(fd);
  await expect(Promise.race([first.done.then(() => 'done'), new Promise((r) => setTimeout(() => r('still waiting'), 3000))])).resolves.toBe('done');

  const busy = path.join(dir, 'busy');
  execFileSync('mkfifo', [busy]);
  const { out, text } = collect();
  const second = pipeFrom(busy, out);
  const writer = fs.openSync(busy, fs.constants.O_RDWR);
  fs.writeSync(writer, 'partial\n');
  await new Promise((r) => setTimeout(r, 100));
  second.close();
  await second.done;
  fs.closeSync(writer);
  expect(text()).toBe('partial\n');
});
