// Inode numbers of the merged view: stable for the life of the mount, kept across copy-up.
import type { Stats } from '../fs.js'

/** The identity of a host file: device and inode number. */
export function hostKey(st: Pick<Stats, 'dev' | 'ino'>): string {
  return `${st.dev}:${st.ino}`
}

/**
 * Hands out 32-bit inode numbers (fuse-native passes st_ino as uint32) per host file identity.
 * Hard links in one branch share a host identity and so share the number. A copy-up registers
 * the upper copy as an alias of its origin, so the file keeps its number. The root is 1.
 * Numbers are not persisted: a remount numbers files afresh (docs/design.md "Inode numbers").
 */
export class InodeTable {
  readonly #byKey = new Map<string, number>()
  #next = 2

  /** The number for a host identity, allocated on first sight. */
  numberFor(key: string): number {
    let n = this.#byKey.get(key)
    if (n === undefined) {
      n = this.#next++
      if (this.#next > 0xffff_fff0) this.#next = 2 // wrap far beyond any realistic mount lifetime
      this.#byKey.set(key, n)
    }
    return n
  }

  setRoot(key: string): void {
    this.#byKey.set(key, 1)
  }

  /** Makes `aliasKey` (an upper copy) answer with the number of `originKey`. */
  alias(aliasKey: string, originKey: string): void {
    this.#byKey.set(aliasKey, this.numberFor(originKey))
  }

  /** Forgets a host identity whose file is gone (its host inode may be reused by a new file). */
  forget(key: string): void {
    this.#byKey.delete(key)
  }

  get size(): number {
    return this.#byKey.size
  }
}
