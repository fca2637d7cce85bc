// A branch: one host directory in the stack, with its mode. UnionPath → host path happens only here.
import type { UnionPath } from '../paths.js'

export type BranchMode = 'rw' | 'ro'

export class Branch {
  /** Position in the stack: 0 is the top (the upper when it is writable). */
  readonly index: number
  /** Absolute, symlink-free host path of the branch root. */
  readonly root: string
  readonly mode: BranchMode

  constructor(index: number, root: string, mode: BranchMode) {
    this.index = index
    this.root = root
    this.mode = mode
  }

  get writable(): boolean {
    return this.mode === 'rw'
  }

  /** The host path of a union path in this branch. Union paths are normalized, so no '..' escapes. */
  host(p: UnionPath): string {
    return p === '/' ? this.root : this.root + p
  }
}
