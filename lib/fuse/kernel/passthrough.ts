// FUSE passthrough (Linux 6.9+, root): read-only opens of branch files are handed to the kernel
// (FUSE_DEV_IOC_BACKING_OPEN + FOPEN_PASSTHROUGH), which then reads (and maps) them directly.
//
// The kernel keeps one I/O mode per inode (fs/fuse/iomode.c): while a passthrough open exists,
// every other open must be a passthrough open of the *same* backing file (even a
// FOPEN_DIRECT_IO open fails, EIO); while a page-cache open exists, a passthrough open fails.
// So, per node:
// - no counted handle: a read-only open of a file in a read-only branch goes passthrough to it;
//   other opens use the page cache: writers' writes must reach the copy-up through layerfs
//   (which drops privileges and keeps its attributes current), and a reader of a rw-branch file
//   follows it to its copy in the new rw branch after a checkpoint (LayerFs #followCopy);
// - page-cache handles: later opens use the page cache too;
// - passthrough handles: a read-only open of the same branch file shares the backing. Any other
//   open (a writer; a reader after a copy-up or a stack change changed the file) is `stale`:
//   the session retires the node and answers ESTALE. The kernel then walks the path again with
//   LOOKUP_REVAL (once), the lookup gets a new node, and the open succeeds on it, while the
//   old node's readers keep reading the file they opened (docs/semantics.md: a reader that
//   opened a lower file before a copy-up keeps reading it, as on overlayfs).
// The kernel changes an inode's mode when a file is closed, before it sends RELEASE: this table
// is never less busy than the kernel's, so what it allows the kernel allows.
import { fstatOf } from '../../fs.js'
import { createLogger } from '../../log.js'
import type { NativeFuse } from './addon.js'
import type { Node } from './nodes.js'
import { FOPEN_PASSTHROUGH } from './protocol.js'

const log = createLogger('layerfs:kernel')

/** A node's counted handles: passthrough to one backing file, or through the page cache. */
type NodeMode =
  | { readonly kind: 'passthrough'; readonly id: number; readonly dev: number; readonly ino: number; opens: number }
  | { readonly kind: 'cached'; opens: number }

/** How to answer an open: FOPEN_PASSTHROUGH with a backing id, the page cache, or ESTALE. */
export type OpenDecision =
  | { readonly kind: 'passthrough'; readonly backingId: number }
  | { readonly kind: 'cached' }
  | { readonly kind: 'stale' }

const CACHED: OpenDecision = { kind: 'cached' }
const STALE: OpenDecision = { kind: 'stale' }

export class Passthrough {
  readonly #modes = new Map<Node, NodeMode>()
  readonly #handles = new Map<number, Node>()
  #refused = false

  constructor(readonly addon: NativeFuse, readonly devFd: number) {}

  /** Whether `node` has handles open in passthrough mode (a new writer of it would be stale). */
  passingThrough(node: Node): boolean {
    return this.#modes.get(node)?.kind === 'passthrough'
  }

  /**
   * How to open handle `fh` (branch descriptor `hostFd`) of `node`; `rw`: a writer, or a reader
   * of a rw-branch file (never passed through). Counts the handle unless the answer is `stale`
   * (the caller releases it then).
   */
  open(node: Node, fh: number, hostFd: number, rw: boolean): OpenDecision {
    const mode = this.#modes.get(node)
    if (mode?.kind === 'passthrough') {
      if (rw) return STALE
      const st = fstatOf(hostFd)
      if (st.dev !== mode.dev || st.ino !== mode.ino) return STALE
      return this.#count(mode, node, fh, { kind: 'passthrough', backingId: mode.id })
    }
    if (mode) return this.#count(mode, node, fh, CACHED)
    if (rw || this.#refused) return this.#count({ kind: 'cached', opens: 0 }, node, fh, CACHED)
    let id: number
    try {
      id = this.addon.backingOpen(this.devFd, hostFd)
    } catch (e) {
      // EPERM (not root), EOPNOTSUPP (kernel without it), ELOOP/EINVAL (branch on a stacked
      // file system): serve reads through layerfs from now on.
      this.#refused = true
      log.warnOnce('passthrough', 'FUSE passthrough refused (%s): reads go through layerfs', (e as Error).message)
      return this.#count({ kind: 'cached', opens: 0 }, node, fh, CACHED)
    }
    const st = fstatOf(hostFd)
    return this.#count({ kind: 'passthrough', id, dev: st.dev, ino: st.ino, opens: 0 }, node, fh, { kind: 'passthrough', backingId: id })
  }

  #count(mode: NodeMode, node: Node, fh: number, d: OpenDecision): OpenDecision {
    mode.opens++
    this.#modes.set(node, mode)
    this.#handles.set(fh, node)
    return d
  }

  /** Handle `fh` was released. */
  release(fh: number): void {
    const node = this.#handles.get(fh)
    if (!node) return
    this.#handles.delete(fh)
    const mode = this.#modes.get(node)!
    if (--mode.opens > 0) return
    this.#modes.delete(node)
    if (mode.kind !== 'passthrough') return
    try {
      this.addon.backingClose(this.devFd, mode.id)
    } catch {
      // The kernel keeps its own reference while files are open; nothing to undo here.
    }
  }

  /** Nodes with counted handles (tests: the table empties when the files close). */
  get size(): number {
    return this.#modes.size
  }
}
