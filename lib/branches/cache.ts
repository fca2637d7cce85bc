// The one importer of lru-cache: resolutions by union path, negative entries included.
import { LRUCache } from 'lru-cache'
import { isWithin, type UnionPath } from '../paths.js'

/** Stored for a path that does not exist in the merged view (a cached negative lookup). */
export const NEGATIVE = Symbol('negative')

export class ResolutionCache<V extends object> {
  readonly #lru: LRUCache<UnionPath, V | typeof NEGATIVE>

  /**
   * `ttlMs`: entries are trusted for at most this long (--revalidate: changes made directly in
   * the branch directories are picked up after it); without it, until invalidated or evicted.
   */
  constructor(max = 100_000, ttlMs?: number) {
    const ttl = ttlMs ? { ttl: ttlMs, ttlResolution: Math.min(ttlMs, 100) } : {}
    this.#lru = new LRUCache({ max, ...ttl })
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

  /** Forgets everything (the directory name sets of read-only branches go with their resolutions). */
  clear(): void {
    this.#lru.clear()
  }

  get size(): number {
    return this.#lru.size
  }
}
