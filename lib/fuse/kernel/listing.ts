// Directory handles of the native transport: the first READDIR(PLUS) of a handle takes the
// merged listing, the next ones page through it (PLUS with every entry's attributes and kernel
// node), RELEASEDIR drops it. OPENDIR lists nothing: when the kernel keeps listings
// (FOPEN_CACHE_DIR) it serves the next `ls` from its cache after an OPENDIR, and never reads.
// The session decodes the requests and writes the replies.
import type { Attr } from '../../attr.js'
import { DIRS_PER_LISTING, type ReadAhead } from '../../branches/read-ahead.js'
import type { LayerFs } from '../../layerfs.js'
import type { Node, NodeTable } from './nodes.js'
import { direntSize, direntType, ENTRY_OUT_SIZE, writeDirent, writeEntry } from './protocol.js'

/** d_ino of an entry listed without its attributes (libfuse's value). */
const FUSE_UNKNOWN_INO = 0xffffffff

interface DirHandle {
  readonly node: Node
  /** The listing, taken at the first read and again at every read from 0 (rewinddir). */
  names: string[] | undefined
}

export interface ListingOptions {
  readonly entryTimeout: number
  readonly attrTimeout: number
}

export class Listings {
  readonly #dirs = new Map<number, DirHandle>()
  #nextFh = 1

  /**
   * `pathOf`: a node's union path (ENOENT for a removed one), as the session resolves it.
   * `readAhead`: told the subdirectories each READDIRPLUS lists (read-ahead.ts).
   */
  constructor(readonly core: LayerFs, readonly nodes: NodeTable, readonly opts: ListingOptions, readonly pathOf: (node: Node) => string,
    readonly readAhead?: ReadAhead) {}

  /** OPENDIR: the handle the reads of `node` page through (checked to be reachable now). */
  open(node: Node): number {
    this.pathOf(node)
    const fh = this.#nextFh++
    this.#dirs.set(fh, { node, names: undefined })
    return fh
  }

  release(fh: number): void {
    this.#dirs.delete(fh)
  }

  /**
   * READDIR(PLUS) of handle `fh` from entry `offset`: writes the entries that fit in `size`
   * bytes into `out` and returns the bytes used; undefined for an unknown handle (EBADF).
   */
  read(fh: number, offset: number, size: number, plus: boolean, out: Buffer): number | undefined {
    const d = this.#dirs.get(fh)
    if (!d) return undefined
    const dirPath = this.pathOf(d.node)
    if (offset === 0 || !d.names) d.names = this.core.readdir(dirPath)
    const names = d.names
    const subdirs: string[] = []
    let used = 0
    for (let i = offset; i < names.length; i++) {
      const name = names[i]!
      const nameLen = Buffer.byteLength(name)
      const need = direntSize(nameLen, plus)
      if (used + need > size) break
      let ino: number
      let type: number
      let a: Attr | undefined
      let path: string | undefined
      if (name === '.' || name === '..') {
        ino = name === '.' ? d.node.ino : (d.node.links[0]?.parent.ino ?? d.node.ino)
        type = 4
      } else if (!plus) {
        // Plain READDIR (the kernel asks for it when nobody stats the entries, READDIRPLUS_AUTO):
        // names only, as libfuse 2 with use_ino answers — no lstat per entry.
        ino = FUSE_UNKNOWN_INO
        type = 0 // DT_UNKNOWN
      } else {
        try {
          a = this.core.tryGetattr((path = dirPath === '/' ? '/' + name : dirPath + '/' + name))
        } catch {
          a = undefined
        }
        if (!a) continue // gone since the listing
        ino = a.ino
        type = direntType(a.mode)
        if (type === 4 && subdirs.length < DIRS_PER_LISTING) subdirs.push(path!)
      }
      if (plus) {
        if (a) {
          const node = this.nodes.found(d.node, name, a.ino, type === 4, path)
          writeEntry(out, used, node.id, a, this.opts.entryTimeout, this.opts.attrTimeout)
        } else {
          writeEntry(out, used, 0, undefined, 0, 0) // '.', '..': no entry
        }
        used += ENTRY_OUT_SIZE
      }
      used += writeDirent(out, used, ino, i + 1, type, name, nameLen)
    }
    if (subdirs.length > 0 && this.readAhead?.enabled) this.readAhead.add(subdirs.map((p) => this.core.readAheadDirsOf(p)))
    return used
  }
}
