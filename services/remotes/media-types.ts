// Media types of OCI and Docker schema 2 images, and the predicates containerd's images
// package uses to sort them into manifests, indexes, configs and layers.

export const MediaType = {
  // OCI image spec
  OciManifest: 'application/vnd.oci.image.manifest.v1+json',
  OciIndex: 'application/vnd.oci.image.index.v1+json',
  OciConfig: 'application/vnd.oci.image.config.v1+json',
  OciLayer: 'application/vnd.oci.image.layer.v1.tar',
  OciLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  OciLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  OciLayerNonDistributable: 'application/vnd.oci.image.layer.nondistributable.v1.tar',
  OciLayerNonDistributableGzip: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  OciLayerNonDistributableZstd: 'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd',
  OciEmpty: 'application/vnd.oci.empty.v1+json',
  // Docker image manifest v2, schema 2
  DockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  DockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  DockerConfig: 'application/vnd.docker.container.image.v1+json',
  DockerLayer: 'application/vnd.docker.image.rootfs.diff.tar',
  DockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  DockerLayerZstd: 'application/vnd.docker.image.rootfs.diff.tar.zstd',
  DockerForeignLayerGzip: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
  // Docker schema 1 (recognised only to be refused clearly)
  DockerSchema1Manifest: 'application/vnd.docker.distribution.manifest.v1+json',
  DockerSchema1SignedManifest: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
  // containerd's own
  ContainerdCheckpointConfig: 'application/vnd.containerd.container.checkpoint.config.v1+proto',
} as const;

/**
 * The Accept header containerd 1.6 sends when resolving a reference (same order). `*\/*` last lets
 * a registry answer with whatever it holds, which `resolve` then checks.
 */
export const MANIFEST_ACCEPT: readonly string[] = [
  MediaType.DockerManifest,
  MediaType.DockerManifestList,
  MediaType.OciManifest,
  MediaType.OciIndex,
  '*/*',
];

/** The media type without parameters (`; charset=utf-8`) and in lower case. */
export function baseMediaType(mt: string): string {
  const i = mt.indexOf(';');
  return (i >= 0 ? mt.slice(0, i) : mt).trim().toLowerCase();
}

export function isManifestType(mt: string): boolean {
  const b = baseMediaType(mt);
  return b === MediaType.OciManifest || b === MediaType.DockerManifest;
}

export function isIndexType(mt: string): boolean {
  const b = baseMediaType(mt);
  return b === MediaType.OciIndex || b === MediaType.DockerManifestList;
}

/** Manifests and indexes: the documents fetched from `/manifests/` rather than `/blobs/`. */
export function isManifestOrIndexType(mt: string): boolean {
  return isManifestType(mt) || isIndexType(mt);
}

export function isSchema1Type(mt: string): boolean {
  const b = baseMediaType(mt);
  return b === MediaType.DockerSchema1Manifest || b === MediaType.DockerSchema1SignedManifest;
}

/** Layer types as containerd's images.IsLayerType: OCI layers and Docker rootfs diffs. */
export function isLayerType(mt: string): boolean {
  const b = baseMediaType(mt);
  if (b.startsWith('application/vnd.oci.image.layer.') || b.startsWith('application/vnd.docker.image.rootfs.')) {
    return true;
  }
  return false;
}

/** Config types as containerd's images.IsKnownConfig. */
export function isConfigType(mt: string): boolean {
  const b = baseMediaType(mt);
  return b === MediaType.OciConfig || b === MediaType.DockerConfig || b === MediaType.ContainerdCheckpointConfig;
}

export function isNonDistributable(mt: string): boolean {
  const b = baseMediaType(mt);
  return b.startsWith('application/vnd.oci.image.layer.nondistributable.') || b.startsWith('application/vnd.docker.image.rootfs.foreign.');
}

export type LayerCompression = 'none' | 'gzip' | 'zstd';

/** How a layer's bytes are compressed, or undefined when the media type is not a layer. */
export function layerCompression(mt: string): LayerCompression | undefined {
  if (!isLayerType(mt)) return undefined;
  const b = baseMediaType(mt);
  if (b.endsWith('+gzip') || b.endsWith('.gzip')) return 'gzip';
  if (b.endsWith('+zstd') || b.endsWith('.zstd')) return 'zstd';
  return 'none';
}

/** Every type this package knows how to handle (manifests, indexes, configs, layers). */
export function isKnownMediaType(mt: string): boolean {
  return isManifestOrIndexType(mt) || isConfigType(mt) || isLayerType(mt);
}
