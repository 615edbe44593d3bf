// Every snapshotter error message, worded as containerd's (metadata/snapshot.go and
// snapshots/storage/bolt.go); BerthError appends the kind's suffix (": not found", …).
import { BerthError } from '../services/errdefs';

export const snapshotNotFound = (key: string) => new BerthError('NotFound', `snapshot ${key} does not exist`);

export const snapshotExists = (key: string) => new BerthError('AlreadyExists', `snapshot ${JSON.stringify(key)}`);

export const parentNotFound = (parent: string) => new BerthError('NotFound', `parent snapshot ${parent} does not exist`);

export const parentNotCommitted = (parent: string) =>
  new BerthError('InvalidArgument', `parent ${JSON.stringify(parent)} is not committed snapshot`);

export const notActive = (key: string) => new BerthError('FailedPrecondition', `snapshot ${JSON.stringify(key)} is not active`);

export const notActiveOrView = (key: string) =>
  new BerthError('FailedPrecondition', `snapshot ${JSON.stringify(key)} is not active or view`);

export const hasChildren = () => new BerthError('FailedPrecondition', 'cannot remove snapshot with child');

export const immutableField = (field: string, name: string) =>
  new BerthError('InvalidArgument', `cannot update ${JSON.stringify(field)} field on snapshot ${JSON.stringify(name)}`);

export const emptyKey = (what: string) => new BerthError('InvalidArgument', `snapshot ${what} must not be empty`);

export const closed = () => new BerthError('FailedPrecondition', 'snapshotter is closed');

export const rootInUse = (root: string) =>
  new BerthError('Unavailable', `snapshotter root ${root} is in use by another snapshotter instance`);

export const corruptMetadata = (path: string, why: string) =>
  new BerthError('Internal', `snapshotter metadata ${path} is unreadable: ${why}`);
