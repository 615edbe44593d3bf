import { BerthError } from '../../services/errdefs';
import {
  familiarName,
  familiarString,
  formatReference,
  hostnameOf,
  parseDockerRef,
  parseReference,
  referenceObject,
  withDigest,
  withTag,
} from '../../services/remotes/references';

const D = `sha256:${'a'.repeat(64)}`;
const D2 = `sha256:${'0123456789abcdef'.repeat(4)}`;

describe('parseReference normalises as Docker does', () => {
  test.each([
    ['busybox', 'docker.io/library/busybox:latest'],
    ['busybox:1.36', 'docker.io/library/busybox:1.36'],
    ['library/busybox', 'docker.io/library/busybox:latest'],
    ['docker.io/busybox', 'docker.io/library/busybox:latest'],
    ['docker.io/library/busybox:latest', 'docker.io/library/busybox:latest'],
    ['index.docker.io/busybox', 'docker.io/library/busybox:latest'],
    ['index.docker.io/library/busybox:musl', 'docker.io/library/busybox:musl'],
    ['user/app', 'docker.io/user/app:latest'],
    ['user/app/sub', 'docker.io/user/app/sub:latest'],
    ['gcr.io/project/app:v1', 'gcr.io/project/app:v1'],
    ['localhost/app', 'localhost/app:latest'],
    ['localhost:5000/app:dev', 'localhost:5000/app:dev'],
    ['127.0.0.1:5000/test/busybox', '127.0.0.1:5000/test/busybox:latest'],
    ['127.0.0.1:5000/test/busybox:v1.2_3-rc', '127.0.0.1:5000/test/busybox:v1.2_3-rc'],
    ['[::1]:5000/app:1', '[::1]:5000/app:1'],
    ['registry.example.com/a.b/c_d/e__f/g-h--i:tag', 'registry.example.com/a.b/c_d/e__f/g-h--i:tag'],
    [`busybox@${D}`, `docker.io/library/busybox@${D}`],
    [`busybox:1.36@${D}`, `docker.io/library/busybox:1.36@${D}`],
    [`127.0.0.1:5000/x@${D2}`, `127.0.0.1:5000/x@${D2}`],
    ['Registry.Example.com/app', 'Registry.Example.com/app:latest'], // upper case is allowed in the domain
    ['UPPER/app', 'UPPER/app:latest'], // an upper-case first component is taken as a domain (Docker's rule)
    ['a'.repeat(64) + 'x', `docker.io/library/${'a'.repeat(64)}x:latest`],
    ['busybox:' + 'T'.repeat(128), 'docker.io/library/busybox:' + 'T'.repeat(128)],
  ])('%s → %s', (input, want) => {
    expect(formatReference(parseReference(input))).toBe(want);
  });

  test('components', () => {
    expect(parseReference('127.0.0.1:5000/test/busybox:v1')).toEqual({ domain: '127.0.0.1:5000', path: 'test/busybox', tag: 'v1' });
    expect(parseReference(`busybox:1@${D}`)).toEqual({ domain: 'docker.io', path: 'library/busybox', tag: '1', digest: D });
    expect(parseReference('busybox', { defaultTag: false })).toEqual({ domain: 'docker.io', path: 'library/busybox' });
    expect(parseReference('busybox', { defaultTag: 'edge' }).tag).toBe('edge');
  });

  test('a digest reference gets no default tag', () => {
    expect(parseReference(`busybox@${D}`).tag).toBeUndefined();
  });

  test('parseDockerRef drops the tag when a digest is present', () => {
    expect(formatReference(parseDockerRef(`busybox:1.36@${D}`))).toBe(`docker.io/library/busybox@${D}`);
    expect(formatReference(parseDockerRef('busybox'))).toBe('docker.io/library/busybox:latest');
  });

  test('referenceObject', () => {
    expect(referenceObject(parseReference('busybox'))).toBe('latest');
    expect(referenceObject(parseReference(`busybox:1@${D}`))).toBe(`1@${D}`);
    expect(referenceObject(parseReference(`busybox@${D}`))).toBe(`@${D}`);
  });
});

describe('parseReference refuses bad references with InvalidArgument', () => {
  test.each([
    ['', /repository name must have at least one component/],
    ['Busybox', /invalid reference format: repository name must be lowercase/],
    ['docker.io/Library/busybox', /repository name must be lowercase/],
    ['127.0.0.1:5000/Test/app', /repository name must be lowercase/],
    ['a'.repeat(64), /cannot specify 64-byte hexadecimal strings/],
    ['busybox:', /invalid reference format/],
    ['busybox:tag:more', /invalid reference format/],
    ['busybox:-tag', /invalid reference format/],
    ['busybox:' + 't'.repeat(129), /invalid reference format/],
    ['busy box', /invalid reference format/],
    ['/busybox', /invalid reference format/],
    ['busybox/', /invalid reference format/],
    ['a//b', /invalid reference format/],
    ['-app', /invalid reference format/],
    ['app-', /invalid reference format/],
    ['a...b', /invalid reference format/],
    ['busybox@sha256:abc', /invalid reference format/],
    [`busybox@sha256:${'a'.repeat(63)}`, /invalid checksum digest length/],
    [`busybox@sha256:${'A'.repeat(64)}`, /invalid checksum digest format/],
    [`busybox@sha512:${'a'.repeat(128)}`, /unsupported digest algorithm/],
    ['my_host:5000/app', /invalid reference format/],
    ['host:port/app', /invalid reference format/],
    [`registry.example.com/${'a'.repeat(240)}/b`, /must not be more than 255 characters/],
  ])('%j', (input, message) => {
    let err: unknown;
    try {
      parseReference(input);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(BerthError);
    expect((err as BerthError).kind).toBe('InvalidArgument');
    expect((err as BerthError).message).toMatch(message);
    expect((err as BerthError).message).toContain(JSON.stringify(input));
  });
});

describe('familiar names', () => {
  test.each([
    ['busybox', 'busybox', 'busybox:latest'],
    ['docker.io/library/busybox:1.36', 'busybox', 'busybox:1.36'],
    ['user/app', 'user/app', 'user/app:latest'],
    ['docker.io/library/a/b', 'library/a/b', 'library/a/b:latest'],
    ['127.0.0.1:5000/test/busybox:v1', '127.0.0.1:5000/test/busybox', '127.0.0.1:5000/test/busybox:v1'],
    [`busybox@${D}`, 'busybox', `busybox@${D}`],
  ])('%s', (input, name, full) => {
    expect(familiarName(input)).toBe(name);
    expect(familiarString(parseReference(input))).toBe(full);
  });
});

describe('helpers', () => {
  test('withTag / withDigest', () => {
    const r = parseReference(`127.0.0.1:5000/a/b:1@${D}`);
    expect(formatReference(withTag(r, 'two'))).toBe('127.0.0.1:5000/a/b:two');
    expect(formatReference(withDigest(parseReference('a/b:1'), D2))).toBe(`docker.io/a/b:1@${D2}`);
    expect(() => withTag(r, 'bad tag')).toThrow(/invalid tag format/);
    expect(() => withDigest(r, 'sha256:x')).toThrow(/invalid digest/);
  });

  test('hostnameOf drops the port', () => {
    expect(hostnameOf('127.0.0.1:5000')).toBe('127.0.0.1');
    expect(hostnameOf('docker.io')).toBe('docker.io');
    expect(hostnameOf('[::1]:5000')).toBe('::1');
  });
});
