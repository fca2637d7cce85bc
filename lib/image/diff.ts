// diff(): the changes a rw branch holds, as `docker diff` prints them (A added, C changed,
// D deleted), optionally checked against the lower branches to tell A from C.
import { fs, type Stats } from '../fs.js'
import { ConfigError } from '../options.js'
import { UnionView } from '../union-view.js'
import { compareNames, walkUpper, type UpperItem } from './upper-walk.js'

/** `A` added, `C` changed (or replaced), `D` deleted: the letters of `docker diff`. */
export type ChangeKind = 'A' | 'C' | 'D'

/** One change; `path` is absolute in the union ('/etc/hosts'). */
export interface Change {
  readonly kind: ChangeKind
  readonly path: string
}

export interface DiffOptions {
  /**
   * The lower branches, top first (host dirs, as in a stack spec). With them, an entry that
   * also exists below is C and a whiteout of a name no lower branch shows is dropped. Without
   * them the rw branch alone decides (see {@link diff}).
   */
  readonly lowers?: readonly string[]
  /** The init layer dir: its paths are never reported (union-contract.md "The launcher"). */
  readonly initLayer?: string
}

interface LowerInfo { readonly isDir: boolean; readonly mode: number; readonly uid: number; readonly gid: number; readonly mtimeSec: number }

/**
 * The changes in the rw branch `upper`, sorted by path (byte order). Rules:
 * 1. A whiteout is `D path`.
 * 2. A non-directory is `C` when a lower branch shows the name, else `A`.
 * 3. A directory is `A` when no lower branch shows it; `C` when it replaced a non-directory, is
 *    opaque, or differs in mode, owner or mtime (seconds); and `C` whenever something below it
 *    changed (as `docker diff` lists `C /etc` with `C /etc/passwd`). Otherwise it is left out:
 *    it is only the parent that a copy-up brought along.
 * 4. An opaque directory with lowers: each name the lowers show in it and the rw branch does
 *    not hold is `D`.
 * Without `lowers` nothing can be compared, so: a whiteout is D; an opaque directory, or one
 * holding a whiteout, is C (layerfs writes a marker only where a lower name exists); every
 * ancestor of a C or D is C; anything else is A.
 * The work area, `.wh..wh.*` entries and init-layer paths never appear.
 * Throws ConfigError for a missing upper or a bad lower stack, the Node error of a failing read.
 */
export async function diff(upper: string, opts: DiffOptions = {}): Promise<Change[]> {
  const st = fs.statSync(upper, { throwIfNoEntry: false })
  if (!st?.isDirectory()) throw new ConfigError(st ? 'ENOTDIR' : 'ENOENT', `upper '${upper}' ${st ? 'is not a directory' : 'does not exist'}`)
  const view = opts.lowers && opts.lowers.length > 0
    ? new UnionView(opts.lowers.map((p) => ({ path: p, mode: 'ro' as const })))
    : undefined
  const lower = async (p: string): Promise<LowerInfo | undefined> => {
    if (!view) return undefined
    try {
      const a = await view.lstat(p)
      return { isDir: a.isDirectory(), mode: a.mode & 0o7777, uid: a.uid, gid: a.gid, mtimeSec: Math.floor(a.mtimeMs / 1000) }
    } catch (e) {
      const code = (e as { code?: string }).code
      if (code === 'ENOENT' || code === 'ENOTDIR') return undefined
      throw e
    }
  }
  const changes = new Map<string, ChangeKind>()
  const upperNames = new Map<string, Set<string>>() // dir → names present in the rw branch
  const items: UpperItem[] = [...walkUpper(upper, { initLayer: opts.initLayer })]
  for (const it of items) {
    const dir = it.path.includes('/') ? it.path.slice(0, it.path.lastIndexOf('/')) : ''
    if (it.kind === 'entry') {
      if (!upperNames.has(dir)) upperNames.set(dir, new Set())
      upperNames.get(dir)!.add(it.path.slice(dir ? dir.length + 1 : 0))
    }
  }
  for (const it of items) {
    const p = '/' + it.target
    if (it.kind === 'whiteout') {
      if (!view || (await lower(p)) !== undefined) changes.set(p, 'D')
      else continue
      continue
    }
    if (it.kind === 'opaque') {
      if (p === '/') continue
      changes.set(p, (view && (await lower(p)) === undefined) ? 'A' : 'C')
      if (view) {
        const below = await lower(p)
        if (below?.isDir) {
          const mine = upperNames.get(it.target) ?? new Set<string>()
          for (const name of await view.readdir(p)) if (!mine.has(name)) changes.set(`${p}/${name}`, 'D')
        }
      }
      continue
    }
    const below = await lower(p)
    if (!it.stats.isDirectory()) {
      changes.set(p, view ? (below ? 'C' : 'A') : 'A')
      continue
    }
    if (changes.has(p)) continue // already C as an opaque directory
    if (!view) { changes.set(p, 'A'); continue }
    if (!below) changes.set(p, 'A')
    else if (!below.isDir || differs(it.stats, below)) changes.set(p, 'C')
  }
  // Rule 3: a change below a directory changes the directory (without lowers: C and D only,
  // since an A says nothing about the parent).
  for (const [p, kind] of [...changes]) {
    if (!view && kind === 'A') continue
    markAncestors(changes, p, !view)
  }
  return [...changes].map(([path, kind]) => ({ kind, path })).sort((a, b) => compareNames(a.path, b.path))
}

function differs(st: Stats, below: LowerInfo): boolean {
  return (st.mode & 0o7777) !== below.mode || st.uid !== below.uid || st.gid !== below.gid
    || Math.floor(st.mtimeMs / 1000) !== below.mtimeSec
}

/**
 * Every ancestor of `p` that is not already a change becomes C. An A ancestor stays A when the
 * lowers said so (`upgrade` false); without lowers a change below proves the dir exists below.
 */
function markAncestors(changes: Map<string, ChangeKind>, p: string, upgrade: boolean): void {
  for (let i = p.lastIndexOf('/'); i > 0; i = p.lastIndexOf('/', i - 1)) {
    const a = p.slice(0, i)
    const k = changes.get(a)
    if (k === 'A' && !upgrade) return // an added dir: its own parents are marked from it
    if (k !== 'D') changes.set(a, 'C')
  }
}

/** `docker diff` lines: 'A /path', one per change. */
export function formatChanges(changes: readonly Change[]): string {
  return changes.map((c) => `${c.kind} ${c.path}\n`).join('')
}
