// FUSE passthrough (Linux 6.9+, root): the kernel reads, writes and maps a branch file itself
// (FUSE_DEV_IOC_BACKING_OPEN + FOPEN_PASSTHROUGH) for handles layerfs hands it.
//
// The kernel keeps one I/O mode per inode (fs/fuse/iomode.c): while a passthrough open exists,
// every other open must be a passthrough open of the *same* backing file (even a
// FOPEN_DIRECT_IO open fails, EIO); while a page-cache open exists, a passthrough open fails.
// So, per node:
// - no counted handle: a read-only open of a file in a read-only branch goes passthrough to it;
//   so does a handle of a rw-branch file the session calls `direct` (a writer with uid 0 of a
//   file with no setuid/setgid bits and no capabilities, not hard-linked: its writes need
//   nothing from layerfs; LayerFs.mayPassThrough). Other opens use the page cache: a non-root
//   writer's writes must reach layerfs, which drops setuid/setgid (HANDLE_KILLPRIV_V2: the
//   kernel leaves that to the daemon, and a passthrough write never reaches it), and a reader
//   of a rw-branch file follows it to its copy in the new rw branch after a checkpoint
//   (LayerFs #followCopy);
// - page-cache handles: later opens use the page cache too;
// - passthrough handles: a reader of the same branch file shares the backing, and so does a
//   `direct` handle of it. Any other open (a non-root writer; a writer of a lower file, whose
//   copy-up is another file; a reader after a copy-up or a stack change changed the file) is
//   `stale`: the session retires the node and answers ESTALE. The kernel then walks the path
//   again with LOOKUP_REVAL (once), the lookup gets a new node, and the open succeeds on it,
//   while the old node's readers keep reading the file they opened (docs/semantics.md: a
//   reader that opened a lower file before a copy-up keeps reading it, as on overlayfs).
// The kernel changes an inode's mode when a file is closed, before it sends RELEASE: this table
// is never less busy than the kernel's, so what it allows the kernel allows.
//
// Without passthrough (not offered, refused, or --no-passthrough) the readers of a branch file
// still get a node of their own: one kernel inode has one page cache, and a reader that opened
// the lower file before a copy-up reads the lower file's data, which must not fill the pages
// (under the copy's size) that the copy's readers read. Such nodes are in mode `lower`: reads
// through the page cache, the same staleness rules as passthrough.
import { fstatOf } from '../../fs.js'
import { createLogger } from '../../log.js'
import type { NativeFuse } from './addon.js'
import type { Node } from './nodes.js'
import { FOPEN_PASSTHROUGH } from './protocol.js'

const log = createLogger('layerfs:kernel')

/** A node's counted handles: passthrough to one backing file, or through the page cache. */
type NodeMode =
  | { readonly kind: 'passthrough'; readonly id: number; readonly dev: number; readonly ino: number; opens: number }
  | { readonly kind: 'lower'; readonly dev: number; readonly ino: number; opens: number }
  | { readonly kind: 'cached'; opens: number }

/**
 * May a handle of a rw-branch file pass through: never; only to join the node's passthrough
 * handles of the same file (a reader); or also as the node's first handle (a `direct` writer).
 */
export type RwPass = 'no' | 'join' | 'start'

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
  #refused: boolean

  /** `offered`: passthrough was negotiated (else every node reads through the page cache). */
  constructor(readonly addon: NativeFuse, readonly devFd: number, offered = true) {
    this.#refused = !offered
  }

  /** Whether `node`'s handles read one branch file (passthrough or `lower`): a new writer of it would be stale. */
  keepsBranchFile(node: Node): boolean {
    const kind = this.#modes.get(node)?.kind
    return kind === 'passthrough' || kind === 'lower'
  }

  /** Whether `node`'s handles pass through (a reader of a rw-branch file may then join them). */
  passesThrough(node: Node): boolean {
    return this.#modes.get(node)?.kind === 'passthrough'
  }

  /**
   * How to open handle `fh` (branch descriptor `hostFd`) of `node`. `rw`: a writer, or a reader
   * of a rw-branch file; `pass`: whether such a handle may pass through (see above). Counts the
   * handle unless the answer is `stale` (the caller releases it then).
   */
  open(node: Node, fh: number, hostFd: number, rw: boolean, pass: RwPass = 'no'): OpenDecision {
    const mode = this.#modes.get(node)
    if (mode?.kind === 'passthrough' || mode?.kind === 'lower') {
      if (rw && (pass === 'no' || mode.kind !== 'passthrough')) return STALE
      const st = fstatOf(hostFd)
      if (st.dev !== mode.dev || st.ino !== mode.ino) return STALE
      return this.#count(mode, node, fh, mode.kind === 'passthrough' ? { kind: 'passthrough', backingId: mode.id } : CACHED)
    }
    if (mode) return this.#count(mode, node, fh, CACHED)
    if (rw && (pass !== 'start' || this.#refused)) return this.#count({ kind: 'cached', opens: 0 }, node, fh, CACHED)
    if (this.#refused) return this.#lower(node, fh, hostFd)
    let id: number
    try {
      id = this.addon.backingOpen(this.devFd, hostFd)
    } catch (e) {
      // EPERM (not root), EOPNOTSUPP (kernel without it), ELOOP/EINVAL (branch on a stacked
      // file system): serve reads through layerfs from now on.
      this.#refused = true
      log.warnOnce('passthrough', 'FUSE passthrough refused (%s): reads go through layerfs', (e as Error).message)
      return rw ? this.#count({ kind: 'cached', opens: 0 }, node, fh, CACHED) : this.#lower(node, fh, hostFd)
    }
    const st = fstatOf(hostFd)
    return this.#count({ kind: 'passthrough', id, dev: st.dev, ino: st.ino, opens: 0 }, node, fh, { kind: 'passthrough', backingId: id })
  }

  /** A reader of a branch file through the page cache, kept apart from the file's copy. */
  #lower(node: Node, fh: number, hostFd: number): OpenDecision {
    const st = fstatOf(hostFd)
    return this.#count({ kind: 'lower', dev: st.dev, ino: st.ino, opens: 0 }, node, fh, CACHED)
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
