// Peer credentials of a connected unix socket (SO_PEERCRED), as ttrpc's UnixCredentialsFunc
// handshake reads them. Node has no API for this, so it is one getsockopt(2) through koffi
// (runtime/native/libc), loaded on the first check only.
import type * as net from 'node:net';

export interface PeerCredentials {
  pid: number;
  uid: number;
  gid: number;
}

const SOL_SOCKET = 1;
/** 17 on x86_64 and aarch64 (asm-generic/socket.h). */
const SO_PEERCRED = 17;

/** The file descriptor behind a connected net.Socket (a libuv pipe), or undefined. */
export function socketFd(socket: net.Socket): number | undefined {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

/**
 * The credentials the peer had when it connected (struct ucred {pid, uid, gid}); undefined when
 * the socket has no descriptor (already closed) — callers decide what that means.
 * Throws a SyscallError when getsockopt fails.
 */
export function peerCredentials(socket: net.Socket): PeerCredentials | undefined {
  const fd = socketFd(socket);
  if (fd === undefined) return undefined;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const libc = require('../native/libc') as typeof import('../native/libc');
  const getsockopt = libc.fn('int getsockopt(int, int, int, void *, void *)');
  const cred = Buffer.alloc(12);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(12, 0);
  libc.check(getsockopt(fd, SOL_SOCKET, SO_PEERCRED, cred, len) as number, 'getsockopt', () => `getsockopt(${fd}, SOL_SOCKET, SO_PEERCRED)`);
  // struct ucred in host byte order; both supported architectures are little-endian.
  return { pid: cred.readInt32LE(0), uid: cred.readUInt32LE(4), gid: cred.readUInt32LE(8) };
}
