// The one importer of lru-cache: resolutions by union path, negative entries included.
import { LRUCache } from 'lru-cache'
import { isWithin, type UnionPath } from '../paths.js'

/** Stored for a path that does not exist in the merged view (a cached negative lookup). */
export const NEGATIVE = Symbol('negative')

export class ResolutionCache<V extends object> {
  readonly #lru: LRUCache<UnionPath, V | typeof NEGATIVE>
  /** Entry names of read-only branch directories, by host path (they never change under us). */
  readonly #dirNames: LRUCache<string, ReadonlySet<string>>

  /**
   * `ttlMs`: entries are trusted for at most this long (--revalidate: changes made directly in
   * the branch directories are picked up after it); without it, until invalidated or evicted.
   */
  constructor(max = 100_000, ttlMs?: number) {
    const ttl = ttlMs ? { ttl: ttlMs, ttlResolution: Math.min(ttlMs, 100) } : {}
    this.#lru = new LRUCache({ max, ...ttl })
    this.#dirNames = new LRUCache<string, ReadonlySet<string>>({ max: 20_000, ...ttl })
  }

  /** The cached names of a read-only host directory, loading them with `load` on a miss. */
  dirNames(host: string, load: () => ReadonlySet<string> | undefined): ReadonlySet<string> | undefined {
    let names = this.#dirNames.get(host)
    if (names === undefined) {
      names = load()
      if (names !== undefined) this.#dirNames.set(host, names)
    }
    return names
  }

  /** Records the names of a read-only host directory read anyway (a merged listing). */
  seedDirNames(host: string, names: ReadonlySet<string>): void {
    this.#dirNames.set(host, names)
  }

  get(p: UnionPath): V | typeof NEGATIVE | undefined {
    return this.#lru.get(p)
  }

  set(p: UnionPath, v: V | typeof NEGATIVE): void {
    this.#lru.set(p, v)
  }

  /** Forgets `p`; with `subtree`, everything below it too (directory rename, rmdir, opaque). */
  invalidate(p: UnionPath, opts: { subtree?: boolean } = {}): void {
    this.#lru.delete(p)
    if (!opts.subtree) return
    if (p === '/') return this.#lru.clear()
    for (const k of this.#lru.keys()) if (isWithin(k, p)) this.#lru.delete(k)
  }

  /** Forgets everything, directory name sets of read-only branches included. */
  clear(): void {
    this.#lru.clear()
    this.#dirNames.clear()
  }

  get size(): number {
    return this.#lru.size
  }
}
