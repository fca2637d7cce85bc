// The merged listing: upper first, each name once from its top-most branch, markers applied.
import { fs, lstatOrUndefined } from '../fs.js'
import { isUndecodableName } from '../paths.js'
import { META_PREFIX, isCharDevWhiteout, whitedOutName, WHITEOUT_PREFIX } from '../whiteout/encoding.js'
import type { BranchHit, NameIndex, Resolution } from './resolve.js'

/**
 * The visible names of a merged directory (without '.' and '..'). Whiteouts of a branch hide
 * names of the branches below it only; the merge list of `dir` already stops at opaque dirs.
 * `onNames` receives every name of each read-only branch directory read (the lookups of the
 * entries that follow a listing then need no readdir of their own). A branch directory the
 * read-ahead has read (BranchHit.prefetched) is not read again.
 */
export function listMerged(dir: Resolution, onNames?: (hit: BranchHit, names: NameIndex) => void): string[] {
  const out: string[] = []
  const seen = new Set<string>()
  const hidden = new Set<string>()
  for (const hit of dir.hits) {
    const deleted: string[] = []
    let names: readonly string[]
    let isCharDev: (i: number) => boolean
    const read = hit.prefetched
    if (read) {
      names = read.names
      isCharDev = (i) => read.isCharDevAt(i)
      onNames?.(hit, read) // it already is the name index: this records the listing
    } else {
      const entries = fs.readdirSync(hit.host, { withFileTypes: true })
      names = entries.map((e) => e.name)
      isCharDev = (i) => entries[i]!.isCharacterDevice()
      if (onNames && !hit.branch.writable) onNames(hit, new Set(names))
    }
    for (let i = 0; i < names.length; i++) {
      const name = names[i]!
      if (name.startsWith(WHITEOUT_PREFIX)) {
        if (!name.startsWith(META_PREFIX)) {
          const w = whitedOutName(name)
          if (w !== undefined) deleted.push(w)
        }
        continue
      }
      if (isCharDev(i)) {
        const st = lstatOrUndefined(hit.host + '/' + name)
        if (st && isCharDevWhiteout(st)) { deleted.push(name); continue }
      }
      if (seen.has(name) || hidden.has(name)) continue
      // A name that is not UTF-8 comes back with U+FFFD (paths.ts isUndecodableName): it could
      // never be looked up, so it is not listed (a real U+FFFD name still exists and is kept).
      if (isUndecodableName(name) && !lstatOrUndefined(hit.host + '/' + name)) continue
      seen.add(name)
      out.push(name)
    }
    for (const w of deleted) hidden.add(w)
  }
  return out
}
