// runtime/native on the real kernel, as root: namespaces, mounts, pivot_root, mknod, per-thread
// credentials and capabilities, controlling terminals, execve. Anything that would change this
// test process for good runs in a child Node process (scripts generated into a temp dir), and
// whatever is mounted here is unmounted in afterEach.
import { ChildProcess, execFile, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import * as native from '../../runtime/native';

const run = promisify(execFile);
const NATIVE = path.resolve(__dirname, '../../runtime/native');

let tmp: string;
const mounted: string[] = [];
const children: ChildProcess[] = [];

/** Runs a Node script (with `n` = runtime/native) and parses the JSON it prints last. */
async function child(body: string, args: string[] = []): Promise<any> {
  const file = path.join(tmp, `child-${Math.random().toString(36).slice(2)}.js`);
  fs.writeFileSync(file, `'use strict';\nconst n = require(${JSON.stringify(NATIVE)});\nconst fs = require('fs');\n${body}\n`);
  const { stdout } = await run(process.execPath, [file, ...args], { timeout: 20_000 });
  const lines = stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]);
}

/** Starts a long-running Node script; resolves once it prints its first line (JSON). */
async function startChild(body: string): Promise<{ proc: ChildProcess; first: any }> {
  const file = path.join(tmp, `daemon-${Math.random().toString(36).slice(2)}.js`);
  fs.writeFileSync(file, `'use strict';\nconst n = require(${JSON.stringify(NATIVE)});\nconst fs = require('fs');\n${body}\n`);
  const proc = spawn(process.execPath, [file], { stdio: ['pipe', 'pipe', 'inherit'] });
  children.push(proc);
  const first = await new Promise<any>((resolve, reject) => {
    let buf = '';
    proc.stdout!.on('data', (d) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl >= 0) resolve(JSON.parse(buf.slice(0, nl)));
    });
    proc.once('exit', (code) => reject(new Error(`child exited (${code}) before it was ready`)));
  });
  return { proc, first };
}

function isMounted(target: string): boolean {
  return fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[4] === target);
}

beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), `berth-native-${process.pid}-`));
});

afterEach(async () => {
  for (const proc of children.splice(0)) {
    if (proc.exitCode === null && proc.signalCode === null) {
      const gone = new Promise((r) => proc.once('exit', r));
      process.kill(proc.pid!, 'SIGKILL');
      await gone;
    }
  }
  for (const target of mounted.splice(0).reverse()) {
    while (isMounted(target)) native.umount2(target, native.MNT_DETACH);
  }
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('namespaces in a child process', () => {
  test('UTS: unshare, sethostname; the host keeps its name', async () => {
    const out = await child(`
      n.unshare(n.CLONE_NEWUTS);
      n.sethostname('berth-uts-test');
      n.setdomainname('berth.example');
      console.log(JSON.stringify({ hostname: n.gethostname(), os: require('os').hostname(),
        domain: fs.readFileSync('/proc/sys/kernel/domainname', 'utf8').trim() }));
    `);
    expect(out).toEqual({ hostname: 'berth-uts-test', os: 'berth-uts-test', domain: 'berth.example' });
    expect(os.hostname()).not.toBe('berth-uts-test');
    expect(native.gethostname()).toBe(os.hostname());
  });

  test('NET and IPC: new namespaces with only a loopback device', async () => {
    const host = {
      net: fs.readlinkSync('/proc/self/ns/net'),
      ipc: fs.readlinkSync('/proc/self/ns/ipc'),
    };
    const out = await child(`
      n.unshare(n.CLONE_NEWNET | n.CLONE_NEWIPC);
      const devs = fs.readFileSync('/proc/self/net/dev', 'utf8').split('\\n').slice(2).filter(Boolean).map((l) => l.split(':')[0].trim());
      console.log(JSON.stringify({ net: fs.readlinkSync('/proc/self/ns/net'), ipc: fs.readlinkSync('/proc/self/ns/ipc'), devs }));
    `);
    expect(out.net).toMatch(/^net:\[\d+\]$/);
    expect(out.net).not.toBe(host.net);
    expect(out.ipc).not.toBe(host.ipc);
    expect(out.devs).toEqual(['lo']);
  });

  test('mount namespace after unshare(CLONE_FS): a private tmpfs the host never sees', async () => {
    const target = path.join(tmp, 'private');
    fs.mkdirSync(target);
    const out = await child(
      `
      const target = process.argv[2];
      n.unshare(n.CLONE_FS);
      n.unshare(n.CLONE_NEWNS);
      n.mount(null, '/', null, n.MS_REC | n.MS_PRIVATE);
      n.mount('berth-test', target, 'tmpfs', n.MS_NOSUID | n.MS_NODEV, 'size=1m,mode=700');
      fs.writeFileSync(target + '/inside', 'x');
      const line = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\\n').find((l) => l.split(' ')[4] === target);
      console.log(JSON.stringify({ line, files: fs.readdirSync(target), mode: (fs.statSync(target).mode & 0o777).toString(8) }));
    `,
      [target],
    );
    expect(out.line).toMatch(/ - tmpfs berth-test rw,.*size=1024k/);
    expect(out.line).toMatch(/nosuid,nodev/);
    expect(out.files).toEqual(['inside']);
    expect(out.mode).toBe('700');
    expect(isMounted(target)).toBe(false);
    expect(fs.readdirSync(target)).toEqual([]);
  });

  test('pivot_root into a tmpfs root, old root detached', async () => {
    const root = path.join(tmp, 'newroot');
    fs.mkdirSync(root);
    const out = await child(
      `
      const root = process.argv[2];
      n.unshare(n.CLONE_FS);
      n.unshare(n.CLONE_NEWNS);
      n.mount(null, '/', null, n.MS_REC | n.MS_PRIVATE);
      n.mount('rootfs', root, 'tmpfs', 0, 'size=1m');
      fs.mkdirSync(root + '/etc');
      fs.writeFileSync(root + '/etc/hostname', 'pivoted\\n');
      n.chdir(root);
      n.pivotRoot('.', '.');
      n.umount2('.', n.MNT_DETACH);
      n.chdir('/');
      // (process.cwd() is cached by Node and does not see a native chdir)
      console.log(JSON.stringify({ ls: fs.readdirSync('/'), hostname: fs.readFileSync('/etc/hostname', 'utf8'), oldRoot: fs.existsSync(${JSON.stringify(tmp)}) }));
    `,
      [root],
    );
    expect(out).toEqual({ ls: ['etc'], hostname: 'pivoted\n', oldRoot: false });
    expect(isMounted(root)).toBe(false);
  });

  test('setns: join another process\'s UTS namespace; a mount namespace needs CLONE_FS unshared first', async () => {
    const target = path.join(tmp, 'shared');
    fs.mkdirSync(target);
    const { proc, first } = await startChild(`
      n.unshare(n.CLONE_NEWUTS);
      n.sethostname('berth-setns');
      n.unshare(n.CLONE_NEWNS);
      n.mount(null, '/', null, n.MS_REC | n.MS_PRIVATE);
      n.mount('berth-setns', ${JSON.stringify(target)}, 'tmpfs', 0, 'size=1m');
      fs.writeFileSync(${JSON.stringify(target)} + '/marker', 'seen');
      console.log(JSON.stringify({ pid: process.pid }));
      process.stdin.resume();
    `);
    expect(first.pid).toBe(proc.pid);
    const out = await child(
      `
      const pid = process.argv[2], target = process.argv[3];
      n.setnsPath('/proc/' + pid + '/ns/uts', n.CLONE_NEWUTS);
      let refused = '';
      try { n.setnsPath('/proc/' + pid + '/ns/mnt', n.CLONE_NEWNS); } catch (e) { refused = e.message; }
      n.unshare(n.CLONE_FS);
      n.setnsPath('/proc/' + pid + '/ns/mnt', n.CLONE_NEWNS);
      console.log(JSON.stringify({ hostname: n.gethostname(), refused, marker: fs.readFileSync(target + '/marker', 'utf8') }));
    `,
      [String(proc.pid), target],
    );
    expect(out.hostname).toBe('berth-setns');
    expect(out.refused).toBe(`setns("/proc/${proc.pid}/ns/mnt", CLONE_NEWNS): EINVAL (Invalid argument)`);
    expect(out.marker).toBe('seen');
  });
});

describe('mounts in this process', () => {
  test('tmpfs mount, remount read-only, bind, mknod, umount', () => {
    const target = path.join(tmp, 'mnt');
    const bind = path.join(tmp, 'bind');
    fs.mkdirSync(target);
    fs.mkdirSync(bind);
    native.mount('berth-tmpfs', target, 'tmpfs', native.MS_NOSUID, 'size=2m,mode=755');
    mounted.push(target);
    expect(isMounted(target)).toBe(true);
    fs.writeFileSync(path.join(target, 'file'), 'data');

    native.mknod(path.join(target, 'null'), native.S_IFCHR | 0o666, 1, 3);
    const st = fs.statSync(path.join(target, 'null'));
    expect(st.isCharacterDevice()).toBe(true);
    expect(st.rdev).toBe(Number(native.makedev(1, 3)));
    fs.writeFileSync(path.join(target, 'null'), 'discarded');
    native.mknod(path.join(target, 'fifo'), native.S_IFIFO | 0o600);
    expect(fs.statSync(path.join(target, 'fifo')).isFIFO()).toBe(true);
    expect(() => native.mknod(path.join(target, 'null'), native.S_IFCHR | 0o666, 1, 3)).toThrow(
      `mknod("${target}/null", c 1:3, 0o666): EEXIST (File exists)`,
    );

    native.mount(target, bind, null, native.MS_BIND);
    mounted.push(bind);
    expect(fs.readFileSync(path.join(bind, 'file'), 'utf8')).toBe('data');
    native.mount(null, bind, null, native.MS_BIND | native.MS_REMOUNT | native.MS_RDONLY);
    expect(() => fs.writeFileSync(path.join(bind, 'other'), 'x')).toThrow(expect.objectContaining({ code: 'EROFS' }));
    fs.writeFileSync(path.join(target, 'other'), 'still writable here');

    native.umount2(bind);
    native.umount2(target);
    expect(isMounted(bind)).toBe(false);
    expect(isMounted(target)).toBe(false);
    expect(() => native.umount2(target)).toThrow(`umount2("${target}"): EINVAL (Invalid argument)`);
  });

  test('mount errors carry the call, errno and text', () => {
    const target = path.join(tmp, 'mnt');
    fs.mkdirSync(target);
    expect(() => native.mount('none', target, 'berthfs-does-not-exist')).toThrow(
      `mount("none" on "${target}", type berthfs-does-not-exist): ENODEV (No such device)`,
    );
    expect(() => native.mount('/nonexistent-src', target, null, native.MS_BIND | native.MS_REC)).toThrow(
      `mount("/nonexistent-src" on "${target}", flags MS_BIND|MS_REC): ENOENT (No such file or directory)`,
    );
  });

  test('mount_setattr makes a recursive bind read-only', () => {
    const src = path.join(tmp, 'src');
    const dst = path.join(tmp, 'dst');
    fs.mkdirSync(src);
    fs.mkdirSync(dst);
    native.mount('berth-src', src, 'tmpfs', 0, 'size=1m');
    mounted.push(src);
    fs.mkdirSync(path.join(src, 'sub'));
    native.mount('berth-sub', path.join(src, 'sub'), 'tmpfs', 0, 'size=1m');
    mounted.push(path.join(src, 'sub'));
    native.mount(src, dst, null, native.MS_BIND | native.MS_REC);
    mounted.push(dst, path.join(dst, 'sub'));
    const opts = native.parseMountOptions(['rbind', 'rro']);
    native.mountSetattr(dst, { attrSet: opts.recAttrSet, attrClr: opts.recAttrClr });
    expect(() => fs.writeFileSync(path.join(dst, 'sub', 'x'), 'x')).toThrow(expect.objectContaining({ code: 'EROFS' }));
    expect(() => fs.writeFileSync(path.join(dst, 'x'), 'x')).toThrow(expect.objectContaining({ code: 'EROFS' }));
    fs.writeFileSync(path.join(src, 'sub', 'x'), 'x');
    native.umount2(dst, native.MNT_DETACH);
  });
});

describe('credentials, capabilities, terminals and exec', () => {
  test('setresuid/setresgid/setgroups change one worker thread; the rest of the process stays root', async () => {
    const out = await child(`
      const { Worker } = require('worker_threads');
      const w = new Worker(\`
        const n = require(\${JSON.stringify(${JSON.stringify(NATIVE)})});
        const fs = require('fs');
        n.setgroups([65534, 100]);
        n.setresgid(65534, 65534, 65534);
        n.setresuid(65534, 65534, 65534);
        const st = fs.readFileSync('/proc/thread-self/status', 'utf8');
        require('worker_threads').parentPort.postMessage({
          uid: /Uid:\\\\s+(.*)/.exec(st)[1], gid: /Gid:\\\\s+(.*)/.exec(st)[1], groups: /Groups:\\\\s*(.*)/.exec(st)[1].trim(),
          capEff: /CapEff:\\\\s+(.*)/.exec(st)[1] });
      \`, { eval: true });
      w.once('message', (thread) => {
        const st = fs.readFileSync('/proc/self/status', 'utf8');
        console.log(JSON.stringify({ thread, main: /Uid:\\s+(.*)/.exec(st)[1] }));
        process.exit(0);
      });
    `);
    expect(out.thread.uid.split(/\s+/)).toEqual(['65534', '65534', '65534', '65534']);
    expect(out.thread.gid.split(/\s+/)).toEqual(['65534', '65534', '65534', '65534']);
    expect(out.thread.groups.split(/\s+/)).toEqual(['100', '65534']);
    expect(out.thread.capEff).toBe('0000000000000000');
    expect(out.main.split(/\s+/)).toEqual(['0', '0', '0', '0']);
  });

  test('OCI capabilities: bounding set trimmed, effective/permitted/inheritable and ambient set', async () => {
    const out = await child(`
      const keep = ['CAP_CHOWN', 'CAP_KILL', 'CAP_NET_BIND_SERVICE', 'CAP_SETPCAP', 'CAP_FUTURE_THING'];
      const unknown = n.applyCapabilities({ bounding: keep, effective: keep, permitted: keep, inheritable: ['CAP_KILL', 'CAP_NET_BIND_SERVICE'], ambient: ['CAP_NET_BIND_SERVICE'] });
      n.setNoNewPrivs();
      const st = fs.readFileSync('/proc/thread-self/status', 'utf8');
      const get = (k) => new RegExp(k + ':\\\\s+(\\\\S+)').exec(st)[1];
      let dropErr = '';
      try { n.capset({ effective: 1n << 21n, permitted: 1n << 21n, inheritable: 0n }); } catch (e) { dropErr = e.message; }
      console.log(JSON.stringify({ unknown, bnd: get('CapBnd'), eff: get('CapEff'), prm: get('CapPrm'), inh: get('CapInh'), amb: get('CapAmb'),
        nnp: n.getNoNewPrivs(), ambientSet: n.ambientIsSet(10), rawBounding: n.capbsetRead(21), dropErr }));
    `);
    const mask = (...caps: number[]) => caps.reduce((m, c) => m | (1n << BigInt(c)), 0n);
    const hex = (m: bigint) => m.toString(16).padStart(16, '0');
    expect(out.unknown).toEqual(['CAP_FUTURE_THING']);
    expect(out.bnd).toBe(hex(mask(0, 5, 8, 10)));
    expect(out.eff).toBe(hex(mask(0, 5, 8, 10)));
    expect(out.prm).toBe(hex(mask(0, 5, 8, 10)));
    expect(out.inh).toBe(hex(mask(5, 10)));
    expect(out.amb).toBe(hex(mask(10)));
    expect(out.nnp).toBe(true);
    expect(out.ambientSet).toBe(true);
    expect(out.rawBounding).toBe(false);
    expect(out.dropErr).toBe('capset(effective 0x200000, permitted 0x200000, inheritable 0x0): EPERM (Operation not permitted)');
  });

  test('a new session takes a pty slave as its controlling terminal', async () => {
    const out = await child(`
      const pty = n.openPty();
      const slave = n.openPtySlave(pty.slavePath);
      const sid = n.setsid();
      n.setControllingTerminal(slave);
      n.setWinsize(pty.master, { rows: 50, cols: 100 });
      const stat = fs.readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ');
      const st = fs.statSync(pty.slavePath);
      console.log(JSON.stringify({ sid, pid: process.pid, session: Number(stat[3]), ttyNr: Number(stat[4]), rdev: st.rdev,
        size: n.getWinsize(slave) }));
    `);
    expect(out.sid).toBe(out.pid);
    expect(out.session).toBe(out.pid);
    expect(out.ttyNr).toBe(out.rdev);
    expect(out.size).toMatchObject({ rows: 50, cols: 100 });
  });

  test('execve with an inherited fd (FD_CLOEXEC and O_NONBLOCK cleared) and a fresh environment', async () => {
    const file = path.join(tmp, 'handed-over');
    fs.writeFileSync(file, 'contents of the fd\n');
    const script = path.join(tmp, 'exec.js');
    fs.writeFileSync(
      script,
      `const n = require(${JSON.stringify(NATIVE)});
       const fs = require('fs');
       const fd = fs.openSync(process.argv[2], 'r');
       n.setNonblock(fd, true);
       const target = 7;
       n.dup3(fd, target, 0);
       n.inheritable(target);
       n.inheritable(1);
       n.execve('/bin/sh', ['sh', '-c', 'echo "$GREETING"; cat <&7; test -e /proc/self/fd/' + fd + ' && echo leaked || echo closed'], ['GREETING=hello from execve', 'PATH=/usr/bin:/bin']);`,
    );
    const { stdout } = await run(process.execPath, [script, file]);
    // Node opens files close-on-exec, so the original fd is gone and only fd 7 was handed over
    expect(stdout).toBe('hello from execve\ncontents of the fd\nclosed\n');
    await expect(child(`n.execve('/nonexistent/bin', ['x'], []);`)).rejects.toThrow('execve("/nonexistent/bin"): ENOENT (No such file or directory)');
  });

  test('prctl: subreaper, pdeathsig and the thread name', async () => {
    const out = await child(`
      const before = { reaper: n.isChildSubreaper(), pdeathsig: n.getPdeathsig() };
      n.setChildSubreaper(true);
      n.setPdeathsig('SIGTERM');
      n.setThreadName('berth-init-test-long-name');
      console.log(JSON.stringify({ before, comm: fs.readFileSync('/proc/thread-self/comm', 'utf8').trim(),
        reaper: n.isChildSubreaper(), pdeathsig: n.getPdeathsig() }));
    `);
    expect(out).toEqual({ before: { reaper: false, pdeathsig: 0 }, comm: 'berth-init-test', reaper: true, pdeathsig: 15 });
  });
});
