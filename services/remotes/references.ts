// Image references, parsed and normalised as Docker (distribution/reference) does:
//   busybox                      → docker.io/library/busybox:latest
//   ubuntu:22.04                 → docker.io/library/ubuntu:22.04
//   user/app                     → docker.io/user/app:latest
//   127.0.0.1:5000/test/app:v1   → 127.0.0.1:5000/test/app:v1
//   busybox@sha256:<hex>         → docker.io/library/busybox@sha256:<hex>
//   busybox:1.36@sha256:<hex>    → tag and digest kept (the digest is what is resolved)
// Error texts follow distribution's ("invalid reference format: repository name must be lowercase").
import { BerthError } from '../errdefs';
import { digestProblem } from '../../content-store/digest';

export const DEFAULT_DOMAIN = 'docker.io';
const LEGACY_DEFAULT_DOMAIN = 'index.docker.io';
const OFFICIAL_REPO_PREFIX = 'library/';
export const DEFAULT_TAG = 'latest';
const NAME_TOTAL_LENGTH_MAX = 255;

// distribution/reference's grammar.
const ALNUM = '[a-z0-9]+';
const SEPARATOR = '(?:[._]|__|[-]+)';
const PATH_COMPONENT = `${ALNUM}(?:${SEPARATOR}${ALNUM})*`;
const DOMAIN_NAME_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const IPV6 = '\\[(?:[a-fA-F0-9:]+)\\]';
const DOMAIN = `(?:${DOMAIN_NAME_COMPONENT}(?:\\.${DOMAIN_NAME_COMPONENT})*|${IPV6})(?::[0-9]+)?`;
const TAG = '[\\w][\\w.-]{0,127}';
const DIGEST = '[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9a-fA-F]{32,}';
const NAME = `(?:${DOMAIN}/)?${PATH_COMPONENT}(?:/${PATH_COMPONENT})*`;
const REFERENCE_RE = new RegExp(`^(${NAME})(?::(${TAG}))?(?:@(${DIGEST}))?$`);
const ANCHORED_NAME_RE = new RegExp(`^(?:(${DOMAIN})/)?(${PATH_COMPONENT}(?:/${PATH_COMPONENT})*)$`);
const TAG_RE = new RegExp(`^${TAG}$`);
const IDENTIFIER_RE = /^[a-f0-9]{64}$/;

/** A parsed reference. `domain`/`path` always set; at least one of tag/digest after normalising. */
export interface Reference {
  /** Registry host, with port when given: `docker.io`, `127.0.0.1:5000`. */
  domain: string;
  /** Repository path inside the registry: `library/busybox`. */
  path: string;
  tag?: string;
  digest?: string;
}

function invalid(input: string, why: string): BerthError {
  return new BerthError('InvalidArgument', `parsing reference ${JSON.stringify(input)}: ${why}`);
}

/** Splits `name` into domain and remainder as Docker's splitDockerDomain does. */
function splitDockerDomain(name: string): [string, string] {
  const i = name.indexOf('/');
  let domain: string;
  let remainder: string;
  const first = i === -1 ? '' : name.slice(0, i);
  if (i === -1 || (!/[.:]/.test(first) && first !== 'localhost' && first.toLowerCase() === first)) {
    domain = DEFAULT_DOMAIN;
    remainder = name;
  } else {
    domain = first;
    remainder = name.slice(i + 1);
  }
  if (domain === LEGACY_DEFAULT_DOMAIN) domain = DEFAULT_DOMAIN;
  if (domain === DEFAULT_DOMAIN && !remainder.includes('/')) remainder = OFFICIAL_REPO_PREFIX + remainder;
  return [domain, remainder];
}

/**
 * Parses an already fully qualified reference (`domain/path[:tag][@digest]`) without applying
 * Docker's defaults. Throws InvalidArgument.
 */
function parseQualified(input: string, s: string): Reference {
  if (s === '') throw invalid(input, 'repository name must have at least one component');
  const m = REFERENCE_RE.exec(s);
  if (!m) {
    if (REFERENCE_RE.test(s.toLowerCase())) throw invalid(input, 'invalid reference format: repository name must be lowercase');
    throw invalid(input, 'invalid reference format');
  }
  const name = m[1]!;
  if (name.length > NAME_TOTAL_LENGTH_MAX) {
    throw invalid(input, `repository name must not be more than ${NAME_TOTAL_LENGTH_MAX} characters`);
  }
  const nm = ANCHORED_NAME_RE.exec(name);
  if (!nm) throw invalid(input, 'invalid reference format');
  const ref: Reference = { domain: nm[1] ?? '', path: nm[2]! };
  if (m[2] !== undefined) ref.tag = m[2];
  if (m[3] !== undefined) {
    const problem = digestProblem(m[3]);
    if (problem !== undefined) throw invalid(input, `invalid digest ${JSON.stringify(m[3])}: ${problem}`);
    ref.digest = m[3];
  }
  return ref;
}

export interface ParseOptions {
  /**
   * Tag added when the reference has neither tag nor digest (Docker's TagNameOnly).
   * Default `latest`; `false` leaves the reference name-only.
   */
  defaultTag?: string | false;
}

/**
 * Parses a reference the way `docker pull` reads it: a missing domain means docker.io, a
 * single-component docker.io path gets `library/`, and a name-only reference gets `:latest`.
 * A reference with both tag and digest keeps both (resolution uses the digest).
 * Throws InvalidArgument with distribution's wording.
 */
export function parseReference(input: string, options: ParseOptions = {}): Reference {
  if (typeof input !== 'string') throw invalid(String(input), 'reference must be a string');
  const s = input;
  if (s === '') throw invalid(input, 'repository name must have at least one component');
  if (IDENTIFIER_RE.test(s)) {
    throw invalid(input, `invalid repository name (${s}), cannot specify 64-byte hexadecimal strings`);
  }
  const [domain, remainder] = splitDockerDomain(s);
  const tagSep = remainder.indexOf(':');
  const remoteName = tagSep > -1 ? remainder.slice(0, tagSep) : remainder;
  if (remoteName.toLowerCase() !== remoteName) {
    throw invalid(input, 'invalid reference format: repository name must be lowercase');
  }
  const ref = parseQualified(input, `${domain}/${remainder}`);
  const defaultTag = options.defaultTag === undefined ? DEFAULT_TAG : options.defaultTag;
  if (defaultTag !== false && ref.tag === undefined && ref.digest === undefined) {
    if (!TAG_RE.test(defaultTag)) throw invalid(input, `invalid tag format ${JSON.stringify(defaultTag)}`);
    ref.tag = defaultTag;
  }
  return ref;
}

/**
 * containerd's docker.ParseDockerRef: normalised, `latest` when nothing is given, and when both
 * tag and digest are present the tag is dropped (the digest identifies the content).
 */
export function parseDockerRef(input: string): Reference {
  const ref = parseReference(input);
  if (ref.digest !== undefined && ref.tag !== undefined) delete ref.tag;
  return ref;
}

/** The reference as a plain `Reference`, parsing strings (normalised, default tag). */
export function toReference(ref: string | Reference): Reference {
  return typeof ref === 'string' ? parseReference(ref) : ref;
}

/** `domain/path` */
export function repositoryName(ref: Reference): string {
  return `${ref.domain}/${ref.path}`;
}

/** The fully qualified text: `domain/path[:tag][@digest]`. */
export function formatReference(ref: Reference): string {
  let s = repositoryName(ref);
  if (ref.tag !== undefined) s += `:${ref.tag}`;
  if (ref.digest !== undefined) s += `@${ref.digest}`;
  return s;
}

/** What follows the repository: `tag`, `@digest` or `tag@digest` (containerd's Spec.Object). */
export function referenceObject(ref: Reference): string {
  return `${ref.tag ?? ''}${ref.digest !== undefined ? `@${ref.digest}` : ''}`;
}

/** The short name Docker displays: `busybox`, `user/app`, `127.0.0.1:5000/test/app`. */
export function familiarName(ref: string | Reference): string {
  const r = typeof ref === 'string' ? parseReference(ref, { defaultTag: false }) : ref;
  if (r.domain !== DEFAULT_DOMAIN) return repositoryName(r);
  const parts = r.path.split('/');
  if (parts.length === 2 && parts[0] === 'library') return parts[1]!;
  return r.path;
}

/** The familiar name with tag and digest: `busybox:latest`, `user/app@sha256:…`. */
export function familiarString(ref: string | Reference): string {
  const r = typeof ref === 'string' ? parseReference(ref, { defaultTag: false }) : ref;
  let s = familiarName(r);
  if (r.tag !== undefined) s += `:${r.tag}`;
  if (r.digest !== undefined) s += `@${r.digest}`;
  return s;
}

/** A copy with the tag replaced (and the digest dropped). */
export function withTag(ref: Reference, tag: string): Reference {
  if (!TAG_RE.test(tag)) throw invalid(formatReference(ref), `invalid tag format ${JSON.stringify(tag)}`);
  return { domain: ref.domain, path: ref.path, tag };
}

/** A copy pointing at a digest (the tag is kept for display, the digest is what is fetched). */
export function withDigest(ref: Reference, digest: string): Reference {
  const problem = digestProblem(digest);
  if (problem !== undefined) throw invalid(formatReference(ref), `invalid digest ${JSON.stringify(digest)}: ${problem}`);
  const out: Reference = { domain: ref.domain, path: ref.path, digest };
  if (ref.tag !== undefined) out.tag = ref.tag;
  return out;
}

/** The host without port, as containerd's ctr uses in `containerd.io/distribution.source.<host>`. */
export function hostnameOf(domain: string): string {
  if (domain.startsWith('[')) {
    const end = domain.indexOf(']');
    return end > 0 ? domain.slice(1, end) : domain;
  }
  const i = domain.lastIndexOf(':');
  return i >= 0 ? domain.slice(0, i) : domain;
}
