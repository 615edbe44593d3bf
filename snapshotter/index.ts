// The snapshotter package: the Snapshotter interface and its overlay and native
// implementations, mounting their mounts, applying layers into them and computing layers from
// them. See README.md.
export * from './types';
export { DirectorySnapshotter } from './base';
export { OverlaySnapshotter, UPPERDIR_LABEL, type OverlayOptions } from './overlay';
export { NativeSnapshotter } from './native';
export { mountAll, mountOne, unmount, unmountAll, withTempMount, compactLowerdirOption, PAGE_SIZE } from './mount';
export { applyLayer, applyToMounts, applyTarget, cleanName, type ApplyMode, type ApplyOptions, type ApplyResult, type ApplyTarget } from './apply';
export { writeDiff, diffStream, diffTar, MEDIA_TYPE_LAYER, MEDIA_TYPE_LAYER_GZIP, type DiffOptions, type DiffResult } from './diff';
export { diskUsage } from './du';
export { copyTree } from './copy';
export { detectCompression, decompress, type Compression } from './compression';
