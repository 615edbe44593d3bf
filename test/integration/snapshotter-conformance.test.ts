// The shared snapshotter conformance suite (snapshotter/testsuite.ts) against both
// snapshotters, on the real kernel as root: every test mounts what the snapshotter returns.
import { NativeSnapshotter } from '../../snapshotter/native';
import { OverlaySnapshotter } from '../../snapshotter/overlay';
import { snapshotterSuite } from '../../snapshotter/testsuite';

jest.setTimeout(180_000);

snapshotterSuite('overlay', (root) => OverlaySnapshotter.open(root), { deepChain: 130 });
snapshotterSuite('native', (root) => NativeSnapshotter.open(root), { deepChain: 40 });
