import { validateIdentifier, validateLabel, validateLabels } from '../../services/metadata/validate';
import { BerthError, toStatus, GrpcCode } from '../../services/errdefs';

describe('identifiers', () => {
  test.each(['default', 'moby', 'plugins.moby', 'a-b_c.d', 'A1', '0', 'x'.repeat(76)])('%s is valid', (s) => {
    expect(() => validateIdentifier(s)).not.toThrow();
  });
  test.each([
    ['', 'identifier must not be empty: invalid argument'],
    ['x'.repeat(77), `identifier "${'x'.repeat(77)}" greater than maximum length (76 characters): invalid argument`],
    ['a/b', 'identifier "a/b" must match ^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$: invalid argument'],
    ['-a', /must match/],
    ['a..b', /must match/],
    ['a.', /must match/],
    ['ä', /must match/],
  ])('%j is refused', (s, message) => {
    expect(() => validateIdentifier(s)).toThrow(message as string | RegExp);
  });
});

describe('labels', () => {
  test('key and value together may be 4096 bytes', () => {
    expect(() => validateLabel('k', 'v'.repeat(4095))).not.toThrow();
    expect(() => validateLabel('k', 'v'.repeat(4096))).toThrow(
      'label key and value greater than maximum size (4096 bytes), key: k: invalid argument',
    );
    // bytes, not characters
    expect(() => validateLabel('k', 'é'.repeat(2048))).toThrow(/maximum size/);
  });
  test('a long key is shortened in the message and the prefix names the field', () => {
    expect(() => validateLabels({ ['k'.repeat(20)]: 'v'.repeat(4096) }, 'namespace.Labels')).toThrow(
      `namespace.Labels: label key and value greater than maximum size (4096 bytes), key: ${'k'.repeat(10)}: invalid argument`,
    );
  });
});

describe('errors', () => {
  test('kinds map to gRPC codes with containerd suffixes, once', () => {
    const e = new BerthError('NotFound', 'content digest sha256:x');
    expect(toStatus(e)).toEqual({ code: GrpcCode.NotFound, message: 'content digest sha256:x: not found' });
    expect(new BerthError('NotFound', 'x: not found').message).toBe('x: not found');
    expect(toStatus(new BerthError('NotImplemented', 'nope')).code).toBe(GrpcCode.Unimplemented);
    expect(toStatus(new BerthError('Unavailable', 'ref locked')).code).toBe(GrpcCode.Unavailable);
    expect(toStatus(new Error('boom'))).toEqual({ code: GrpcCode.Unknown, message: 'boom' });
  });
});
