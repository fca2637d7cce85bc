// What the metadata read-ahead read of a read-only branch directory (read-ahead.ts), kept for the
// listing that follows: its names in readdir order and each entry's lstat. The read-ahead reads
// them on a worker anyway, to warm the kernel's caches; keeping the result spares the JS thread
// a readdir of the directory and one lstat per entry (about 3 µs each on the bench machine,
// most of a listed entry's cost in the daemon: docs/benchmarks.md §13).
//
// Only read-only branch directories qualify, under the rule the name index already follows
// (resolve.ts): they do not change under a mount. Each lstat is handed out once: a later
// resolution of the same entry (after an invalidation) looks again. An index over the names
// serves as the directory's name index. Memory is bounded by PrefetchBudget: the oldest kept
// directories give back their lstats (not their names) beyond BUDGET_ENTRIES.
import { NativeStats, STAT_DOUBLES, type FileStats } from '../fs.js'

const S_IFCHR = 0o020000
/** lstats kept at once over all directories (13 doubles each: ~7 MiB). */
export const BUDGET_ENTRIES = 65_536

export class PrefetchedDir {
  /** The entries in readdir order (without '.' and '..'). */
  readonly names: readonly string[]
  readonly #index = new Map<string, number>()
  /** Each entry's file type (mode >> 12; 0: its lstat failed), kept when the lstats go. */
  readonly #types: Uint8Array
  /** STAT_DOUBLES per entry; a mode of -1: not read (its lstat failed) or already handed out. */
  #stats: Float64Array | undefined

  /**
   * `joined`: the names joined by '/' (as the addon hands them); `stats`: their lstats. Throws
   * when the two disagree (a name with '/' cannot come from readdir).
   */
  constructor(joined: string, stats: Float64Array) {
    this.names = joined === '' ? [] : joined.split('/')
    if (this.names.length * STAT_DOUBLES !== stats.length) throw new Error('prefetched directory: names and stats disagree')
    this.#types = new Uint8Array(this.names.length)
    for (let i = 0; i < this.names.length; i++) {
      this.#index.set(this.names[i]!, i)
      const mode = stats[i * STAT_DOUBLES]!
      if (mode >= 0) this.#types[i] = mode >>> 12
    }
    this.#stats = stats
  }

  /** Whether the directory has `name` (the name index). */
  has(name: string): boolean {
    return this.#index.has(name)
  }

  get size(): number {
    return this.names.length
  }

  /** Whether entry `i` is a character device (what an overlayfs whiteout is). */
  isCharDevAt(i: number): boolean {
    return this.#types[i] === S_IFCHR >>> 12
  }

  /** The lstat of `name` as read ahead, handed out once; undefined: look it up yourself. */
  take(name: string): FileStats | undefined {
    const i = this.#index.get(name)
    const s = this.#stats
    if (i === undefined || !s || s[i * STAT_DOUBLES]! < 0) return undefined
    const stats = new NativeStats(s, i * STAT_DOUBLES)
    s[i * STAT_DOUBLES] = -1
    return stats
  }

  /** Gives the lstats back (the names stay: they are the directory's name index). */
  dropStats(): void {
    this.#stats = undefined
  }
}

/** Keeps the kept lstats under BUDGET_ENTRIES: the oldest directories give theirs back first. */
export class PrefetchBudget {
  readonly #held: PrefetchedDir[] = []
  #entries = 0

  constructor(readonly limit = BUDGET_ENTRIES) {}

  /** Accounts for `dir`; false (and its lstats dropped) when it alone is over the limit. */
  admit(dir: PrefetchedDir): boolean {
    if (dir.size > this.limit) {
      dir.dropStats()
      return false
    }
    this.#held.push(dir)
    this.#entries += dir.size
    while (this.#entries > this.limit) {
      const old = this.#held.shift()!
      old.dropStats()
      this.#entries -= old.size
    }
    return true
  }

  get entries(): number {
    return this.#entries
  }
}
