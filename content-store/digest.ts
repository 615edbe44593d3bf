// Digests: the only algorithm the store accepts is sha256 (containerd's canonical one), written
// `sha256:<64 lowercase hex>`. Validation follows go-digest's Digest.Validate so the same
// strings are rejected with the same reasons.
import { createHash, type Hash } from 'node:crypto';
import { BerthError } from '../services/errdefs';

/** `sha256:<hex>`. A plain string so that domain types stay plain data. */
export type Digest = string;

export const ALGORITHM = 'sha256';
const HEX_LENGTH = 64;
const HEX_RE = /^[a-f0-9]{64}$/;
// go-digest's DigestRegexp: an algorithm component, then the encoded part.
const DIGEST_RE = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

/** The digest of zero bytes. */
export const EMPTY_DIGEST: Digest = 'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

/** Why `d` is not a usable digest, or undefined when it is one. */
export function digestProblem(d: string): string | undefined {
  const i = d.indexOf(':');
  if (i <= 0 || i + 1 === d.length) return 'invalid checksum digest format';
  const algorithm = d.slice(0, i);
  const encoded = d.slice(i + 1);
  if (algorithm !== ALGORITHM) {
    return DIGEST_RE.test(d) ? 'unsupported digest algorithm' : 'invalid checksum digest format';
  }
  if (encoded.length !== HEX_LENGTH) return 'invalid checksum digest length';
  if (!HEX_RE.test(encoded)) return 'invalid checksum digest format';
  return undefined;
}

export function isDigest(d: unknown): d is Digest {
  return typeof d === 'string' && digestProblem(d) === undefined;
}

/** Throws InvalidArgument unless `d` is `sha256:` followed by 64 lowercase hex digits. */
export function validateDigest(d: string): Digest {
  const problem = digestProblem(d);
  if (problem !== undefined) {
    throw new BerthError('InvalidArgument', `invalid digest ${JSON.stringify(d)}: ${problem}`);
  }
  return d;
}

/** The hex part of a valid digest (validates first). */
export function digestHex(d: Digest): string {
  return validateDigest(d).slice(ALGORITHM.length + 1);
}

export function digestFromHex(hex: string): Digest {
  return validateDigest(`${ALGORITHM}:${hex}`);
}

export function isDigestHex(name: string): boolean {
  return HEX_RE.test(name);
}

/** The digest of bytes or a string (UTF-8). */
export function digestOf(data: string | Uint8Array): Digest {
  return `${ALGORITHM}:${createHash(ALGORITHM).update(data).digest('hex')}`;
}

/** A running digest: feed bytes in order, read the digest of everything so far at any time. */
export class Digester {
  private hash: Hash = createHash(ALGORITHM);
  private length = 0;

  update(data: Uint8Array): this {
    this.hash.update(data);
    this.length += data.byteLength;
    return this;
  }

  /** Bytes fed so far. */
  get size(): number {
    return this.length;
  }

  /** The digest of the bytes fed so far; feeding may continue afterwards. */
  digest(): Digest {
    return `${ALGORITHM}:${this.hash.copy().digest('hex')}`;
  }

  reset(): void {
    this.hash = createHash(ALGORITHM);
    this.length = 0;
  }
}
