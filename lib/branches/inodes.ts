// Inode numbers of the merged view: stable for the life of the mount, kept across copy-up.
import type { Stats } from '../fs.js'

/** The identity of a host file: device and inode number. */
export type HostId = Pick<Stats, 'dev' | 'ino'>

/** A host identity as one string (lock names, comparisons). */
export function hostKey(st: HostId): string {
  return `${st.dev}:${st.ino}`
}

/**
 * Hands out 32-bit inode numbers (fuse-native passes st_ino as uint32) per host file identity.
 * Hard links in one branch share a host identity and so share the number. A copy-up registers
 * the upper copy as an alias of its origin, so the file keeps its number. The root is 1.
 * Numbers are not persisted: a remount numbers files afresh (docs/design.md "Inode numbers").
 */
export class InodeTable {
  /** Numbers by device, then host inode: no key string built per lookup. */
  readonly #byDev = new Map<number, Map<number, number>>()
  #size = 0
  #next = 2

  /** The number for a host identity, allocated on first sight. */
  numberFor(id: HostId): number {
    const inos = this.#inos(id.dev)
    let n = inos.get(id.ino)
    if (n === undefined) {
      n = this.#next++
      if (this.#next > 0xffff_fff0) this.#next = 2 // wrap far beyond any realistic mount lifetime
      inos.set(id.ino, n)
      this.#size++
    }
    return n
  }

  setRoot(id: HostId): void {
    this.#set(id, 1)
  }

  /** Makes `alias` (an upper copy) answer with the number of `origin`. */
  alias(alias: HostId, origin: HostId): void {
    this.#set(alias, this.numberFor(origin))
  }

  /** Forgets a host identity whose file is gone (its host inode may be reused by a new file). */
  forget(id: HostId): void {
    if (this.#byDev.get(id.dev)?.delete(id.ino)) this.#size--
  }

  get size(): number {
    return this.#size
  }

  #set(id: HostId, n: number): void {
    const inos = this.#inos(id.dev)
    if (!inos.has(id.ino)) this.#size++
    inos.set(id.ino, n)
  }

  #inos(dev: number): Map<number, number> {
    let inos = this.#byDev.get(dev)
    if (inos === undefined) this.#byDev.set(dev, (inos = new Map()))
    return inos
  }
}
