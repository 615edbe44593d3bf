// Validation of an OCI runtime spec before anything is created from it.
//
// Three kinds of findings:
//   errors       the spec is malformed or contradicts itself (a relative cwd, a hostname without a
//                UTS namespace, a sysctl outside the container's namespaces, soft > hard rlimit …)
//   unsupported  a field Berth recognises but does not implement (seccomp, hooks, user namespaces,
//                AppArmor/SELinux labels, …), named by its JSON path; callers may choose to ignore
//                some of them (`allowUnsupported: ['linux.seccomp']`) and get them back in `ignored`
//   warnings     accepted but worth a log line (unknown capability names, which runc also skips)
//
// Unknown properties are ignored, as config.md requires ("MUST NOT generate an error if they
// encounter an unknown property"). validateSpec()/validateProcess() throw one InvalidArgument
// error that lists every problem, so a caller sees all of them at once.
import * as path from 'path';
import { BerthError } from '../../services/errdefs';
import { CAPABILITIES, RLIMITS } from '../native/constants';
import { NAMESPACE_TYPES, Process, RunnableSpec, Spec } from './types';

export interface ValidateOptions {
  /**
   * Unsupported fields (JSON paths as reported, e.g. "linux.seccomp", "process.apparmorProfile")
   * to accept and ignore instead of refusing. A prefix matches its children ("hooks" covers
   * "hooks.prestart").
   */
  allowUnsupported?: readonly string[];
  /** Require `process` (true when creating a container, the default). */
  requireProcess?: boolean;
  /** Require `root.path` (default true; false when the caller passes the rootfs itself). */
  requireRoot?: boolean;
}

export interface SpecReport {
  errors: string[];
  unsupported: string[];
  ignored: string[];
  warnings: string[];
}

const UINT32_MAX = 0xffffffff;

/** Why each unsupported field is refused (shown in the error). */
const UNSUPPORTED_REASON: Record<string, string> = {
  'linux.seccomp': 'seccomp filters are not applied by Berth',
  'linux.uidMappings': 'user namespaces are not supported',
  'linux.gidMappings': 'user namespaces are not supported',
  'linux.namespaces.user': 'user namespaces are not supported',
  'linux.namespaces.time': 'time namespaces are not supported',
  'linux.timeOffsets': 'time namespaces are not supported',
  'linux.mountLabel': 'SELinux is not supported',
  'linux.intelRdt': 'Intel RDT is not supported',
  'linux.personality': 'personality(2) domains are not supported',
  'process.apparmorProfile': 'AppArmor is not supported',
  'process.selinuxLabel': 'SELinux is not supported',
  'process.ioPriority': 'I/O priorities are not supported',
  'process.scheduler': 'scheduling policies are not supported',
  'process.execCPUAffinity': 'exec CPU affinity is not supported',
  'process.commandLine': 'commandLine is for Windows',
  hooks: 'OCI hooks are not run by Berth',
  mounts: 'id-mapped mounts and tmpcopyup are not supported',
  windows: 'not a Linux spec',
  solaris: 'not a Linux spec',
  vm: 'virtual-machine containers are not supported',
  zos: 'not a Linux spec',
};

function reasonFor(field: string): string {
  for (let key = field; key; key = key.includes('.') ? key.slice(0, key.lastIndexOf('.')) : '') {
    const r = UNSUPPORTED_REASON[key.replace(/\[\d+\]/g, '')];
    if (r) return r;
  }
  return 'not supported';
}

/** sysctls that live in a kernel namespace, and which one (runc's list). */
const IPC_SYSCTLS = new Set(['kernel.msgmax', 'kernel.msgmnb', 'kernel.msgmni', 'kernel.sem', 'kernel.shmall', 'kernel.shmmax', 'kernel.shmmni', 'kernel.shm_rmid_forced']);

const PROPAGATIONS = new Set(['private', 'rprivate', 'slave', 'rslave', 'shared', 'rshared', 'unbindable', 'runbindable']);

const UNSUPPORTED_MOUNT_OPTIONS = new Set(['tmpcopyup', 'idmap', 'ridmap']);

type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const isUint = (v: unknown, max = Number.MAX_SAFE_INTEGER): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= max;
const hasNul = (s: string) => s.includes('\0');
const q = (s: unknown) => JSON.stringify(s);

class Checker {
  readonly report: SpecReport = { errors: [], unsupported: [], ignored: [], warnings: [] };

  constructor(private readonly allow: readonly string[]) {}

  error(msg: string): void {
    this.report.errors.push(msg);
  }

  /** A recognised field Berth does not implement. */
  unsupported(field: string): void {
    const allowed = this.allow.some((a) => field === a || field.startsWith(a + '.') || field.startsWith(a + '['));
    if (allowed) this.report.ignored.push(field);
    else this.report.unsupported.push(`${field} (${reasonFor(field)})`);
  }

  warn(msg: string): void {
    this.report.warnings.push(msg);
  }

  string(v: unknown, field: string, opts: { required?: boolean; absolute?: boolean } = {}): v is string {
    if (v === undefined || v === null) {
      if (opts.required) this.error(`${field} is required`);
      return false;
    }
    if (typeof v !== 'string') {
      this.error(`${field} must be a string`);
      return false;
    }
    if (hasNul(v)) {
      this.error(`${field} must not contain NUL bytes`);
      return false;
    }
    if (opts.absolute && !v.startsWith('/')) {
      this.error(`${field} ${q(v)} must be an absolute path`);
      return false;
    }
    return true;
  }

  bool(v: unknown, field: string): void {
    if (v !== undefined && v !== null && typeof v !== 'boolean') this.error(`${field} must be a boolean`);
  }

  stringArray(v: unknown, field: string): v is string[] {
    if (v === undefined || v === null) return false;
    if (!Array.isArray(v)) {
      this.error(`${field} must be an array of strings`);
      return false;
    }
    let ok = true;
    v.forEach((s, i) => {
      if (typeof s !== 'string') {
        this.error(`${field}[${i}] must be a string`);
        ok = false;
      } else if (hasNul(s)) {
        this.error(`${field}[${i}] must not contain NUL bytes`);
        ok = false;
      }
    });
    return ok;
  }

  /** A field that must be absent, null, empty or false to be acceptable. */
  notSet(v: unknown, field: string): void {
    if (v === undefined || v === null || v === '' || v === false) return;
    if (Array.isArray(v) && v.length === 0) return;
    if (isObj(v) && Object.keys(v).length === 0) return;
    this.unsupported(field);
  }
}

// ---- the parts ------------------------------------------------------------------------------------

function checkProcess(c: Checker, p: unknown, field: string): void {
  if (!isObj(p)) {
    c.error(`${field} must be an object`);
    return;
  }
  // user
  if (!isObj(p.user)) c.error(`${field}.user is required (uid and gid)`);
  else {
    const u = p.user;
    if (!isUint(u.uid, UINT32_MAX - 1)) c.error(`${field}.user.uid must be an integer from 0 to ${UINT32_MAX - 1}`);
    if (!isUint(u.gid, UINT32_MAX - 1)) c.error(`${field}.user.gid must be an integer from 0 to ${UINT32_MAX - 1}`);
    if (u.umask !== undefined && u.umask !== null && !isUint(u.umask, 0o777)) c.error(`${field}.user.umask must be an integer from 0 to 0o777`);
    if (u.additionalGids !== undefined && u.additionalGids !== null) {
      if (!Array.isArray(u.additionalGids) || !u.additionalGids.every((g) => isUint(g, UINT32_MAX - 1))) {
        c.error(`${field}.user.additionalGids must be an array of gids`);
      }
    }
  }
  // args, env, cwd
  if (c.stringArray(p.args, `${field}.args`)) {
    if (p.args.length === 0 || p.args[0] === '') c.error(`${field}.args must name the program to run`);
  } else if (p.args === undefined || p.args === null) c.error(`${field}.args is required`);
  if (c.stringArray(p.env, `${field}.env`)) {
    p.env.forEach((e, i) => {
      const eq = e.indexOf('=');
      if (eq <= 0) c.error(`${field}.env[${i}] ${q(e)} must be KEY=VALUE`);
    });
  }
  if (c.string(p.cwd, `${field}.cwd`, { required: true, absolute: true })) {
    /* absolute checked */
  }
  // terminal
  c.bool(p.terminal, `${field}.terminal`);
  if (p.consoleSize !== undefined && p.consoleSize !== null) {
    const b = p.consoleSize;
    if (!isObj(b) || !isUint(b.height, 0xffff) || !isUint(b.width, 0xffff)) c.error(`${field}.consoleSize must be {height, width} (0..65535)`);
  }
  // capabilities
  if (p.capabilities !== undefined && p.capabilities !== null) {
    if (!isObj(p.capabilities)) c.error(`${field}.capabilities must be an object`);
    else {
      for (const set of ['bounding', 'effective', 'permitted', 'inheritable', 'ambient']) {
        const list = p.capabilities[set];
        if (!c.stringArray(list, `${field}.capabilities.${set}`)) continue;
        for (const name of list) {
          const upper = name.toUpperCase();
          if (CAPABILITIES[upper.startsWith('CAP_') ? upper : 'CAP_' + upper] === undefined) {
            c.warn(`${field}.capabilities.${set}: unknown capability ${q(name)} is skipped`);
          }
        }
      }
    }
  }
  // rlimits
  if (p.rlimits !== undefined && p.rlimits !== null) {
    if (!Array.isArray(p.rlimits)) c.error(`${field}.rlimits must be an array`);
    else {
      const seen = new Set<string>();
      p.rlimits.forEach((r, i) => {
        const f = `${field}.rlimits[${i}]`;
        if (!isObj(r) || typeof r.type !== 'string') {
          c.error(`${f} must be {type, soft, hard}`);
          return;
        }
        if (RLIMITS[r.type] === undefined) c.error(`${f}: unknown resource limit ${q(r.type)}`);
        if (seen.has(r.type)) c.error(`${f}: ${r.type} is given twice`);
        seen.add(r.type);
        const num = (v: unknown) => typeof v === 'number' && v >= 0 && !Number.isNaN(v);
        if (!num(r.soft) || !num(r.hard)) c.error(`${f}: soft and hard must be non-negative numbers`);
        else if ((r.soft as number) > (r.hard as number)) c.error(`${f}: soft limit ${r.soft} is above the hard limit ${r.hard}`);
      });
    }
  }
  c.bool(p.noNewPrivileges, `${field}.noNewPrivileges`);
  if (p.oomScoreAdj !== undefined && p.oomScoreAdj !== null) {
    if (typeof p.oomScoreAdj !== 'number' || !Number.isInteger(p.oomScoreAdj) || p.oomScoreAdj < -1000 || p.oomScoreAdj > 1000) {
      c.error(`${field}.oomScoreAdj must be an integer from -1000 to 1000`);
    }
  }
  for (const f of ['apparmorProfile', 'selinuxLabel', 'commandLine', 'ioPriority', 'scheduler', 'execCPUAffinity']) c.notSet(p[f], `${field}.${f}`);
}

function checkMounts(c: Checker, mounts: unknown): void {
  if (mounts === undefined || mounts === null) return;
  if (!Array.isArray(mounts)) {
    c.error('mounts must be an array');
    return;
  }
  mounts.forEach((m, i) => {
    const f = `mounts[${i}]`;
    if (!isObj(m)) {
      c.error(`${f} must be an object`);
      return;
    }
    if (c.string(m.destination, `${f}.destination`, { required: true, absolute: true })) {
      if (path.posix.normalize(m.destination) === '/') c.error(`${f}.destination ${q(m.destination)}: mounting over the container's root is not allowed`);
    }
    c.string(m.type, `${f}.type`);
    c.string(m.source, `${f}.source`);
    const options = c.stringArray(m.options, `${f}.options`) ? m.options : [];
    const bind = m.type === 'bind' || options.includes('bind') || options.includes('rbind');
    if (bind && (typeof m.source !== 'string' || m.source === '')) c.error(`${f}: a bind mount needs a source`);
    if (!bind && (typeof m.type !== 'string' || m.type === '')) c.error(`${f}: a mount needs a type (or the "bind" option)`);
    for (const o of options) if (UNSUPPORTED_MOUNT_OPTIONS.has(o)) c.unsupported(`${f}.options.${o}`);
    c.notSet(m.uidMappings, `${f}.uidMappings`);
    c.notSet(m.gidMappings, `${f}.gidMappings`);
  });
}

/** The namespace types listed, or undefined when the list itself is broken. */
function checkNamespaces(c: Checker, list: unknown): Map<string, string | undefined> {
  const out = new Map<string, string | undefined>();
  if (list === undefined || list === null) return out;
  if (!Array.isArray(list)) {
    c.error('linux.namespaces must be an array');
    return out;
  }
  list.forEach((ns, i) => {
    const f = `linux.namespaces[${i}]`;
    if (!isObj(ns) || typeof ns.type !== 'string') {
      c.error(`${f} must be {type, path?}`);
      return;
    }
    if (!(NAMESPACE_TYPES as readonly string[]).includes(ns.type)) {
      c.error(`${f}: unknown namespace type ${q(ns.type)}`);
      return;
    }
    if (out.has(ns.type)) c.error(`${f}: the ${ns.type} namespace is listed twice`);
    if (ns.path !== undefined && ns.path !== null && ns.path !== '') c.string(ns.path, `${f}.path`, { absolute: true });
    if (ns.type === 'user' || ns.type === 'time') c.unsupported(`linux.namespaces.${ns.type}`);
    out.set(ns.type, typeof ns.path === 'string' && ns.path !== '' ? ns.path : undefined);
  });
  return out;
}

function checkLinux(c: Checker, spec: Obj, namespaces: Map<string, string | undefined>): void {
  const l = spec.linux;
  if (!isObj(l)) return;
  if (l.devices !== undefined && l.devices !== null) {
    if (!Array.isArray(l.devices)) c.error('linux.devices must be an array');
    else
      l.devices.forEach((d, i) => {
        const f = `linux.devices[${i}]`;
        if (!isObj(d)) {
          c.error(`${f} must be an object`);
          return;
        }
        if (c.string(d.path, `${f}.path`, { required: true, absolute: true }) && d.path.split('/').filter(Boolean).length === 0) {
          c.error(`${f}.path must name a file`);
        }
        if (!['c', 'b', 'u', 'p'].includes(d.type as string)) c.error(`${f}.type must be one of c, b, u, p`);
        if (d.type !== 'p' && (!isUint(d.major, 0xfffff) || !isUint(d.minor, 0xfffff))) c.error(`${f}: major and minor numbers are required for type ${d.type}`);
        if (d.fileMode !== undefined && d.fileMode !== null && !isUint(d.fileMode, 0o7777)) c.error(`${f}.fileMode must be a permission mode (0..0o7777)`);
        if (d.uid !== undefined && d.uid !== null && !isUint(d.uid, UINT32_MAX - 1)) c.error(`${f}.uid must be a uid`);
        if (d.gid !== undefined && d.gid !== null && !isUint(d.gid, UINT32_MAX - 1)) c.error(`${f}.gid must be a gid`);
      });
  }
  if (l.cgroupsPath !== undefined && l.cgroupsPath !== null && l.cgroupsPath !== '') {
    if (c.string(l.cgroupsPath, 'linux.cgroupsPath')) {
      if (l.cgroupsPath.includes(':')) c.error(`linux.cgroupsPath ${q(l.cgroupsPath)}: systemd "slice:prefix:name" paths are not supported (use a cgroupfs path)`);
      else if (l.cgroupsPath.split('/').includes('..')) c.error(`linux.cgroupsPath ${q(l.cgroupsPath)} must not contain ".."`);
    }
  }
  if (l.resources !== undefined && l.resources !== null && !isObj(l.resources)) c.error('linux.resources must be an object');
  if (l.rootfsPropagation !== undefined && l.rootfsPropagation !== null && l.rootfsPropagation !== '') {
    if (!PROPAGATIONS.has(l.rootfsPropagation as string)) c.error(`linux.rootfsPropagation ${q(l.rootfsPropagation)} must be one of ${[...PROPAGATIONS].join(', ')}`);
  }
  for (const field of ['maskedPaths', 'readonlyPaths']) {
    if (c.stringArray(l[field], `linux.${field}`)) {
      (l[field] as string[]).forEach((p, i) => c.string(p, `linux.${field}[${i}]`, { absolute: true }));
    }
  }
  if (l.sysctl !== undefined && l.sysctl !== null) {
    if (!isObj(l.sysctl)) c.error('linux.sysctl must be an object of strings');
    else
      for (const [key, value] of Object.entries(l.sysctl)) {
        if (typeof value !== 'string' || hasNul(value)) c.error(`linux.sysctl ${q(key)}: the value must be a string`);
        checkSysctl(c, key, namespaces);
      }
  }
  for (const f of ['uidMappings', 'gidMappings', 'timeOffsets', 'seccomp', 'mountLabel', 'intelRdt', 'personality']) c.notSet(l[f], `linux.${f}`);
}

function checkSysctl(c: Checker, key: string, namespaces: Map<string, string | undefined>): void {
  const parts = key.split(/[./]/);
  if (!/^[A-Za-z0-9_.\-/:@+]+$/.test(key) || parts.some((p) => p === '' || p === '..' || p === '.')) {
    c.error(`linux.sysctl ${q(key)} is not a valid sysctl name`);
    return;
  }
  const dotted = parts.join('.');
  if (IPC_SYSCTLS.has(dotted) || dotted.startsWith('fs.mqueue.')) {
    if (!namespaces.has('ipc')) c.error(`linux.sysctl ${q(key)} needs a private IPC namespace`);
    return;
  }
  if (dotted.startsWith('net.')) {
    if (!namespaces.has('network')) c.error(`linux.sysctl ${q(key)} needs a private network namespace`);
    return;
  }
  if (dotted === 'kernel.domainname' && namespaces.has('uts')) return;
  if (dotted === 'kernel.hostname') {
    c.error(`linux.sysctl ${q(key)}: set "hostname" instead`);
    return;
  }
  c.error(`linux.sysctl ${q(key)} is not namespaced: it would change the host`);
}

function checkHooks(c: Checker, hooks: unknown): void {
  if (hooks === undefined || hooks === null) return;
  if (!isObj(hooks)) {
    c.error('hooks must be an object');
    return;
  }
  for (const [name, list] of Object.entries(hooks)) c.notSet(list, `hooks.${name}`);
}

/** Every problem with `input` as a container's spec. */
export function checkSpec(input: unknown, opts: ValidateOptions = {}): SpecReport {
  const c = new Checker(opts.allowUnsupported ?? []);
  if (!isObj(input)) {
    c.error('the spec must be a JSON object');
    return c.report;
  }
  const s = input;
  if (c.string(s.ociVersion, 'ociVersion', { required: true })) {
    if (!/^1\.\d+\.\d+/.test(s.ociVersion)) c.error(`ociVersion ${q(s.ociVersion)} is not a 1.x version of the runtime spec`);
  }
  if (s.root !== undefined && s.root !== null) {
    if (!isObj(s.root)) c.error('root must be an object');
    else {
      c.string(s.root.path, 'root.path', { required: opts.requireRoot !== false });
      c.bool(s.root.readonly, 'root.readonly');
    }
  } else if (opts.requireRoot !== false) c.error('root.path is required');
  if (s.process === undefined || s.process === null) {
    if (opts.requireProcess !== false) c.error('process is required');
  } else checkProcess(c, s.process, 'process');

  const linux = isObj(s.linux) ? s.linux : undefined;
  if (s.linux !== undefined && s.linux !== null && !linux) c.error('linux must be an object');
  const namespaces = checkNamespaces(c, linux?.namespaces);
  if (!namespaces.has('mount')) c.error('linux.namespaces must include a mount namespace (Berth sets up the rootfs in one)');
  if (c.string(s.hostname, 'hostname') && s.hostname !== '' && !namespaces.has('uts')) c.error('hostname needs a private UTS namespace (linux.namespaces: uts)');
  if (c.string(s.domainname, 'domainname') && s.domainname !== '' && !namespaces.has('uts')) c.error('domainname needs a private UTS namespace (linux.namespaces: uts)');
  checkMounts(c, s.mounts);
  checkLinux(c, s, namespaces);
  checkHooks(c, s.hooks);
  if (s.annotations !== undefined && s.annotations !== null) {
    if (!isObj(s.annotations) || !Object.values(s.annotations).every((v) => typeof v === 'string')) c.error('annotations must be an object of strings');
  }
  for (const f of ['windows', 'solaris', 'vm', 'zos']) c.notSet(s[f], f);
  return c.report;
}

function fail(what: string, r: SpecReport): never {
  const parts: string[] = [];
  if (r.errors.length) parts.push(r.errors.join('; '));
  if (r.unsupported.length) parts.push(`unsupported: ${r.unsupported.join(', ')}`);
  throw new BerthError('InvalidArgument', `${what}: ${parts.join('; ')}`);
}

/** The spec, typed, or an InvalidArgument error naming every problem and unsupported field. */
export function validateSpec(input: unknown, opts: ValidateOptions = {}): RunnableSpec {
  const report = checkSpec(input, opts);
  if (report.errors.length || report.unsupported.length) fail('invalid OCI runtime spec', report);
  return input as RunnableSpec;
}

/** Every problem with `input` as an exec process spec (the Process JSON of Tasks/Exec). */
export function checkProcessSpec(input: unknown, opts: ValidateOptions = {}): SpecReport {
  const c = new Checker(opts.allowUnsupported ?? []);
  checkProcess(c, input, 'process');
  return c.report;
}

/** An exec process spec, typed, or an InvalidArgument error naming every problem. */
export function validateProcess(input: unknown, opts: ValidateOptions = {}): Process {
  const report = checkProcessSpec(input, opts);
  if (report.errors.length || report.unsupported.length) fail('invalid OCI process spec', report);
  return input as Process;
}

export type { Spec };
