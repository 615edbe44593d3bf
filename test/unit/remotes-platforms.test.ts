import {
  allPlatforms,
  compatiblePlatforms,
  formatPlatform,
  hostPlatform,
  normalizePlatform,
  onlyPlatform,
  onlyStrict,
  parsePlatform,
  platformMatcher,
  type Platform,
} from '../../services/remotes/platforms';
import { selectManifest, selectManifests, type Descriptor, type Index } from '../../services/remotes/images';

const hostArch = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', s390x: 's390x', riscv64: 'riscv64' }[process.arch as string] ?? process.arch;

describe('parsePlatform', () => {
  test.each([
    ['linux/amd64', 'linux/amd64'],
    ['linux/x86_64', 'linux/amd64'],
    ['linux/x86-64', 'linux/amd64'],
    ['Linux/AMD64', 'linux/amd64'],
    ['linux/i386', 'linux/386'],
    ['linux/aarch64', 'linux/arm64'],
    ['linux/arm64', 'linux/arm64'],
    ['linux/arm64/v8', 'linux/arm64/v8'],
    ['linux/arm64/8', 'linux/arm64/v8'],
    ['linux/arm', 'linux/arm'],
    ['linux/arm/v7', 'linux/arm/v7'],
    ['linux/arm/7', 'linux/arm/v7'],
    ['linux/arm/v6', 'linux/arm/v6'],
    ['linux/arm/6', 'linux/arm/v6'],
    ['linux/armhf', 'linux/arm'],
    ['linux/armel', 'linux/arm/v6'],
    ['macos/arm64', 'darwin/arm64'],
    ['windows/amd64', 'windows/amd64'],
    ['linux/ppc64le', 'linux/ppc64le'],
    ['linux/s390x', 'linux/s390x'],
    ['linux/riscv64', 'linux/riscv64'],
    ['freebsd/unknownarch', 'freebsd/unknownarch'], // two parts: taken as given
  ])('%s → %s', (spec, want) => {
    expect(formatPlatform(parsePlatform(spec))).toBe(want);
  });

  test('one component: an OS gets the host architecture, an architecture the host OS', () => {
    expect(parsePlatform('linux')).toEqual(expect.objectContaining({ os: 'linux', architecture: hostArch }));
    expect(parsePlatform('arm64')).toEqual({ os: process.platform === 'win32' ? 'windows' : process.platform, architecture: 'arm64' });
    expect(parsePlatform('armhf')).toEqual({ os: process.platform, architecture: 'arm' });
  });

  test.each([
    ['', /invalid component/],
    ['linux/', /invalid component/],
    ['linux/amd64/v1/x', /cannot parse platform specifier/],
    ['linux/*', /wildcards not yet supported/],
    ['linux/am d64', /invalid component/],
    ['nonsense', /unknown operating system or architecture/],
  ])('%j is refused', (spec, message) => {
    expect(() => parsePlatform(spec)).toThrow(message);
    try {
      parsePlatform(spec);
    } catch (err) {
      expect((err as { kind: string }).kind).toBe('InvalidArgument');
    }
  });
});

describe('normalise and host', () => {
  test('normalizePlatform', () => {
    expect(normalizePlatform({ os: 'linux', architecture: 'arm64', variant: 'v8' })).toEqual({ os: 'linux', architecture: 'arm64' });
    expect(normalizePlatform({ os: 'linux', architecture: 'arm' })).toEqual({ os: 'linux', architecture: 'arm', variant: 'v7' });
    expect(normalizePlatform({ os: 'Linux', architecture: 'x86_64', variant: 'v3' })).toEqual({ os: 'linux', architecture: 'amd64' });
    expect(normalizePlatform({ os: 'windows', architecture: 'amd64', 'os.version': '10.0.17763.1' })).toEqual({
      os: 'windows',
      architecture: 'amd64',
      'os.version': '10.0.17763.1',
    });
  });

  test('hostPlatform comes from process.platform/arch (with a variant on ARM)', () => {
    const h = hostPlatform();
    expect(h.os).toBe(process.platform === 'win32' ? 'windows' : process.platform);
    expect(h.architecture).toBe(hostArch);
    if (hostArch === 'arm' || hostArch === 'arm64') expect(h.variant).toMatch(/^v\d$/);
    else expect(h.variant).toBeUndefined();
  });

  test('formatPlatform', () => {
    expect(formatPlatform({ os: '', architecture: 'amd64' })).toBe('unknown');
    expect(formatPlatform({ os: 'linux', architecture: 'arm', variant: 'v7' })).toBe('linux/arm/v7');
  });

  test('compatible platforms, best first (containerd 1.6 platformVector)', () => {
    expect(compatiblePlatforms(normalizePlatform({ os: 'linux', architecture: 'amd64' })).map(formatPlatform)).toEqual(['linux/amd64', 'linux/386']);
    expect(compatiblePlatforms(normalizePlatform({ os: 'linux', architecture: 'arm', variant: 'v7' })).map(formatPlatform)).toEqual([
      'linux/arm/v7',
      'linux/arm/v6',
      'linux/arm/v5',
    ]);
    expect(compatiblePlatforms(normalizePlatform({ os: 'linux', architecture: 'arm64' })).map(formatPlatform)).toEqual([
      'linux/arm64',
      'linux/arm/v8',
      'linux/arm/v7',
      'linux/arm/v6',
      'linux/arm/v5',
    ]);
  });
});

describe('matching', () => {
  const amd64: Platform = { os: 'linux', architecture: 'amd64' };
  const arm64v8: Platform = { os: 'linux', architecture: 'arm64', variant: 'v8' };

  test('only: the platform and its fallbacks, preferring the exact one', () => {
    const m = onlyPlatform(amd64);
    expect(m.match({ os: 'linux', architecture: 'amd64' })).toBe(true);
    expect(m.match({ os: 'linux', architecture: 'x86_64' })).toBe(true);
    expect(m.match({ os: 'linux', architecture: '386' })).toBe(true);
    expect(m.match({ os: 'linux', architecture: 'arm64' })).toBe(false);
    expect(m.match({ os: 'windows', architecture: 'amd64' })).toBe(false);
    expect(m.less({ os: 'linux', architecture: 'amd64' }, { os: 'linux', architecture: '386' })).toBe(true);
    expect(m.less({ os: 'linux', architecture: '386' }, { os: 'linux', architecture: 'amd64' })).toBe(false);
  });

  test('arm64 and arm64/v8 are the same platform', () => {
    expect(onlyPlatform({ os: 'linux', architecture: 'arm64' }).match(arm64v8)).toBe(true);
    expect(onlyPlatform(arm64v8).match({ os: 'linux', architecture: 'aarch64' })).toBe(true);
    expect(platformMatcher('linux/arm64/v8').match({ os: 'linux', architecture: 'arm64' })).toBe(true);
  });

  test('arm variants', () => {
    const v7 = platformMatcher('linux/arm/v7');
    expect(v7.match({ os: 'linux', architecture: 'arm' })).toBe(true); // no variant = v7
    expect(v7.match({ os: 'linux', architecture: 'arm', variant: 'v6' })).toBe(true);
    expect(v7.match({ os: 'linux', architecture: 'arm', variant: 'v8' })).toBe(false);
    const v6 = platformMatcher('linux/arm/v6');
    expect(v6.match({ os: 'linux', architecture: 'arm', variant: 'v7' })).toBe(false);
  });

  test('strict matching has no fallbacks', () => {
    expect(onlyStrict(amd64).match({ os: 'linux', architecture: '386' })).toBe(false);
    expect(onlyStrict(amd64).match(amd64)).toBe(true);
  });

  test('all platforms', () => {
    expect(allPlatforms.match({ os: 'plan9', architecture: 'mips' })).toBe(true);
    expect(platformMatcher('all')).toBe(allPlatforms);
  });

  test('a list of platforms, in preference order', () => {
    const m = platformMatcher(['linux/arm64', amd64]);
    expect(m.match(amd64)).toBe(true);
    expect(m.match(arm64v8)).toBe(true);
    expect(m.less(arm64v8, amd64)).toBe(true);
  });

  test('the default matches the host', () => {
    expect(platformMatcher().match(hostPlatform())).toBe(true);
  });
});

describe('selecting manifests from an index', () => {
  const d = (n: number, platform?: Platform, mediaType = 'application/vnd.oci.image.manifest.v1+json'): Descriptor => {
    const desc: Descriptor = { mediaType, digest: `sha256:${String(n).repeat(64).slice(0, 64)}`, size: 100 + n };
    if (platform) desc.platform = platform;
    return desc;
  };
  const index: Index = {
    schemaVersion: 2,
    manifests: [
      d(1, { os: 'linux', architecture: '386' }),
      d(2, { os: 'linux', architecture: 'arm', variant: 'v6' }),
      d(3, { os: 'linux', architecture: 'amd64' }),
      d(4, { os: 'linux', architecture: 'arm64', variant: 'v8' }),
      d(5, { os: 'linux', architecture: 'arm', variant: 'v7' }),
      d(6, { os: 'unknown', architecture: 'unknown' }),
      d(7, { os: 'windows', architecture: 'amd64', 'os.version': '10.0' }),
      d(8, { os: 'linux', architecture: 'amd64' }, 'application/vnd.in-toto+json'),
    ],
  };

  test('best match first', () => {
    expect(selectManifest(index, platformMatcher('linux/amd64')).digest).toBe(d(3).digest);
    expect(selectManifests(index, platformMatcher('linux/amd64')).map((x) => x.size)).toEqual([103, 101]);
    expect(selectManifest(index, platformMatcher('linux/arm64')).digest).toBe(d(4).digest);
    expect(selectManifest(index, platformMatcher('linux/arm/v7')).digest).toBe(d(5).digest);
    expect(selectManifests(index, platformMatcher('linux/arm/v7')).map((x) => x.size)).toEqual([105, 102]);
    expect(selectManifest(index, platformMatcher('windows/amd64')).digest).toBe(d(7).digest);
  });

  test('limit and all platforms', () => {
    expect(selectManifests(index, allPlatforms).map((x) => x.size)).toEqual([101, 102, 103, 104, 105, 106, 107]);
    expect(selectManifests(index, allPlatforms, 2)).toHaveLength(2);
  });

  test('an entry without platform matches, after those with one', () => {
    const idx: Index = { schemaVersion: 2, manifests: [d(1), d(3, { os: 'linux', architecture: 'amd64' })] };
    expect(selectManifests(idx, platformMatcher('linux/amd64')).map((x) => x.size)).toEqual([103, 101]);
    expect(selectManifests(idx, platformMatcher('linux/s390x')).map((x) => x.size)).toEqual([101]);
  });

  test('no match is NotFound naming what the index offers', () => {
    let err: unknown;
    try {
      selectManifest(index, platformMatcher('linux/s390x'));
    } catch (e) {
      err = e;
    }
    expect((err as { kind: string }).kind).toBe('NotFound');
    expect((err as Error).message).toMatch(/no match for platform in manifest: wanted linux\/s390x, index has \[linux\/386, .*windows\/amd64/);
  });
});
