// The image model: descriptors, manifests, indexes (Docker manifest lists) and configs, checked
// once as they are parsed; the children of a document; choosing manifests from an index by
// platform; and the garbage-collection labels containerd's client writes on pulled content.
import { BerthError } from '../errdefs';
import { digestProblem } from '../../content-store/digest';
import { validateLabels } from '../metadata/validate';
import {
  MediaType,
  baseMediaType,
  isConfigType,
  isIndexType,
  isLayerType,
  isManifestType,
  isSchema1Type,
} from './media-types';
import { hostnameOf, type Reference } from './references';
import { defaultPlatformMatcher, formatPlatform, normalizePlatform, type Platform, type PlatformMatcher } from './platforms';

export * from './media-types';
export * from './platforms';

/** An OCI content descriptor (JSON shape). */
export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  urls?: string[];
  annotations?: Record<string, string>;
  platform?: Platform;
  artifactType?: string;
}

export interface Manifest {
  schemaVersion: number;
  mediaType?: string;
  artifactType?: string;
  config: Descriptor;
  layers: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

export interface Index {
  schemaVersion: number;
  mediaType?: string;
  artifactType?: string;
  manifests: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

/** The parts of an image config the runtime and unpacker need (the rest is kept as is). */
export interface ImageConfig {
  architecture: string;
  os: string;
  variant?: string;
  'os.version'?: string;
  'os.features'?: string[];
  created?: string;
  author?: string;
  config?: {
    User?: string;
    ExposedPorts?: Record<string, unknown>;
    Env?: string[];
    Entrypoint?: string[] | null;
    Cmd?: string[] | null;
    Volumes?: Record<string, unknown>;
    WorkingDir?: string;
    Labels?: Record<string, string>;
    StopSignal?: string;
    [key: string]: unknown;
  };
  rootfs: { type: string; diff_ids: string[] };
  history?: Array<{ created?: string; created_by?: string; author?: string; comment?: string; empty_layer?: boolean }>;
  [key: string]: unknown;
}

/** Manifests, configs and indexes larger than this are refused (containerd uses 4 MiB). */
export const MAX_MANIFEST_SIZE = 4 * 1024 * 1024;

function bad(what: string, why: string): BerthError {
  return new BerthError('InvalidArgument', `${what}: ${why}`);
}

function parseJSON(bytes: Uint8Array | string, what: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(typeof bytes === 'string' ? bytes : Buffer.from(bytes).toString('utf8'));
  } catch (err) {
    throw bad(what, `not valid JSON (${(err as Error).message})`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw bad(what, 'not a JSON object');
  return v as Record<string, unknown>;
}

function stringMap(v: unknown, what: string): Record<string, string> | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'object' || Array.isArray(v)) throw bad(what, 'must be an object of strings');
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
    if (typeof x !== 'string') throw bad(what, `value of ${JSON.stringify(k)} must be a string`);
  }
  return { ...(v as Record<string, string>) };
}

function parsePlatformField(v: unknown, what: string): Platform | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'object' || Array.isArray(v)) throw bad(what, 'platform must be an object');
  const o = v as Record<string, unknown>;
  if (typeof o.architecture !== 'string' || typeof o.os !== 'string') {
    throw bad(what, 'platform needs "architecture" and "os" strings');
  }
  const p: Platform = { architecture: o.architecture, os: o.os };
  if (typeof o.variant === 'string' && o.variant !== '') p.variant = o.variant;
  if (typeof o['os.version'] === 'string' && o['os.version'] !== '') p['os.version'] = o['os.version'];
  if (Array.isArray(o['os.features'])) p['os.features'] = o['os.features'].filter((x): x is string => typeof x === 'string');
  return p;
}

/** Checks and copies one descriptor: media type, a sha256 digest, a non-negative integer size. */
export function parseDescriptor(v: unknown, what = 'descriptor'): Descriptor {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw bad(what, 'must be an object');
  const o = v as Record<string, unknown>;
  if (typeof o.mediaType !== 'string' || o.mediaType === '') throw bad(what, 'missing mediaType');
  if (typeof o.digest !== 'string') throw bad(what, 'missing digest');
  const problem = digestProblem(o.digest);
  if (problem !== undefined) throw bad(what, `invalid digest ${JSON.stringify(o.digest)}: ${problem}`);
  if (typeof o.size !== 'number' || !Number.isSafeInteger(o.size) || o.size < 0) {
    throw bad(what, `invalid size ${JSON.stringify(o.size)}`);
  }
  const d: Descriptor = { mediaType: o.mediaType, digest: o.digest, size: o.size };
  if (Array.isArray(o.urls)) d.urls = o.urls.filter((u): u is string => typeof u === 'string');
  const annotations = stringMap(o.annotations, `${what} annotations`);
  if (annotations) d.annotations = annotations;
  const platform = parsePlatformField(o.platform, what);
  if (platform) d.platform = platform;
  if (typeof o.artifactType === 'string') d.artifactType = o.artifactType;
  return d;
}

function documentKind(doc: Record<string, unknown>): 'manifest' | 'index' | 'schema1' | undefined {
  if (Array.isArray(doc.fsLayers) || doc.schemaVersion === 1) return 'schema1';
  const mt = typeof doc.mediaType === 'string' ? doc.mediaType : '';
  if (isIndexType(mt)) return 'index';
  if (isManifestType(mt)) return 'manifest';
  if (mt !== '') return undefined;
  if (Array.isArray(doc.manifests)) return 'index';
  if (doc.config !== undefined && Array.isArray(doc.layers)) return 'manifest';
  return undefined;
}

/**
 * The media type a manifest-like document declares or, lacking the field, what its shape says
 * (OCI documents may omit `mediaType`). Undefined when it is neither a manifest nor an index.
 */
export function detectManifestType(bytes: Uint8Array | string): string | undefined {
  let doc: Record<string, unknown>;
  try {
    doc = parseJSON(bytes, 'manifest');
  } catch {
    return undefined;
  }
  if (typeof doc.mediaType === 'string' && doc.mediaType !== '') return baseMediaType(doc.mediaType);
  const kind = documentKind(doc);
  if (kind === 'index') return MediaType.OciIndex;
  if (kind === 'manifest') return MediaType.OciManifest;
  if (kind === 'schema1') return MediaType.DockerSchema1Manifest;
  return undefined;
}

/**
 * Refuses a document whose content contradicts the media type it was fetched as (containerd's
 * validateMediaType): a manifest that holds `manifests`, an index with `config`/`layers`, or a
 * schema 1 document.
 */
function checkDocumentKind(doc: Record<string, unknown>, mediaType: string | undefined, what: string): void {
  if (Array.isArray(doc.fsLayers) || doc.schemaVersion === 1) {
    throw new BerthError('NotImplemented', `${what}: Docker schema 1 manifests are not supported`);
  }
  const declared = typeof doc.mediaType === 'string' ? doc.mediaType : undefined;
  if (mediaType !== undefined && declared !== undefined && declared !== '' && baseMediaType(declared) !== baseMediaType(mediaType)) {
    throw bad(what, `media type mismatch: document says ${JSON.stringify(declared)}, descriptor says ${JSON.stringify(mediaType)}`);
  }
}

/** Parses an image manifest (OCI or Docker schema 2). `mediaType` is what the descriptor says. */
export function parseManifest(bytes: Uint8Array | string, mediaType?: string): Manifest {
  const what = 'image manifest';
  const doc = parseJSON(bytes, what);
  checkDocumentKind(doc, mediaType, what);
  if (Array.isArray(doc.manifests) || isIndexType(String(doc.mediaType ?? ''))) {
    throw bad(what, `expected manifest but found index (${mediaType ?? String(doc.mediaType ?? '')})`);
  }
  if (doc.schemaVersion !== 2) throw bad(what, `unsupported schemaVersion ${JSON.stringify(doc.schemaVersion)}`);
  if (!Array.isArray(doc.layers)) throw bad(what, 'missing layers');
  const m: Manifest = {
    schemaVersion: 2,
    config: parseDescriptor(doc.config, `${what} config`),
    layers: doc.layers.map((l, i) => parseDescriptor(l, `${what} layer ${i}`)),
  };
  if (typeof doc.mediaType === 'string') m.mediaType = doc.mediaType;
  if (typeof doc.artifactType === 'string') m.artifactType = doc.artifactType;
  if (doc.subject !== undefined && doc.subject !== null) m.subject = parseDescriptor(doc.subject, `${what} subject`);
  const annotations = stringMap(doc.annotations, `${what} annotations`);
  if (annotations) m.annotations = annotations;
  return m;
}

/** Parses an OCI index or Docker manifest list. */
export function parseIndex(bytes: Uint8Array | string, mediaType?: string): Index {
  const what = 'image index';
  const doc = parseJSON(bytes, what);
  checkDocumentKind(doc, mediaType, what);
  if (doc.config !== undefined || doc.layers !== undefined || isManifestType(String(doc.mediaType ?? ''))) {
    throw bad(what, `expected index but found manifest (${mediaType ?? String(doc.mediaType ?? '')})`);
  }
  if (doc.schemaVersion !== 2) throw bad(what, `unsupported schemaVersion ${JSON.stringify(doc.schemaVersion)}`);
  if (!Array.isArray(doc.manifests)) throw bad(what, 'missing manifests');
  const idx: Index = {
    schemaVersion: 2,
    manifests: doc.manifests.map((d, i) => parseDescriptor(d, `${what} manifest ${i}`)),
  };
  if (typeof doc.mediaType === 'string') idx.mediaType = doc.mediaType;
  if (typeof doc.artifactType === 'string') idx.artifactType = doc.artifactType;
  if (doc.subject !== undefined && doc.subject !== null) idx.subject = parseDescriptor(doc.subject, `${what} subject`);
  const annotations = stringMap(doc.annotations, `${what} annotations`);
  if (annotations) idx.annotations = annotations;
  return idx;
}

/** Parses an image config; `rootfs.diff_ids` must be valid digests. */
export function parseImageConfig(bytes: Uint8Array | string): ImageConfig {
  const what = 'image config';
  const doc = parseJSON(bytes, what);
  const rootfs = doc.rootfs as Record<string, unknown> | undefined;
  if (!rootfs || typeof rootfs !== 'object') throw bad(what, 'missing rootfs');
  if (rootfs.type !== 'layers') throw bad(what, `rootfs type must be "layers", not ${JSON.stringify(rootfs.type)}`);
  const diffIDs = rootfs.diff_ids ?? [];
  if (!Array.isArray(diffIDs)) throw bad(what, 'rootfs.diff_ids must be an array');
  diffIDs.forEach((d, i) => {
    if (typeof d !== 'string') throw bad(what, `rootfs.diff_ids[${i}] must be a string`);
    const problem = digestProblem(d);
    if (problem !== undefined) throw bad(what, `rootfs.diff_ids[${i}] ${JSON.stringify(d)}: ${problem}`);
  });
  if (doc.config !== undefined && doc.config !== null && (typeof doc.config !== 'object' || Array.isArray(doc.config))) {
    throw bad(what, 'config must be an object');
  }
  const out = { ...doc } as ImageConfig;
  out.architecture = typeof doc.architecture === 'string' ? doc.architecture : '';
  out.os = typeof doc.os === 'string' ? doc.os : '';
  out.rootfs = { type: 'layers', diff_ids: diffIDs as string[] };
  if (doc.config === null) delete out.config;
  return out;
}

/** The platform an image config describes (normalised). */
export function configPlatform(config: ImageConfig): Platform {
  const p: Platform = { architecture: config.architecture, os: config.os };
  if (config.variant) p.variant = config.variant;
  if (config['os.version']) p['os.version'] = config['os.version'];
  if (config['os.features']) p['os.features'] = config['os.features'];
  return normalizePlatform(p);
}

/**
 * The descriptors a document refers to, in containerd's order: a manifest's config then its
 * layers; an index's manifests. Layers and configs have none. Any other media type is refused
 * with NotImplemented (containerd only logs it; a puller here should not guess).
 */
export function children(desc: Descriptor, bytes: Uint8Array | string): Descriptor[] {
  const mt = desc.mediaType;
  if (isManifestType(mt)) {
    const m = parseManifest(bytes, mt);
    return [m.config, ...m.layers];
  }
  if (isIndexType(mt)) return parseIndex(bytes, mt).manifests;
  if (isLayerType(mt) || isConfigType(mt)) return [];
  if (isSchema1Type(mt)) throw new BerthError('NotImplemented', `${desc.digest}: Docker schema 1 manifests are not supported`);
  throw new BerthError('NotImplemented', `${desc.digest}: unsupported media type ${JSON.stringify(mt)}`);
}

/**
 * The label keys containerd's ChildGCLabels gives a child: configs `…content.config`, manifests
 * `…content.m.`, layers `…content.l.`, anything else `…content.` (a trailing dot gets the index).
 */
export function childGCLabelPrefix(child: Descriptor): string {
  const mt = child.mediaType;
  if (isConfigType(mt)) return 'containerd.io/gc.ref.content.config';
  if (isManifestType(mt)) return 'containerd.io/gc.ref.content.m.';
  if (isLayerType(mt)) return 'containerd.io/gc.ref.content.l.';
  return 'containerd.io/gc.ref.content.';
}

/**
 * The GC reference labels a parent carries for its children, numbered per key as containerd's
 * SetChildrenMappedLabels does: a manifest gets `….config` and `….l.0…l.n`; an index gets
 * `….m.0…m.n` for every manifest it lists (all of them, not only the platforms pulled).
 */
export function childrenGCLabels(kids: Descriptor[]): Record<string, string> {
  const labels: Record<string, string> = {};
  const counters = new Map<string, number>();
  for (const child of kids) {
    let key = childGCLabelPrefix(child);
    const i = counters.get(key) ?? 0;
    counters.set(key, i + 1);
    if (i > 0 || key.endsWith('.')) key = `${key}${i}`;
    labels[key] = child.digest;
  }
  validateLabels(labels);
  return labels;
}

/** The GC labels for a fetched document: childrenGCLabels(children(desc, bytes)). */
export function gcLabels(desc: Descriptor, bytes: Uint8Array | string): Record<string, string> {
  return childrenGCLabels(children(desc, bytes));
}

export interface SourceLabelOptions {
  /** Keep the port in the key as dockerd does (`…source.127.0.0.1:5000`); ctr drops it. */
  keepPort?: boolean;
}

/**
 * `containerd.io/distribution.source.<host>` = repository path, the provenance label ctr puts on
 * every pulled blob (`containerd.io/distribution.source.127.0.0.1` = `test/busybox`).
 */
export function distributionSourceLabel(ref: Reference, options: SourceLabelOptions = {}): Record<string, string> {
  const host = options.keepPort ? ref.domain : hostnameOf(ref.domain);
  const labels = { [`containerd.io/distribution.source.${host}`]: ref.path };
  validateLabels(labels);
  return labels;
}

/**
 * Adds `ref`'s repository to an existing distribution source label value (containerd keeps a
 * comma-separated, sorted, de-duplicated list when the same blob came from several repositories).
 */
export function mergeDistributionSource(existing: string | undefined, repo: string): string {
  const set = new Set((existing ?? '').split(',').filter((s) => s !== ''));
  set.add(repo);
  return [...set].sort().join(',');
}

/**
 * The manifests of an index that `matcher` accepts, best first (stable among equals), at most
 * `limit` of them (0 = all). As in containerd's FilterPlatforms/LimitManifests, an entry without
 * a platform matches any matcher and sorts after those with one.
 */
export function selectManifests(index: Index, matcher: PlatformMatcher = defaultPlatformMatcher(), limit = 0): Descriptor[] {
  const candidates = index.manifests
    .map((d, i) => ({ d, i }))
    .filter(({ d }) => isManifestOrIndex(d) && (d.platform === undefined || matcher.match(d.platform)));
  candidates.sort((a, b) => {
    if (a.d.platform && b.d.platform) {
      if (matcher.less(a.d.platform, b.d.platform)) return -1;
      if (matcher.less(b.d.platform, a.d.platform)) return 1;
    } else if (a.d.platform && !b.d.platform) {
      return -1;
    } else if (!a.d.platform && b.d.platform) {
      return 1;
    }
    return a.i - b.i;
  });
  const out = candidates.map(({ d }) => d);
  return limit > 0 ? out.slice(0, limit) : out;
}

function isManifestOrIndex(d: Descriptor): boolean {
  return isManifestType(d.mediaType) || isIndexType(d.mediaType);
}

/** The single best manifest for `matcher`; NotFound naming the platforms the index offers. */
export function selectManifest(index: Index, matcher: PlatformMatcher = defaultPlatformMatcher()): Descriptor {
  const [best] = selectManifests(index, matcher, 1);
  if (!best) {
    const offered = index.manifests.map((d) => (d.platform ? formatPlatform(d.platform) : 'unknown')).join(', ');
    throw new BerthError(
      'NotFound',
      `no match for platform in manifest: wanted ${matcher.description}, index has [${offered}]`,
    );
  }
  return best;
}
