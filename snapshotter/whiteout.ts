// OCI whiteouts (image-spec layer.md) and their overlayfs form.
//
//   layer tar                 overlay upper dir                      plain tree (native)
//   <dir>/.wh.<name>          <dir>/<name>: char device 0:0          <dir>/<name> removed
//   <dir>/.wh..wh..opq        <dir>: xattr trusted.overlay.opaque=y  <dir>'s entries not in this layer removed

export const WHITEOUT_PREFIX = '.wh.';
export const WHITEOUT_META_PREFIX = '.wh..wh.';
export const WHITEOUT_OPAQUE_DIR = '.wh..wh..opq';

export const OVERLAY_OPAQUE_XATTR = 'trusted.overlay.opaque';
/** xattrs that mean an upper dir cannot be read as a plain change set (redirect_dir, metacopy). */
export const OVERLAY_REDIRECT_XATTR = 'trusted.overlay.redirect';
export const OVERLAY_METACOPY_XATTR = 'trusted.overlay.metacopy';
