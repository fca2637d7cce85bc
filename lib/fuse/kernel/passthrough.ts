// FUSE passthrough (Linux 6.9+, root): opens of branch files are handed to the kernel
// (FUSE_DEV_IOC_BACKING_OPEN + FOPEN_PASSTHROUGH), which then reads them directly.
// The kernel requires every open of an inode that is open in passthrough mode to be a
// passthrough open of the same backing file (else the open fails with EIO). A writer of a lower
// file would then write the lower file instead of its copy-up, so passthrough is only offered
// for read-only unions (mount.ts refuses it with a rw branch). Per node, the first open picks
// the backing file; later opens share it until the last one closes.
import { createLogger } from '../../log.js'
import type { NativeFuse } from './addon.js'
import type { Node } from './nodes.js'
import { FOPEN_PASSTHROUGH } from './protocol.js'

const log = createLogger('layerfs:kernel')

interface Backing {
  readonly id: number
  opens: number
}

export interface OpenDecision {
  /** FOPEN_PASSTHROUGH, or 0 for a normal (page cache) open. */
  readonly flags: number
  readonly backingId: number
}

export class Passthrough {
  readonly #backing = new Map<Node, Backing>()
  readonly #handles = new Map<number, Node>()
  #refused = false

  constructor(readonly addon: NativeFuse, readonly devFd: number) {}

  /** How to open handle `fh` (host descriptor `hostFd`) of `node`. */
  open(node: Node, fh: number, hostFd: number): OpenDecision {
    let b = this.#backing.get(node)
    if (!b) {
      if (this.#refused) return { flags: 0, backingId: 0 }
      try {
        b = { id: this.addon.backingOpen(this.devFd, hostFd), opens: 0 }
      } catch (e) {
        // EPERM (not root), EOPNOTSUPP (kernel without it), ELOOP/EINVAL (branch on a stacked
        // file system): serve reads through layerfs from now on.
        this.#refused = true
        log.warnOnce('passthrough', 'FUSE passthrough refused (%s): reads go through layerfs', (e as Error).message)
        return { flags: 0, backingId: 0 }
      }
      this.#backing.set(node, b)
    }
    b.opens++
    this.#handles.set(fh, node)
    return { flags: FOPEN_PASSTHROUGH, backingId: b.id }
  }

  /** Handle `fh` was released. */
  release(fh: number): void {
    const node = this.#handles.get(fh)
    if (!node) return
    this.#handles.delete(fh)
    const b = this.#backing.get(node)!
    if (--b.opens > 0) return
    this.#backing.delete(node)
    try {
      this.addon.backingClose(this.devFd, b.id)
    } catch {
      // The kernel keeps its own reference while files are open; nothing to undo here.
    }
  }
}
