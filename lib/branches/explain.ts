// Why a union path looks the way it does: which branch supplies it and, for every other branch
// that holds an entry of that name, the whiteout, opaque dir or entry that hides it (`which --why`).
import { lstatOrUndefined, type Stats } from '../fs.js'
import { ancestorsAndSelf, baseName, parentOf, type UnionPath } from '../paths.js'
import { isCharDevWhiteout, isReservedName, OPAQUE_MARKER, whiteoutNameFor } from '../whiteout/encoding.js'
import { hasWhiteout } from '../whiteout/whiteout.js'
import type { Branch } from './branch.js'
import { isOpaqueDir } from './resolve.js'
import type { BranchStack } from './stack.js'

export type EntryType = 'file' | 'dir' | 'symlink' | 'other'

/** What hides an entry of a lower branch (union-contract.md "Lookup"). */
export interface HiddenBy {
  /**
   * whiteout: a `.wh.NAME` (or an overlayfs 0/0 char device) for `at`;
   * opaque: `at` is an opaque dir; file: `at` is not a directory in that branch, so nothing
   * below it in lower branches is reachable; shadowed: the entry above supplies the name itself.
   */
  readonly kind: 'whiteout' | 'opaque' | 'file' | 'shadowed'
  /** The branch holding the marker or the entry that hides. */
  readonly index: number
  readonly root: string
  /** The union path the marker applies to (the path itself or one of its ancestors). */
  readonly at: UnionPath
  /** The host path of the marker or hiding entry. */
  readonly host: string
}

export interface BranchEntry {
  readonly index: number
  readonly root: string
  readonly mode: string
  readonly host: string
  readonly type: EntryType
  /** Undefined when this entry is part of the merged view (a hit). */
  readonly hiddenBy?: HiddenBy
}

export interface Explanation {
  readonly path: UnionPath
  readonly visible: boolean
  /** Every branch holding an entry at `path` (markers excluded), top first. */
  readonly entries: readonly BranchEntry[]
}

export function entryType(st: Pick<Stats, 'isDirectory' | 'isFile' | 'isSymbolicLink'>): EntryType {
  return st.isDirectory() ? 'dir' : st.isFile() ? 'file' : st.isSymbolicLink() ? 'symlink' : 'other'
}

/**
 * Walks `path` level by level over all branches with the rules of Resolver, recording for each
 * branch the first marker that cuts it off. Synchronous, branch paths only (never the mount).
 */
export function explain(stack: BranchStack, path: UnionPath): Explanation {
  const all = stack.all()
  const cut = new Map<number, HiddenBy>()
  const cutBelow = (alive: readonly Branch[], from: number, by: HiddenBy): void => {
    for (let j = from; j < alive.length; j++) if (!cut.has(alive[j]!.index)) cut.set(alive[j]!.index, by)
  }
  // The root: every branch merges unless an opaque root stops the merge.
  let alive: Branch[] = []
  for (let i = 0; i < all.length; i++) {
    const b = all[i]!
    alive.push(b)
    if (i < all.length - 1 && isOpaqueDir(b, b.root)) {
      cutBelow(all, i + 1, { kind: 'opaque', index: b.index, root: b.root, at: '/', host: b.root + '/' + OPAQUE_MARKER })
      break
    }
  }
  let supplier: number | undefined = path === '/' ? alive[0]?.index : undefined
  const levels = isReservedName(baseName(path)) ? [] : ancestorsAndSelf(path)
  for (const at of levels) {
    const last = at === path
    const next: Branch[] = []
    for (let i = 0; i < alive.length; i++) {
      const b = alive[i]!
      const bottom = i === alive.length - 1
      const host = b.host(at)
      const st = lstatOrUndefined(host)
      if (st && isCharDevWhiteout(st)) {
        cutBelow(alive, i + 1, { kind: 'whiteout', index: b.index, root: b.root, at, host })
        break
      }
      if (st?.isDirectory()) {
        if (last && next.length === 0) supplier = b.index
        next.push(b)
        if (!bottom && isOpaqueDir(b, host)) {
          cutBelow(alive, i + 1, { kind: 'opaque', index: b.index, root: b.root, at, host: host + '/' + OPAQUE_MARKER })
          break
        }
        continue
      }
      if (st) {
        if (last && next.length === 0) supplier = b.index
        else if (last) cut.set(b.index, { kind: 'shadowed', index: next[0]!.index, root: next[0]!.root, at, host: next[0]!.host(at) })
        // A non-directory hides everything below: the name itself, or (above the last level)
        // the whole subtree, since the path needs a directory here.
        const kind = last ? 'shadowed' : 'file'
        if (last && next.length > 0) cutBelow(alive, i + 1, cut.get(b.index)!)
        else cutBelow(alive, i + 1, { kind, index: b.index, root: b.root, at, host })
        break
      }
      if (!bottom && hasWhiteout(b.host(parentOf(at)), baseName(at))) {
        cutBelow(alive, i + 1, { kind: 'whiteout', index: b.index, root: b.root, at, host: b.host(parentOf(at)) + '/' + whiteoutNameFor(baseName(at)) })
        break
      }
    }
    alive = next
    if (alive.length === 0 && !last) break
  }
  const entries: BranchEntry[] = []
  for (const b of all) {
    const host = b.host(path)
    const st = lstatOrUndefined(host)
    if (!st || isCharDevWhiteout(st)) continue
    const visible = supplier !== undefined && (b.index === supplier || (st.isDirectory() && alive.includes(b)))
    entries.push({ index: b.index, root: b.root, mode: b.mode, host, type: entryType(st), hiddenBy: visible ? undefined : cut.get(b.index) })
  }
  return { path, visible: supplier !== undefined, entries }
}
