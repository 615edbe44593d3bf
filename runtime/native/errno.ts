// errno numbers, names and messages, and the one error type every native call throws.
//
// Loads nothing native: the cgroup code and error paths use it without pulling in koffi. The
// table is glibc's strerror() text, indexed by errno; the numbers are the same on x86_64 and
// aarch64 (both use asm-generic/errno.h).

/** [name, glibc message] for errno 1..133 (index 0 is errno 1). */
const ERRNO_TABLE: ReadonlyArray<readonly [string, string]> = [
  ['EPERM', 'Operation not permitted'],
  ['ENOENT', 'No such file or directory'],
  ['ESRCH', 'No such process'],
  ['EINTR', 'Interrupted system call'],
  ['EIO', 'Input/output error'],
  ['ENXIO', 'No such device or address'],
  ['E2BIG', 'Argument list too long'],
  ['ENOEXEC', 'Exec format error'],
  ['EBADF', 'Bad file descriptor'],
  ['ECHILD', 'No child processes'],
  ['EAGAIN', 'Resource temporarily unavailable'],
  ['ENOMEM', 'Cannot allocate memory'],
  ['EACCES', 'Permission denied'],
  ['EFAULT', 'Bad address'],
  ['ENOTBLK', 'Block device required'],
  ['EBUSY', 'Device or resource busy'],
  ['EEXIST', 'File exists'],
  ['EXDEV', 'Invalid cross-device link'],
  ['ENODEV', 'No such device'],
  ['ENOTDIR', 'Not a directory'],
  ['EISDIR', 'Is a directory'],
  ['EINVAL', 'Invalid argument'],
  ['ENFILE', 'Too many open files in system'],
  ['EMFILE', 'Too many open files'],
  ['ENOTTY', 'Inappropriate ioctl for device'],
  ['ETXTBSY', 'Text file busy'],
  ['EFBIG', 'File too large'],
  ['ENOSPC', 'No space left on device'],
  ['ESPIPE', 'Illegal seek'],
  ['EROFS', 'Read-only file system'],
  ['EMLINK', 'Too many links'],
  ['EPIPE', 'Broken pipe'],
  ['EDOM', 'Numerical argument out of domain'],
  ['ERANGE', 'Numerical result out of range'],
  ['EDEADLK', 'Resource deadlock avoided'],
  ['ENAMETOOLONG', 'File name too long'],
  ['ENOLCK', 'No locks available'],
  ['ENOSYS', 'Function not implemented'],
  ['ENOTEMPTY', 'Directory not empty'],
  ['ELOOP', 'Too many levels of symbolic links'],
  ['', 'Unknown error 41'],
  ['ENOMSG', 'No message of desired type'],
  ['EIDRM', 'Identifier removed'],
  ['ECHRNG', 'Channel number out of range'],
  ['EL2NSYNC', 'Level 2 not synchronized'],
  ['EL3HLT', 'Level 3 halted'],
  ['EL3RST', 'Level 3 reset'],
  ['ELNRNG', 'Link number out of range'],
  ['EUNATCH', 'Protocol driver not attached'],
  ['ENOCSI', 'No CSI structure available'],
  ['EL2HLT', 'Level 2 halted'],
  ['EBADE', 'Invalid exchange'],
  ['EBADR', 'Invalid request descriptor'],
  ['EXFULL', 'Exchange full'],
  ['ENOANO', 'No anode'],
  ['EBADRQC', 'Invalid request code'],
  ['EBADSLT', 'Invalid slot'],
  ['', 'Unknown error 58'],
  ['EBFONT', 'Bad font file format'],
  ['ENOSTR', 'Device not a stream'],
  ['ENODATA', 'No data available'],
  ['ETIME', 'Timer expired'],
  ['ENOSR', 'Out of streams resources'],
  ['ENONET', 'Machine is not on the network'],
  ['ENOPKG', 'Package not installed'],
  ['EREMOTE', 'Object is remote'],
  ['ENOLINK', 'Link has been severed'],
  ['EADV', 'Advertise error'],
  ['ESRMNT', 'Srmount error'],
  ['ECOMM', 'Communication error on send'],
  ['EPROTO', 'Protocol error'],
  ['EMULTIHOP', 'Multihop attempted'],
  ['EDOTDOT', 'RFS specific error'],
  ['EBADMSG', 'Bad message'],
  ['EOVERFLOW', 'Value too large for defined data type'],
  ['ENOTUNIQ', 'Name not unique on network'],
  ['EBADFD', 'File descriptor in bad state'],
  ['EREMCHG', 'Remote address changed'],
  ['ELIBACC', 'Can not access a needed shared library'],
  ['ELIBBAD', 'Accessing a corrupted shared library'],
  ['ELIBSCN', '.lib section in a.out corrupted'],
  ['ELIBMAX', 'Attempting to link in too many shared libraries'],
  ['ELIBEXEC', 'Cannot exec a shared library directly'],
  ['EILSEQ', 'Invalid or incomplete multibyte or wide character'],
  ['ERESTART', 'Interrupted system call should be restarted'],
  ['ESTRPIPE', 'Streams pipe error'],
  ['EUSERS', 'Too many users'],
  ['ENOTSOCK', 'Socket operation on non-socket'],
  ['EDESTADDRREQ', 'Destination address required'],
  ['EMSGSIZE', 'Message too long'],
  ['EPROTOTYPE', 'Protocol wrong type for socket'],
  ['ENOPROTOOPT', 'Protocol not available'],
  ['EPROTONOSUPPORT', 'Protocol not supported'],
  ['ESOCKTNOSUPPORT', 'Socket type not supported'],
  ['EOPNOTSUPP', 'Operation not supported'],
  ['EPFNOSUPPORT', 'Protocol family not supported'],
  ['EAFNOSUPPORT', 'Address family not supported by protocol'],
  ['EADDRINUSE', 'Address already in use'],
  ['EADDRNOTAVAIL', 'Cannot assign requested address'],
  ['ENETDOWN', 'Network is down'],
  ['ENETUNREACH', 'Network is unreachable'],
  ['ENETRESET', 'Network dropped connection on reset'],
  ['ECONNABORTED', 'Software caused connection abort'],
  ['ECONNRESET', 'Connection reset by peer'],
  ['ENOBUFS', 'No buffer space available'],
  ['EISCONN', 'Transport endpoint is already connected'],
  ['ENOTCONN', 'Transport endpoint is not connected'],
  ['ESHUTDOWN', 'Cannot send after transport endpoint shutdown'],
  ['ETOOMANYREFS', 'Too many references: cannot splice'],
  ['ETIMEDOUT', 'Connection timed out'],
  ['ECONNREFUSED', 'Connection refused'],
  ['EHOSTDOWN', 'Host is down'],
  ['EHOSTUNREACH', 'No route to host'],
  ['EALREADY', 'Operation already in progress'],
  ['EINPROGRESS', 'Operation now in progress'],
  ['ESTALE', 'Stale file handle'],
  ['EUCLEAN', 'Structure needs cleaning'],
  ['ENOTNAM', 'Not a XENIX named type file'],
  ['ENAVAIL', 'No XENIX semaphores available'],
  ['EISNAM', 'Is a named type file'],
  ['EREMOTEIO', 'Remote I/O error'],
  ['EDQUOT', 'Disk quota exceeded'],
  ['ENOMEDIUM', 'No medium found'],
  ['EMEDIUMTYPE', 'Wrong medium type'],
  ['ECANCELED', 'Operation canceled'],
  ['ENOKEY', 'Required key not available'],
  ['EKEYEXPIRED', 'Key has expired'],
  ['EKEYREVOKED', 'Key has been revoked'],
  ['EKEYREJECTED', 'Key was rejected by service'],
  ['EOWNERDEAD', 'Owner died'],
  ['ENOTRECOVERABLE', 'State not recoverable'],
  ['ERFKILL', 'Operation not possible due to RF-kill'],
  ['EHWPOISON', 'Memory page has hardware error'],
];

let byName: Map<string, number> | undefined;

/** The symbolic name of an errno ("EPERM"), or "E<n>" for numbers we do not know. */
export function errnoName(errno: number): string {
  const e = ERRNO_TABLE[errno - 1];
  return e && e[0] ? e[0] : `E${errno}`;
}

/** glibc's text for an errno ("Operation not permitted"). */
export function errnoMessage(errno: number): string {
  const e = ERRNO_TABLE[errno - 1];
  return e ? e[1] : `Unknown error ${errno}`;
}

/** The number for a symbolic errno name (aliases such as EWOULDBLOCK and ENOTSUP included). */
export function errnoFromName(name: string): number | undefined {
  if (!byName) {
    byName = new Map([['EWOULDBLOCK', 11], ['EDEADLOCK', 35], ['ENOTSUP', 95]]);
    ERRNO_TABLE.forEach(([n], i) => n && byName!.set(n, i + 1));
  }
  return byName.get(name);
}

/** "EPERM (Operation not permitted)" */
export function describeErrno(errno: number): string {
  return `${errnoName(errno)} (${errnoMessage(errno)})`;
}

/**
 * A failed system call. `code` is the errno name, as on Node's own system errors, so
 * `err.code === 'ENOENT'` works the same for fs errors and for ours.
 *
 * message: `<call>: <NAME> (<text>)`, e.g.
 * `mount("proc" on "/x/proc", type proc): EPERM (Operation not permitted)`.
 */
export class SyscallError extends Error {
  readonly errno: number;
  readonly code: string;
  readonly syscall: string;
  readonly path?: string;

  /**
   * @param syscall the call's name ("mount")
   * @param errno the positive errno value
   * @param call how to show the call in the message; defaults to the name
   */
  constructor(syscall: string, errno: number, call?: string, path?: string) {
    super(`${call ?? syscall}: ${describeErrno(errno)}`);
    this.name = 'SyscallError';
    this.errno = errno;
    this.code = errnoName(errno);
    this.syscall = syscall;
    if (path !== undefined) this.path = path;
  }
}

/** True when `err` is a system error (ours or Node's) with the given errno name. */
export function isErrno(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === code;
}

/** The positive errno of a system error (ours or Node's, whose errno is negative), if any. */
export function errnoOf(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const { errno, code } = err as { errno?: unknown; code?: unknown };
  if (typeof errno === 'number' && errno !== 0) return Math.abs(errno);
  return typeof code === 'string' ? errnoFromName(code) : undefined;
}
