// The on-disk vocabulary of a branch: '.wh.' whiteouts, the opaque marker, the work area name.
// Pure string logic (OCI image-spec layer.md "Whiteouts"); no I/O.

export const WHITEOUT_PREFIX = '.wh.'
/** OCI layer.md: an opaque whiteout "indicates that all siblings are hidden in the lower layer". */
export const OPAQUE_MARKER = '.wh..wh..opq'
/** Meta entries at a branch root ('.wh..wh.*'): the work area and aufs' own; never shown. */
export const META_PREFIX = '.wh..wh.'
/** The work area inside the rw branch: copy-ups are built here, then renamed into place. */
export const WORK_DIR = '.wh..wh.layerfs.work'
/** Overlayfs' opaque xattr, read (never written) on lower branches for interoperability. */
export const OVERLAY_OPAQUE_XATTR = 'trusted.overlay.opaque'

/** 'x' → '.wh.x'. */
export function whiteoutNameFor(name: string): string {
  return WHITEOUT_PREFIX + name
}

/** '.wh.x' → 'x'; undefined for markers, meta entries, a bare '.wh.' and non-whiteouts. */
export function whitedOutName(entry: string): string | undefined {
  if (!entry.startsWith(WHITEOUT_PREFIX) || entry.startsWith(META_PREFIX)) return undefined
  const name = entry.slice(WHITEOUT_PREFIX.length)
  return name === '' || name === '.' || name === '..' || name.includes('/') ? undefined : name
}

/** Names a user may never create, rename to or look up (OCI reserves the '.wh.' prefix). */
export function isReservedName(name: string): boolean {
  return name.startsWith(WHITEOUT_PREFIX)
}

/** Overlayfs' whiteout: a character device with device number 0/0 (read-only interop). */
export function isCharDevWhiteout(st: { isCharacterDevice(): boolean; rdev: number }): boolean {
  return st.isCharacterDevice() && st.rdev === 0
}
