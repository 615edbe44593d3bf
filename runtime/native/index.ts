// Berth's bindings to the Linux system calls the runtime needs, through koffi and libc.
//
// Importing this module loads no native code: koffi and libc.so.6 are opened on the first call,
// and each C function is declared when it is first used. Every call checks its result and throws
// a SyscallError (errno, code, syscall) whose message names the call and its arguments, e.g.
// `mount("proc" on "/x/proc", type proc): EPERM (Operation not permitted)`.
//
// Most of these act on the calling thread (namespaces, credentials, capabilities, fs state);
// see the notes in each module for what that means inside a multi-threaded Node process.
export * from './constants';
export * from './errno';
export { ffi, libc, sysno, syscall } from './libc';
export * from './ns';
export * from './mount';
export * from './caps';
export * from './proc';
export * from './fs';
export * from './pty';
