// Walks a rw branch on disk in OCI layer order: what diff() reports and commit() writes, with the
// work area, meta entries and init-layer paths left out. Host paths only (never a mount point).
import * as path from 'node:path'
import { fs, getXattr, type Stats } from '../fs.js'
import { createLogger } from '../log.js'
import {
  META_PREFIX, OPAQUE_MARKER, OVERLAY_OPAQUE_XATTR, isCharDevWhiteout, whitedOutName, whiteoutNameFor,
} from '../whiteout/encoding.js'

const log = createLogger('layerfs:image')

/**
 * One item of a rw branch, in layer order:
 * - `entry`: a file, dir, symlink, device or FIFO that the branch adds or changes;
 * - `whiteout`: `target` was deleted (`.wh.NAME` on disk, or an overlayfs 0/0 char device);
 * - `opaque`: the directory `target` hides everything below it (`.wh..wh..opq`, or overlayfs'
 *   `trusted.overlay.opaque=y`).
 */
export interface UpperItem {
  readonly kind: 'entry' | 'whiteout' | 'opaque'
  /** The path in the layer, relative, '/'-separated, no leading slash ('etc/.wh.hosts'). */
  readonly path: string
  /** entry: same as path; whiteout: the deleted path ('etc/hosts'); opaque: the directory. */
  readonly target: string
  /** Host path of the entry (of the directory for a synthesized opaque marker). */
  readonly host: string
  /** lstat of `host` (for an opaque item: of the marker, or of the directory when synthesized). */
  readonly stats: Stats
}

export interface WalkOptions {
  /**
   * The init layer (a host dir, see union-contract.md "The launcher"): every non-directory path
   * it holds is left out, as are whiteouts of those paths. It is never part of a diff or commit.
   */
  readonly initLayer?: string
}

/** Byte order of the UTF-8 names: the same on every machine, unlike locale collation. */
export function compareNames(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b))
}

/** Relative paths of the non-directories in an init layer dir ('etc/hosts', …). */
export function initLayerPaths(dir: string | undefined): Set<string> {
  const out = new Set<string>()
  if (dir === undefined) return out
  const walk = (rel: string): void => {
    for (const name of fs.readdirSync(path.join(dir, rel))) {
      const r = rel ? `${rel}/${name}` : name
      if (fs.lstatSync(path.join(dir, r)).isDirectory()) walk(r)
      else out.add(r)
    }
  }
  walk('')
  return out
}

function isOverlayOpaque(host: string): boolean {
  try {
    return getXattr(host, OVERLAY_OPAQUE_XATTR)?.toString() === 'y'
  } catch {
    return false // trusted.* is unreadable without CAP_SYS_ADMIN: no overlayfs marker then
  }
}

/**
 * Yields the items of the rw branch `upper` in the order a layer tar holds them: depth first;
 * in each directory the opaque marker first, then whiteouts, then the other entries, each group
 * sorted by byte order (OCI layer.md: "whiteout files appear before sibling directory
 * entries"); a directory's own entry comes before its contents. Left out: `.wh..wh.*` meta
 * entries (the work area at the root, aufs' own elsewhere), sockets (a tar cannot hold them),
 * a `.wh.N` next to an `N` of the same branch (it would only hide N itself: nothing to say), and
 * init-layer paths. Throws the Node error of a failing readdir/lstat (ENOENT, EACCES…).
 */
export function* walkUpper(upper: string, opts: WalkOptions = {}): Generator<UpperItem> {
  const init = initLayerPaths(opts.initLayer)
  yield* walkDir(upper, '', init)
}

function* walkDir(upper: string, rel: string, init: Set<string>): Generator<UpperItem> {
  const dirHost = rel ? path.join(upper, rel) : upper
  const names = fs.readdirSync(dirHost)
  const present = new Set(names)
  const join = (n: string): string => (rel ? `${rel}/${n}` : n)
  const whiteouts: UpperItem[] = []
  const entries: { name: string; stats: Stats }[] = []
  let opaque: UpperItem | undefined
  for (const name of names) {
    const host = path.join(dirHost, name)
    if (name === OPAQUE_MARKER) {
      opaque = { kind: 'opaque', path: join(OPAQUE_MARKER), target: rel, host, stats: fs.lstatSync(host) }
      continue
    }
    if (name.startsWith(META_PREFIX)) continue // the work area, aufs' .wh..wh.plnk & co
    const st = fs.lstatSync(host)
    const deleted = whitedOutName(name)
    if (deleted !== undefined) {
      if (present.has(deleted) || init.has(join(deleted))) continue
      whiteouts.push({ kind: 'whiteout', path: join(name), target: join(deleted), host, stats: st })
      continue
    }
    if (name.startsWith('.wh.')) continue // a bare '.wh.' or '.wh..' : not a valid marker
    if (isCharDevWhiteout(st)) {
      // Overlayfs' whiteout in a rw branch used by a peer: written out as the OCI '.wh.' form.
      if (init.has(join(name))) continue
      whiteouts.push({ kind: 'whiteout', path: join(whiteoutNameFor(name)), target: join(name), host, stats: st })
      continue
    }
    if (st.isSocket()) {
      log.warnOnce(`socket:${host}`, "socket '%s' left out: a layer tar cannot hold sockets", join(name))
      continue
    }
    if (!st.isDirectory() && init.has(join(name))) continue
    entries.push({ name, stats: st })
  }
  if (opaque === undefined && rel !== '' && isOverlayOpaque(dirHost)) {
    opaque = { kind: 'opaque', path: join(OPAQUE_MARKER), target: rel, host: dirHost, stats: fs.lstatSync(dirHost) }
  }
  if (opaque) yield opaque
  whiteouts.sort((a, b) => compareNames(a.path, b.path))
  yield* whiteouts
  entries.sort((a, b) => compareNames(a.name, b.name))
  for (const { name, stats } of entries) {
    const r = join(name)
    const host = path.join(dirHost, name)
    yield { kind: 'entry', path: r, target: r, host, stats }
    if (stats.isDirectory()) yield* walkDir(upper, r, init)
  }
}
