import {
  MediaType,
  childrenGCLabels,
  children,
  configPlatform,
  detectManifestType,
  distributionSourceLabel,
  gcLabels,
  isConfigType,
  isIndexType,
  isLayerType,
  isManifestType,
  layerCompression,
  mergeDistributionSource,
  parseDescriptor,
  parseImageConfig,
  parseIndex,
  parseManifest,
  type Descriptor,
} from '../../services/remotes/images';
import { parseReference } from '../../services/remotes/references';

const dg = (c: string) => `sha256:${c.repeat(64)}`;
const config: Descriptor = { mediaType: MediaType.OciConfig, digest: dg('c'), size: 300 };
const l0: Descriptor = { mediaType: MediaType.OciLayerGzip, digest: dg('1'), size: 1000 };
const l1: Descriptor = { mediaType: MediaType.OciLayerGzip, digest: dg('2'), size: 2000 };
const manifestDesc = (content: string, mediaType: string = MediaType.OciManifest): Descriptor => ({ mediaType, digest: dg('d'), size: content.length });

describe('media types', () => {
  test('classification', () => {
    expect(isManifestType(MediaType.OciManifest)).toBe(true);
    expect(isManifestType(`${MediaType.DockerManifest}; charset=utf-8`)).toBe(true);
    expect(isIndexType(MediaType.DockerManifestList)).toBe(true);
    expect(isIndexType(MediaType.OciIndex)).toBe(true);
    expect(isLayerType(MediaType.DockerLayerGzip)).toBe(true);
    expect(isLayerType(MediaType.OciLayerZstd)).toBe(true);
    expect(isLayerType(MediaType.DockerForeignLayerGzip)).toBe(true);
    expect(isLayerType(MediaType.OciConfig)).toBe(false);
    expect(isConfigType(MediaType.DockerConfig)).toBe(true);
    expect(layerCompression(MediaType.OciLayer)).toBe('none');
    expect(layerCompression(MediaType.DockerLayerGzip)).toBe('gzip');
    expect(layerCompression(MediaType.OciLayerZstd)).toBe('zstd');
    expect(layerCompression(MediaType.OciConfig)).toBeUndefined();
  });

  test('detectManifestType', () => {
    expect(detectManifestType(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.DockerManifest }))).toBe(MediaType.DockerManifest);
    expect(detectManifestType(JSON.stringify({ schemaVersion: 2, config, layers: [] }))).toBe(MediaType.OciManifest);
    expect(detectManifestType(JSON.stringify({ schemaVersion: 2, manifests: [] }))).toBe(MediaType.OciIndex);
    expect(detectManifestType(JSON.stringify({ schemaVersion: 1, fsLayers: [] }))).toBe(MediaType.DockerSchema1Manifest);
    expect(detectManifestType('{"hello": 1}')).toBeUndefined();
    expect(detectManifestType('not json')).toBeUndefined();
  });
});

describe('parsing', () => {
  test('manifest', () => {
    const text = JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciManifest, config, layers: [l0, l1], annotations: { a: 'b' } });
    const m = parseManifest(text, MediaType.OciManifest);
    expect(m.config).toEqual(config);
    expect(m.layers).toEqual([l0, l1]);
    expect(m.annotations).toEqual({ a: 'b' });
  });

  test.each([
    ['not json', /not valid JSON/],
    ['[]', /not a JSON object/],
    [JSON.stringify({ schemaVersion: 2, manifests: [] }), /expected manifest but found index/],
    [JSON.stringify({ schemaVersion: 1, fsLayers: [] }), /schema 1 manifests are not supported/],
    [JSON.stringify({ schemaVersion: 3, config, layers: [] }), /unsupported schemaVersion/],
    [JSON.stringify({ schemaVersion: 2, config }), /missing layers/],
    [JSON.stringify({ schemaVersion: 2, config: { ...config, digest: 'sha256:xyz' }, layers: [] }), /invalid digest/],
    [JSON.stringify({ schemaVersion: 2, config, layers: [{ ...l0, size: -1 }] }), /layer 0: invalid size/],
    [JSON.stringify({ schemaVersion: 2, config, layers: [{ ...l0, size: 1.5 }] }), /invalid size/],
    [JSON.stringify({ schemaVersion: 2, config: { digest: dg('c'), size: 1 }, layers: [] }), /missing mediaType/],
    [JSON.stringify({ schemaVersion: 2, mediaType: MediaType.DockerManifest, config, layers: [] }), /media type mismatch/],
  ])('bad manifest %#', (text, message) => {
    expect(() => parseManifest(text, MediaType.OciManifest)).toThrow(message);
  });

  test('index', () => {
    const m1: Descriptor = { mediaType: MediaType.OciManifest, digest: dg('e'), size: 10, platform: { os: 'linux', architecture: 'amd64' } };
    const idx = parseIndex(JSON.stringify({ schemaVersion: 2, manifests: [m1] }), MediaType.OciIndex);
    expect(idx.manifests).toEqual([m1]);
    expect(() => parseIndex(JSON.stringify({ schemaVersion: 2, config, layers: [] }), MediaType.OciIndex)).toThrow(
      /expected index but found manifest/,
    );
    expect(() => parseIndex(JSON.stringify({ schemaVersion: 2 }))).toThrow(/missing manifests/);
    expect(() => parseIndex(JSON.stringify({ schemaVersion: 2, manifests: [{ ...m1, platform: { os: 'linux' } }] }))).toThrow(/platform needs/);
  });

  test('config', () => {
    const c = parseImageConfig(
      JSON.stringify({ architecture: 'arm64', variant: 'v8', os: 'linux', config: { Cmd: ['/bin/sh'] }, rootfs: { type: 'layers', diff_ids: [dg('a')] } }),
    );
    expect(c.rootfs.diff_ids).toEqual([dg('a')]);
    expect(c.config?.Cmd).toEqual(['/bin/sh']);
    expect(configPlatform(c)).toEqual({ os: 'linux', architecture: 'arm64' });
    expect(() => parseImageConfig(JSON.stringify({ rootfs: { type: 'other', diff_ids: [] } }))).toThrow(/rootfs type must be "layers"/);
    expect(() => parseImageConfig(JSON.stringify({ architecture: 'amd64' }))).toThrow(/missing rootfs/);
    expect(() => parseImageConfig(JSON.stringify({ rootfs: { type: 'layers', diff_ids: ['nope'] } }))).toThrow(/diff_ids\[0\]/);
  });

  test('descriptor', () => {
    expect(() => parseDescriptor({ mediaType: 'x', digest: dg('a'), size: Number.MAX_SAFE_INTEGER + 2 })).toThrow(/invalid size/);
    expect(parseDescriptor({ mediaType: 'x', digest: dg('a'), size: 0, urls: ['http://x'], extra: 1 })).toEqual({
      mediaType: 'x',
      digest: dg('a'),
      size: 0,
      urls: ['http://x'],
    });
  });
});

describe('children and GC labels', () => {
  test('a manifest: config then layers; labels config and l.<i>', () => {
    const text = JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciManifest, config, layers: [l0, l1] });
    const desc = manifestDesc(text);
    expect(children(desc, text)).toEqual([config, l0, l1]);
    expect(gcLabels(desc, text)).toEqual({
      'containerd.io/gc.ref.content.config': config.digest,
      'containerd.io/gc.ref.content.l.0': l0.digest,
      'containerd.io/gc.ref.content.l.1': l1.digest,
    });
  });

  test('a Docker schema 2 manifest', () => {
    const dc = { ...config, mediaType: MediaType.DockerConfig };
    const dl = { ...l0, mediaType: MediaType.DockerLayerGzip };
    const text = JSON.stringify({ schemaVersion: 2, mediaType: MediaType.DockerManifest, config: dc, layers: [dl] });
    expect(gcLabels(manifestDesc(text, MediaType.DockerManifest), text)).toEqual({
      'containerd.io/gc.ref.content.config': dc.digest,
      'containerd.io/gc.ref.content.l.0': dl.digest,
    });
  });

  test('an index: m.<i> for every manifest, whatever its platform; nested indexes and others by position', () => {
    const ms = [
      { mediaType: MediaType.OciManifest, digest: dg('a'), size: 1, platform: { os: 'linux', architecture: 'amd64' } },
      { mediaType: MediaType.OciManifest, digest: dg('b'), size: 1, platform: { os: 'linux', architecture: 'arm64' } },
      { mediaType: MediaType.OciIndex, digest: dg('e'), size: 1 },
      { mediaType: MediaType.DockerManifest, digest: dg('f'), size: 1 },
    ];
    const text = JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: ms });
    const desc: Descriptor = { mediaType: MediaType.OciIndex, digest: dg('9'), size: text.length };
    expect(children(desc, text)).toEqual(ms);
    expect(gcLabels(desc, text)).toEqual({
      'containerd.io/gc.ref.content.m.0': dg('a'),
      'containerd.io/gc.ref.content.m.1': dg('b'),
      'containerd.io/gc.ref.content.0': dg('e'),
      'containerd.io/gc.ref.content.m.2': dg('f'),
    });
  });

  test('layers and configs have no children; unknown types are NotImplemented', () => {
    expect(children(l0, Buffer.from('tar bytes'))).toEqual([]);
    expect(children(config, '{}')).toEqual([]);
    expect(() => children({ mediaType: 'application/x-unknown', digest: dg('a'), size: 1 }, '{}')).toThrow(/unsupported media type/);
    try {
      children({ mediaType: 'application/x-unknown', digest: dg('a'), size: 1 }, '{}');
    } catch (err) {
      expect((err as { kind: string }).kind).toBe('NotImplemented');
    }
    expect(() => children({ mediaType: MediaType.DockerSchema1SignedManifest, digest: dg('a'), size: 1 }, '{}')).toThrow(/schema 1/);
  });

  test('childrenGCLabels numbers per kind', () => {
    expect(childrenGCLabels([l0, config, l1, { mediaType: 'x/y', digest: dg('7'), size: 1 }])).toEqual({
      'containerd.io/gc.ref.content.l.0': l0.digest,
      'containerd.io/gc.ref.content.config': config.digest,
      'containerd.io/gc.ref.content.l.1': l1.digest,
      'containerd.io/gc.ref.content.0': dg('7'),
    });
  });

  test('distribution source label (ctr: host without port; dockerd keeps it)', () => {
    const r = parseReference('127.0.0.1:5000/test/busybox:latest');
    expect(distributionSourceLabel(r)).toEqual({ 'containerd.io/distribution.source.127.0.0.1': 'test/busybox' });
    expect(distributionSourceLabel(r, { keepPort: true })).toEqual({ 'containerd.io/distribution.source.127.0.0.1:5000': 'test/busybox' });
    expect(distributionSourceLabel(parseReference('busybox'))).toEqual({ 'containerd.io/distribution.source.docker.io': 'library/busybox' });
    expect(mergeDistributionSource('b/x,a/y', 'a/y')).toBe('a/y,b/x');
    expect(mergeDistributionSource(undefined, 'test/busybox')).toBe('test/busybox');
  });
});
