// Small helpers for tests that talk to berthd through the CLI's client.
import * as crypto from 'node:crypto';
import { ApiError, type Client } from '../../cli/client';
import { BerthError } from '../../services/errdefs';

export const sha256 = (b: Buffer | string) => `sha256:${crypto.createHash('sha256').update(b).digest('hex')}`;

/** The gRPC code and message of a call that must fail. */
export async function failure(p: Promise<unknown>): Promise<{ code: number; details: string }> {
  try {
    await p;
  } catch (err) {
    if (err instanceof ApiError) return { code: err.code, details: err.details };
    throw err;
  }
  throw new Error('expected the call to fail');
}

/** Runs a whole Content/Write session: the given messages in order, collecting every reply. */
export async function writeSession(client: Client, messages: any[], headers?: Record<string, string>): Promise<any[]> {
  const call = client.duplex('content', 'Write', headers);
  const replies: any[] = [];
  const reading = (async () => {
    for await (const r of call.replies) replies.push(r);
  })();
  for (const m of messages) await call.write(m);
  call.end();
  await reading;
  return replies;
}

/** Writes a blob (with labels, optionally under a lease header) and returns its digest. */
export async function putBlob(
  client: Client,
  ref: string,
  data: Buffer | string,
  labels: Record<string, string> = {},
  headers?: Record<string, string>,
): Promise<string> {
  const buf = Buffer.from(data);
  await writeSession(
    client,
    [
      { action: 'STAT', ref, total: buf.length, expected: sha256(buf) },
      { action: 'WRITE', offset: 0, data: buf },
      { action: 'COMMIT', offset: buf.length, total: buf.length, expected: sha256(buf), labels },
    ],
    headers,
  );
  return sha256(buf);
}

/** The BerthError an in-process call (no gRPC in between) must fail with. */
export async function berthFailure(p: Promise<unknown>): Promise<BerthError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof BerthError) return err;
    throw err;
  }
  throw new Error('expected a failure');
}

export async function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(c as Buffer);
  return Buffer.concat(parts);
}
