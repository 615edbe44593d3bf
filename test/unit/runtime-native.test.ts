// runtime/native: the pure parts (errno, constants, option parsing) and calls with no lasting
// effect on the machine (fcntl, rlimits, pty, openat2, pidfds, capability reads).
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import * as native from '../../runtime/native';

describe('errno', () => {
  test('names, messages and aliases', () => {
    expect(native.errnoName(1)).toBe('EPERM');
    expect(native.errnoName(11)).toBe('EAGAIN');
    expect(native.errnoName(95)).toBe('EOPNOTSUPP');
    expect(native.errnoName(9999)).toBe('E9999');
    expect(native.errnoMessage(2)).toBe('No such file or directory');
    expect(native.describeErrno(16)).toBe('EBUSY (Device or resource busy)');
    expect(native.errnoFromName('EWOULDBLOCK')).toBe(11);
    expect(native.errnoFromName('ENOTSUP')).toBe(95);
    expect(native.errnoFromName('ELOOP')).toBe(40);
    // the table agrees with Node's own errno numbers
    for (const [name, n] of Object.entries(os.constants.errno)) {
      if (!['EWOULDBLOCK', 'EDEADLOCK', 'ENOTSUP'].includes(name)) expect(native.errnoName(n)).toBe(name);
    }
  });

  test('a failed call throws SyscallError naming the call, errno and text', () => {
    let err: any;
    try {
      native.mount('proc', '/nonexistent/berth/proc', 'proc');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(native.SyscallError);
    expect(err.message).toBe('mount("proc" on "/nonexistent/berth/proc", type proc): ENOENT (No such file or directory)');
    expect(err).toMatchObject({ errno: 2, code: 'ENOENT', syscall: 'mount', path: '/nonexistent/berth/proc' });
    expect(native.isErrno(err, 'ENOENT')).toBe(true);
    expect(native.errnoOf(err)).toBe(2);
    expect(() => native.umount2('/nonexistent/berth', native.MNT_DETACH)).toThrow(
      'umount2("/nonexistent/berth", MNT_DETACH): ENOENT (No such file or directory)',
    );
    expect(() => native.kill(0x3fffffff, 0)).toThrow(/^kill\(1073741823, 0\): ESRCH \(No such process\)$/);
    expect(() => native.setns(987654, 0)).toThrow('setns(fd 987654, any): EBADF (Bad file descriptor)');
  });

  test('a multi-threaded process cannot unshare a user namespace', () => {
    expect(() => native.unshare(native.CLONE_NEWUSER)).toThrow('unshare(CLONE_NEWUSER): EINVAL (Invalid argument)');
  });
});

describe('constants', () => {
  test('capabilities by name and number', () => {
    expect(Object.keys(native.CAPABILITIES)).toHaveLength(41);
    expect(native.CAPABILITIES.CAP_CHOWN).toBe(0);
    expect(native.CAPABILITIES.CAP_SYS_ADMIN).toBe(21);
    expect(native.CAPABILITIES.CAP_CHECKPOINT_RESTORE).toBe(40);
    expect(native.capName(24)).toBe('CAP_SYS_RESOURCE');
    expect(native.capName(63)).toBe('CAP_63');
    expect(native.capFromName('net_raw')).toBe(13);
    expect(native.capFromName('CAP_BPF')).toBe(39);
    expect(native.capFromName('CAP_NOPE')).toBeUndefined();
    const { mask, unknown } = native.capMask(['CAP_CHOWN', 'CAP_KILL', 'CAP_FUTURE']);
    expect(mask).toBe((1n << 0n) | (1n << 5n));
    expect(unknown).toEqual(['CAP_FUTURE']);
    expect(native.capNamesOf(mask)).toEqual(['CAP_CHOWN', 'CAP_KILL']);
    expect(native.lastCap()).toBeGreaterThanOrEqual(37);
  });

  test('namespace, rlimit and flag tables', () => {
    expect(native.namespaceFlag('network')).toBe(native.CLONE_NEWNET);
    expect(native.namespaceFlag('mount')).toBe(0x20000);
    expect(() => native.namespaceFlag('bogus')).toThrow('unknown namespace type "bogus"');
    expect(native.cloneFlagNames(native.CLONE_NEWUTS | native.CLONE_NEWIPC)).toBe('CLONE_NEWUTS|CLONE_NEWIPC');
    expect(native.rlimitFromName('nofile')).toBe(7);
    expect(native.rlimitFromName('RLIMIT_RTTIME')).toBe(15);
    expect(() => native.rlimitFromName('RLIMIT_BOGUS')).toThrow('unknown resource limit');
    expect(native.mountFlagNames(native.MS_BIND | native.MS_REC)).toBe('MS_BIND|MS_REC');
    expect(native.O_DIRECTORY).toBe(fs.constants.O_DIRECTORY);
    expect(native.O_NOFOLLOW).toBe(fs.constants.O_NOFOLLOW);
    expect(native.O_NONBLOCK).toBe(fs.constants.O_NONBLOCK);
    expect(native.sysno('openat2')).toBe(437);
    expect(native.sysno('pidfd_open')).toBe(434);
  });

  test('makedev matches the kernel encoding', () => {
    expect(native.makedev(1, 3)).toBe(259n);
    expect(native.makedev(8, 16)).toBe(2064n);
    expect(native.makedev(259, 65536)).toBe(0x10010300n);
  });
});

describe('OCI mount options', () => {
  test('flags, propagation, data and recursive attributes, as runc sorts them', () => {
    const o = native.parseMountOptions(['rbind', 'ro', 'nosuid', 'nodev', 'rprivate', 'size=65536k', 'mode=755', 'rro', 'tmpcopyup']);
    expect(o.flags).toBe(native.MS_BIND | native.MS_REC | native.MS_RDONLY | native.MS_NOSUID | native.MS_NODEV);
    expect(o.propagation).toEqual([native.MS_PRIVATE | native.MS_REC]);
    expect(o.data).toBe('size=65536k,mode=755');
    expect(o.recAttrSet).toBe(native.MOUNT_ATTR_RDONLY);
    expect(o.extensions).toEqual(['tmpcopyup']);
    // later options override earlier ones
    expect(native.parseMountOptions(['ro', 'rw', 'noexec', 'exec', 'defaults']).flags).toBe(0);
    expect(native.parseMountOptions(undefined)).toEqual({ flags: 0, propagation: [], data: '', recAttrSet: 0, recAttrClr: 0, extensions: [] });
    const atime = native.parseMountOptions(['rnoatime']);
    expect(atime.recAttrSet).toBe(native.MOUNT_ATTR_NOATIME);
    expect(atime.recAttrClr).toBe(native.MOUNT_ATTR__ATIME);
  });
});

describe('file descriptors', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-native-'));
  });
  afterEach(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('FD_CLOEXEC and O_NONBLOCK can be read, set and cleared', () => {
    const fd = fs.openSync('/dev/null', 'r');
    try {
      native.setCloexec(fd, true);
      expect(native.isCloexec(fd)).toBe(true);
      native.setNonblock(fd, true);
      expect(native.isNonblock(fd)).toBe(true);
      native.inheritable(fd);
      expect(native.isCloexec(fd)).toBe(false);
      expect(native.isNonblock(fd)).toBe(false);
    } finally {
      fs.closeSync(fd);
    }
    expect(() => native.isCloexec(fd)).toThrow(`fcntl(${fd}, F_GETFD): EBADF (Bad file descriptor)`);
  });

  test('openat2 RESOLVE_IN_ROOT keeps symlinks, absolute paths and .. inside the root', () => {
    const root = path.join(dir, 'rootfs');
    fs.mkdirSync(path.join(root, 'etc'), { recursive: true });
    fs.writeFileSync(path.join(root, 'etc', 'passwd'), 'inside\n');
    fs.mkdirSync(path.join(root, 'data'));
    fs.symlinkSync('/etc', path.join(root, 'escape')); // absolute link to the host's /etc
    fs.symlinkSync('../../../../../../etc/passwd', path.join(root, 'data', 'up')); // climbs out
    const read = (p: string) => {
      const fd = native.openInRoot(root, p, native.O_RDONLY);
      try {
        expect(native.isCloexec(fd)).toBe(true);
        return fs.readFileSync(fd, 'utf8');
      } finally {
        fs.closeSync(fd);
      }
    };
    expect(read('escape/passwd')).toBe('inside\n');
    expect(read('/etc/passwd')).toBe('inside\n');
    expect(read('data/up')).toBe('inside\n');
    expect(read('../../etc/passwd')).toBe('inside\n');
    // without a copy inside, the escape finds nothing rather than the host file
    fs.rmSync(path.join(root, 'etc', 'passwd'));
    expect(() => read('escape/passwd')).toThrow(/^openat2\(fd \d+, "escape\/passwd", resolve 0x12\): ENOENT/);
    // RESOLVE_BENEATH refuses outright
    const rootFd = fs.openSync(root, native.O_PATH | native.O_DIRECTORY);
    try {
      expect(() => native.openat2(rootFd, 'escape/passwd', { flags: native.O_RDONLY, resolve: native.RESOLVE_BENEATH })).toThrow(
        /EXDEV \(Invalid cross-device link\)$/,
      );
      expect(() => native.openat2(rootFd, 'escape', { flags: native.O_RDONLY, resolve: native.RESOLVE_NO_SYMLINKS })).toThrow(/ELOOP/);
    } finally {
      fs.closeSync(rootFd);
    }
  });

  test('close_range marks fds close-on-exec', () => {
    const fd = fs.openSync('/dev/null', 'r');
    try {
      native.setCloexec(fd, false);
      native.closeRange(fd, fd, native.CLOSE_RANGE_CLOEXEC);
      expect(native.isCloexec(fd)).toBe(true);
    } finally {
      fs.closeSync(fd);
    }
  });

  test('a pty pair: window size on both sides, data through the line discipline', () => {
    const pty = native.openPty();
    const slave = native.openPtySlave(pty.slavePath);
    try {
      expect(pty.slavePath).toMatch(/^\/dev\/pts\/\d+$/);
      expect(native.isCloexec(pty.master)).toBe(true);
      native.setWinsize(pty.master, { rows: 40, cols: 132 });
      expect(native.getWinsize(slave)).toEqual({ rows: 40, cols: 132, xpixel: 0, ypixel: 0 });
      native.setWinsize(slave, { rows: 25, cols: 80, xpixel: 640, ypixel: 400 });
      expect(native.getWinsize(pty.master)).toEqual({ rows: 25, cols: 80, xpixel: 640, ypixel: 400 });
      expect(native.ptsname(pty.master)).toBe(pty.slavePath);
      fs.writeSync(slave, 'hello\n');
      const buf = Buffer.alloc(64);
      expect(buf.toString('utf8', 0, fs.readSync(pty.master, buf))).toBe('hello\r\n');
    } finally {
      fs.closeSync(slave);
      fs.closeSync(pty.master);
    }
    const notATty = fs.openSync('/dev/null', 'r');
    try {
      expect(() => native.getWinsize(notATty)).toThrow(/TIOCGWINSZ\): ENOTTY/);
    } finally {
      fs.closeSync(notATty);
    }
  });

  test('eventfd', () => {
    const efd = native.eventfd(3, native.EFD_CLOEXEC | native.EFD_NONBLOCK);
    try {
      const buf = Buffer.alloc(8);
      expect(fs.readSync(efd, buf)).toBe(8);
      expect(buf.readBigUInt64LE()).toBe(3n);
      expect(() => fs.readSync(efd, buf)).toThrow(expect.objectContaining({ code: 'EAGAIN' }));
    } finally {
      fs.closeSync(efd);
    }
  });
});

describe('processes', () => {
  test('getpid and gettid; a worker thread has its own tid', async () => {
    expect(native.getpid()).toBe(process.pid);
    expect(native.gettid()).toBe(process.pid);
    const modulePath = require.resolve('../../runtime/native');
    const tid = await new Promise<number>((resolve, reject) => {
      const w = new Worker(`const n = require(${JSON.stringify(modulePath)}); require('worker_threads').parentPort.postMessage(n.gettid());`, {
        eval: true,
      });
      w.once('message', resolve);
      w.once('error', reject);
    });
    expect(tid).toBeGreaterThan(0);
    expect(tid).not.toBe(process.pid);
  });

  test('resource limits: read, lower, restore; raising the hard limit needs CAP_SYS_RESOURCE', () => {
    const before = native.getrlimit('RLIMIT_NOFILE');
    expect(before.soft).toBeGreaterThan(0);
    expect(native.getrlimit(native.RLIMIT_CORE).hard).toBeGreaterThanOrEqual(0);
    const prev = native.setrlimit('NOFILE', { soft: 512, hard: before.hard });
    try {
      expect(prev).toEqual(before);
      expect(native.getrlimit('NOFILE').soft).toBe(512);
    } finally {
      native.setrlimit('NOFILE', before);
    }
    expect(native.getrlimit('NOFILE')).toEqual(before);
    const hasSysResource = native.capbsetRead(native.CAPABILITIES.CAP_SYS_RESOURCE);
    if (!hasSysResource && before.hard !== Infinity) {
      expect(() => native.setrlimit('NOFILE', { soft: before.soft, hard: before.hard + 1 })).toThrow(
        `setrlimit(RLIMIT_NOFILE, soft ${before.soft}, hard ${before.hard + 1}): EPERM (Operation not permitted)`,
      );
    }
    // RLIM_INFINITY comes back as Infinity
    const stack = native.getrlimit('STACK');
    expect(typeof stack.hard).toBe('number');
  });

  test('pidfd_open and pidfd_send_signal', async () => {
    const child = spawn('sleep', ['30'], { stdio: 'ignore' });
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_c, s) => resolve(s)));
    try {
      const pidfd = native.pidfdOpen(child.pid!);
      try {
        native.pidfdSendSignal(pidfd, 'SIGTERM');
        expect(await exited).toBe('SIGTERM');
      } finally {
        fs.closeSync(pidfd);
      }
    } finally {
      child.kill('SIGKILL');
    }
    expect(() => native.pidfdOpen(0x3fffffff)).toThrow('pidfd_open(1073741823): ESRCH (No such process)');
  });

  test('capabilities of this thread, and prctl reads', () => {
    const caps = native.capget();
    expect(caps.effective & (1n << 21n)).toBe(1n << 21n); // we run as root with CAP_SYS_ADMIN
    expect(native.capbsetRead(native.CAPABILITIES.CAP_CHOWN)).toBe(true);
    expect(native.ambientIsSet(native.CAPABILITIES.CAP_CHOWN)).toBe(false);
    expect(native.getNoNewPrivs()).toBe(false);
    const status = fs.readFileSync('/proc/thread-self/status', 'utf8');
    expect(BigInt('0x' + /CapEff:\s+([0-9a-f]+)/.exec(status)![1])).toBe(caps.effective);
  });
});
