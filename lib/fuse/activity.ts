// What the FUSE adapter is doing: operation counts (status) and a gate that lets a stack change
// (branch add/remove, checkpoint) wait until no changing operation is in flight.

/**
 * Operations that change the union or may copy up, and so must not run across a stack change.
 * Lookups, reads and listings are not gated: they run synchronously on the JS thread, which a
 * stack change also holds for its whole (synchronous) swap.
 */
export const GATED_OPS = new Set([
  'open', 'create', 'truncate', 'ftruncate', 'chmod', 'chown', 'utimens', 'setxattr', 'removexattr',
  'mkdir', 'symlink', 'mknod', 'link', 'unlink', 'rmdir', 'rename', 'write',
])

export class Activity {
  /** Requests answered (or started) per FUSE op since the mount. */
  readonly counts: Record<string, number> = Object.create(null)
  readonly started = Date.now()
  #inflight = 0
  #held: Promise<void> | undefined
  #drained: (() => void) | undefined
  #queue: Promise<unknown> = Promise.resolve()

  count(op: string): void {
    this.counts[op] = (this.counts[op] ?? 0) + 1
  }

  /** Gated operations whose promise has not settled yet. */
  get inflight(): number {
    return this.#inflight
  }

  /**
   * Runs a gated operation `fn` now, or once the current stack change is over. A promise it
   * returns is tracked until it settles; `fn` answers its own callback.
   */
  gate(fn: () => unknown): void {
    if (this.#held) {
      void this.#held.then(() => this.gate(fn))
      return
    }
    const r = fn()
    if (r instanceof Promise) {
      this.#inflight++
      r.then(() => this.#leave(), () => this.#leave())
    }
  }

  #leave(): void {
    if (--this.#inflight === 0) this.#drained?.()
  }

  /**
   * Runs `change` with no gated operation in flight and none starting (they queue and run
   * after it). Stack changes run one at a time, in call order.
   */
  exclusive<T>(change: () => T | Promise<T>): Promise<T> {
    const run = async (): Promise<T> => {
      let open!: () => void
      this.#held = new Promise<void>((r) => (open = r))
      try {
        if (this.#inflight > 0) await new Promise<void>((r) => (this.#drained = r))
        this.#drained = undefined
        return await change()
      } finally {
        this.#held = undefined
        open()
      }
    }
    const next = this.#queue.then(run, run)
    this.#queue = next.catch(() => undefined)
    return next
  }
}
