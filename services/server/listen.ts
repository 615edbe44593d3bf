// The daemon's listeners: the unix socket (mode 0660, stale files replaced, a live daemon on the
// same path refused) and the optional TCP listener with mutual TLS.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { BerthError } from '../errdefs';

/** Resolves when something accepts connections on the socket, rejects (ECONNREFUSED…) otherwise. */
function probe(address: string, timeoutMs: number): Promise<'live' | 'dead'> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(address);
    const timer = setTimeout(() => {
      sock.destroy();
      resolve('live'); // a listener too busy to accept is still a listener
    }, timeoutMs);
    sock.once('connect', () => {
      clearTimeout(timer);
      sock.destroy();
      resolve('live');
    });
    sock.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (err.code === 'ECONNREFUSED' || err.code === 'ENOENT') resolve('dead');
      else reject(err);
    });
  });
}

/**
 * Makes `address` ready to bind: creates its directory, removes a stale socket left by a daemon
 * that died, and refuses (Unavailable) when a live daemon is serving there.
 */
export async function prepareUnixSocket(address: string): Promise<void> {
  fs.mkdirSync(path.dirname(address), { recursive: true, mode: 0o711 });
  let st: fs.Stats;
  try {
    st = fs.lstatSync(address);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  if (!st.isSocket()) {
    throw new BerthError('FailedPrecondition', `${address} exists and is not a socket; refusing to replace it`);
  }
  if ((await probe(address, 1000)) === 'live') {
    throw new BerthError('Unavailable', `another daemon is already serving on ${address}`);
  }
  fs.unlinkSync(address);
}

/** Applies the socket's final mode and owner once it is bound. */
export function secureUnixSocket(address: string, uid: number, gid: number): void {
  fs.chmodSync(address, 0o660);
  if (uid !== 0 || gid !== 0) fs.chownSync(address, uid, gid);
}
