// BranchStack: the ordered branches, top first; index 0 is the upper when the mount is writable.
// The order can change on a live mount (branch add/remove, checkpoint): see replace().
import { Branch, type BranchMode } from './branch.js'

export interface BranchSpec {
  /** Host directory (resolved to an absolute, symlink-free path by options.ts). */
  readonly path: string
  readonly mode: BranchMode
}

export class BranchStack {
  #branches: readonly Branch[]

  constructor(specs: readonly BranchSpec[]) {
    this.#branches = specs.map((s, i) => new Branch(i, s.path, s.mode))
  }

  /** The rw branch, or undefined for a read-only mount (every write is EROFS). */
  upper(): Branch | undefined {
    const top = this.#branches[0]
    return top?.writable ? top : undefined
  }

  /** The read-only branches, top first. */
  lowers(): readonly Branch[] {
    return this.upper() ? this.#branches.slice(1) : this.#branches
  }

  all(): readonly Branch[] {
    return this.#branches
  }

  at(i: number): Branch {
    const b = this.#branches[i]
    if (!b) throw new RangeError(`no branch ${i}`)
    return b
  }

  /** The branches as specs, top first (what a record or a status shows). */
  specs(): BranchSpec[] {
    return this.#branches.map((b) => ({ path: b.root, mode: b.mode }))
  }

  /**
   * Makes `specs` the new stack. A branch whose root, mode and position are unchanged keeps its
   * Branch object (so an unchanged upper stays `===` itself); every other one is new. The caller
   * (LayerFs.restack) validates the stack and drops every cached resolution. `fresh`: every
   * branch gets a new object (a checkpoint: same upper path, but a new, empty directory).
   */
  replace(specs: readonly BranchSpec[], opts: { fresh?: boolean } = {}): void {
    const old = this.#branches
    this.#branches = specs.map((s, i) => {
      const b = opts.fresh ? undefined : old[i]
      return b && b.root === s.path && b.mode === s.mode ? b : new Branch(i, s.path, s.mode)
    })
  }
}
