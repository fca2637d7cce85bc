// PathLocks: one copy-up or name mutation per union path at a time (cf. node-tar path-reservations).
import type { UnionPath } from '../paths.js'

export class PathLocks {
  readonly #tails = new Map<UnionPath, Promise<unknown>>()

  /**
   * Runs `fn` once every earlier holder of `path` has finished; never holds a global lock. With
   * no holder, `fn` starts at once, before `run` returns (no promise hop: the common case of
   * every create, unlink and rename).
   */
  async run<T>(path: UnionPath, fn: () => Promise<T> | T): Promise<T> {
    const prev = this.#tails.get(path)
    let release!: () => void
    const mine = new Promise<void>((r) => (release = r))
    const tail = prev ? prev.then(() => mine) : mine
    this.#tails.set(path, tail)
    try {
      if (prev) await prev
      return await fn()
    } finally {
      release()
      if (this.#tails.get(path) === tail) this.#tails.delete(path)
    }
  }

  /** Runs `fn` holding several paths, taken in sorted order so two callers cannot deadlock. */
  async runAll<T>(paths: readonly UnionPath[], fn: () => Promise<T> | T): Promise<T> {
    const sorted = [...new Set(paths)].sort()
    const step = (i: number): Promise<T> =>
      i === sorted.length ? Promise.resolve(fn()) : this.run(sorted[i]!, () => step(i + 1))
    return step(0)
  }

  /** Whether a holder of `path` has not finished yet. */
  isHeld(path: UnionPath): boolean {
    return this.#tails.has(path)
  }

  get held(): number {
    return this.#tails.size
  }
}
