// BranchStack: the ordered branches, top first; index 0 is the upper when the mount is writable.
import { Branch, type BranchMode } from './branch.js'

export interface BranchSpec {
  /** Host directory (resolved to an absolute, symlink-free path by options.ts). */
  readonly path: string
  readonly mode: BranchMode
}

export class BranchStack {
  readonly #branches: readonly Branch[]

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
}
