// Lookup across branches (the namei.c analogue): one Resolution per union path, cached.
import { FsError } from '../errors.js'
import { fs, getXattr, lstatOrUndefined, TypedByMode, type FileStats } from '../fs.js'
import { createLogger } from '../log.js'
import { baseName, parentOf, type UnionPath } from '../paths.js'
import {
  isCharDevWhiteout, isReservedName, OPAQUE_MARKER, OVERLAY_OPAQUE_XATTR, whiteoutNameFor,
} from '../whiteout/encoding.js'
import { hasWhiteout } from '../whiteout/whiteout.js'
import type { Branch } from './branch.js'
import { NEGATIVE, ResolutionCache } from './cache.js'
import type { BranchStack } from './stack.js'
import type { PrefetchedDir } from './prefetched.js'

const log = createLogger('layerfs:resolve')

/** Read-only directories up to this size (ext4: ~8k entries) have their names indexed. */
const DIR_INDEX_MAX_BYTES = 256 * 1024

/**
 * What a resolution keeps of an entry's lstat: its type and identity. fs.Stats has it all; a
 * cached resolution keeps only these (EntryStats), a tenth of the memory of a Stats with its
 * four Dates — the cache holds up to 100k resolutions.
 */
export interface HitStats {
  readonly mode: number
  readonly size: number
  readonly nlink: number
  readonly dev: number
  readonly ino: number
  readonly rdev: number
  isDirectory(): boolean
  isFile(): boolean
  isSymbolicLink(): boolean
  isCharacterDevice(): boolean
}

class EntryStats extends TypedByMode implements HitStats {
  constructor(readonly mode: number, readonly size: number, readonly nlink: number, readonly dev: number, readonly ino: number, readonly rdev: number) {
    super()
  }
}

function entryStats(st: HitStats): EntryStats {
  return new EntryStats(st.mode, st.size, st.nlink, st.dev, st.ino, st.rdev)
}

function slim(res: Resolution): Resolution {
  const hits = res.hits.map((h) => (h.stats instanceof EntryStats ? h : new BranchHit(h.branch, h.path, entryStats(h.stats))))
  return { ...res, hits }
}

/** The names of a branch directory, for membership tests. */
export interface NameIndex {
  has(name: string): boolean
}

/**
 * One branch's entry for a union path. Its host path is derived (the branch root and the union
 * path), not kept: a cached resolution holds no host string of its own (~110 bytes an entry).
 */
export class BranchHit {
  /**
   * The entry names of this branch directory, once read (the Resolver's index of a read-only
   * directory). Kept here, they live exactly as long as the resolution that holds the hit.
   */
  names: NameIndex | undefined = undefined
  /** What the read-ahead read of this (read-only) directory: its names and lstats (prefetched.ts). */
  prefetched: PrefetchedDir | undefined = undefined
  /** A merged listing has read this directory (its entries have been resolved since). */
  listed = false

  constructor(
    readonly branch: Branch,
    /** The union path (in every branch the same: the resolution's own). */
    readonly path: UnionPath,
    /** Stats at resolution time: trust the type, re-lstat for anything that changes (size, times). */
    readonly stats: HitStats,
  ) {}

  /** The host path of the entry in that branch. */
  get host(): string {
    return this.branch.host(this.path)
  }
}

export interface Resolution {
  readonly path: UnionPath
  /**
   * Top-down. hits[0] is what the user sees. A non-directory has exactly one hit; a directory
   * has one hit per branch that merges into it (its merge list).
   */
  readonly hits: readonly BranchHit[]
  /** The merge stopped at an opaque directory (lower branches are hidden below hits' last). */
  readonly opaque: boolean
}

export function isDirResolution(r: Resolution): boolean {
  return r.hits[0]!.stats.isDirectory()
}

/** True when a directory in `branch` hides the branches below it (marker file, or overlayfs xattr). */
export function isOpaqueDir(branch: Branch, host: string): boolean {
  if (lstatOrUndefined(host + '/' + OPAQUE_MARKER)) return true
  if (branch.writable) return false // layerfs writes only the marker form into the rw branch
  try {
    return getXattr(host, OVERLAY_OPAQUE_XATTR)?.toString() === 'y'
  } catch {
    return false // no xattr support on that file system: the marker is the only form
  }
}

/**
 * Resolves union paths against the stack, top branch first (union-contract.md "Lookup"):
 *  (1) D/N exists, not a directory → the result; branches below are hidden;
 *  (2) D/N is a directory → a hit; branches below merge unless it is opaque;
 *  (3) otherwise D/.wh.N (or an overlayfs 0/0 char device N) → deleted for branches below.
 * A marker hides entries of the branches below its own, never one of its own branch (OCI).
 */
export class Resolver {
  readonly stack: BranchStack
  readonly cache: ResolutionCache<Resolution>

  /** `cacheTtlMs`: how long a cached resolution is trusted (--revalidate); default: until invalidated. */
  constructor(stack: BranchStack, cacheSize?: number, cacheTtlMs?: number) {
    this.stack = stack
    this.cache = new ResolutionCache<Resolution>(cacheSize, cacheTtlMs)
  }

  /**
   * The resolution of `p`, or undefined when it does not exist in the merged view.
   * Throws ENOTDIR when a parent component is not a directory; I/O errors of branches propagate.
   */
  resolve(p: UnionPath): Resolution | undefined {
    const cached = this.cache.get(p)
    if (cached !== undefined) {
      // Stats read by an earlier resolve are not fresh any more: the operation that resolved
      // (utimens, chmod, write…) may have changed the entry since.
      this.#fresh = undefined
      return cached === NEGATIVE ? undefined : cached
    }
    const res = p === '/' ? this.#resolveRoot() : this.#resolveChild(p)
    // A miss is cached only below an existing directory: then creating the name is the one
    // change that can make it appear, and creation invalidates exactly that name.
    if (res === null) return undefined
    // Cached as built: its hits already hold only EntryStats (no copy of the resolution).
    this.cache.set(p, res ?? NEGATIVE)
    this.#fresh = res
    this.#freshStats = this.#top
    return res
  }

  /**
   * Caches a resolution its caller has just made true (a copy-up put the entry in the rw
   * branch): exactly what resolve() would find now, without looking again.
   */
  remember(res: Resolution): void {
    this.cache.set(res.path, slim(res))
  }

  /** The last resolution computed (not from the cache), and the whole lstat of its hits[0]. */
  #fresh: Resolution | undefined
  #freshStats: FileStats | undefined
  /** The whole lstat of the first hit the resolution being built found (set by its builder). */
  #top: FileStats | undefined

  /**
   * The whole lstat of `res`'s visible entry when `res` was computed by the last resolve() call
   * (its stats were just read), then forgets it: lets getattr skip a second lstat of an entry it
   * has just looked up.
   */
  takeFresh(res: Resolution): FileStats | undefined {
    const stats = this.#fresh === res ? this.#freshStats : undefined
    this.#fresh = undefined
    this.#freshStats = undefined
    return stats
  }

  /** Like resolve, but ENOENT is thrown: for operations that need the path to exist. */
  require(p: UnionPath, syscall: string): Resolution {
    const r = this.resolve(p)
    if (!r) throw new FsError('ENOENT', syscall, p)
    return r
  }

  #resolveRoot(): Resolution {
    const hits: BranchHit[] = []
    let opaque = false
    for (const branch of this.stack.all()) {
      const stats = lstatOrUndefined(branch.root)
      if (!stats?.isDirectory()) throw new FsError('EIO', 'lookup', '/') // a branch root vanished
      if (hits.length === 0) this.#top = stats
      hits.push(new BranchHit(branch, '/', entryStats(stats)))
      if (isOpaqueDir(branch, branch.root)) { opaque = true; break }
    }
    return { path: '/', hits: hits.slice(), opaque }
  }

  /** Whether the names of branch directory `dir` may be indexed (read-only, not huge). */
  static indexable(dir: BranchHit): boolean {
    return !dir.branch.writable && dir.stats.size <= DIR_INDEX_MAX_BYTES
  }

  /** Keeps the names of a read-only branch directory read by a merged listing (and that it was listed). */
  seedNames(dir: BranchHit, names: NameIndex): void {
    dir.listed = true
    if (Resolver.indexable(dir)) dir.names = names
  }

  /** Whether the read-ahead's read of `dir` would be kept (adoptPrefetched). */
  static wouldAdopt(dir: BranchHit): boolean {
    return Resolver.indexable(dir) && !dir.listed && dir.prefetched === undefined
  }

  /**
   * Keeps what the read-ahead read of a read-only branch directory no listing has read yet (a
   * lookup may have: its names are the same): the names become the name index, and the
   * resolutions of its entries take their lstats from it. False when the directory does not
   * qualify (rw branch, too large, listed already, or kept already).
   */
  adoptPrefetched(dir: BranchHit, read: PrefetchedDir): boolean {
    if (!Resolver.wouldAdopt(dir)) return false
    dir.names = read
    dir.prefetched = read
    return true
  }

  /**
   * The entry names of a read-only branch directory, from the index (read on first use);
   * undefined for the rw branch (it changes) and for very large directories (one lstat beats
   * reading them whole).
   */
  #roNames(dir: BranchHit): NameIndex | undefined {
    if (dir.names !== undefined || !Resolver.indexable(dir)) return dir.names
    try {
      dir.names = new Set(fs.readdirSync(dir.host))
    } catch {
      // unreadable or gone: fall back to lstat, which reports it
    }
    return dir.names
  }

  /** The resolution of a non-root path; undefined when missing, null when its parent is. */
  #resolveChild(p: UnionPath): Resolution | undefined | null {
    const parent = this.resolve(parentOf(p))
    if (!parent) return null
    if (!isDirResolution(parent)) throw new FsError('ENOTDIR', 'lookup', p)
    const name = baseName(p)
    if (isReservedName(name)) return undefined
    const hits: BranchHit[] = []
    let opaque = false
    const dirs = parent.hits
    for (let i = 0; i < dirs.length; i++) {
      const dir = dirs[i]!
      // Markers in the bottom-most merged branch hide nothing: skip their lookups.
      const bottom = i === dirs.length - 1
      // A read-only directory's names are read once: misses and whiteout checks then cost
      // no system call at all (most lookups in a deep stack are misses in most branches).
      const names = this.#roNames(dir)
      if (names && !names.has(name)) {
        if (!bottom && names.has(whiteoutNameFor(name))) break
        continue
      }
      const host = dir.branch.host(p)
      const stats = dir.prefetched?.take(name) ?? lstatOrUndefined(host)
      if (stats) {
        if (isCharDevWhiteout(stats)) break // overlayfs whiteout: deleted for this branch and below
        if (stats.isDirectory()) {
          if (hits.length === 0) this.#top = stats
          hits.push(new BranchHit(dir.branch, p, entryStats(stats)))
          if (!bottom && isOpaqueDir(dir.branch, host)) { opaque = true; break }
          continue
        }
        if (hits.length === 0) {
          this.#top = stats
          hits.push(new BranchHit(dir.branch, p, entryStats(stats)))
        }
        break // a non-directory hides everything below; below a directory it is itself hidden
      }
      if (!bottom && (names ? names.has(whiteoutNameFor(name)) : hasWhiteout(dir.host, name))) break
    }
    if (hits.length === 0) return undefined
    if (hits.length > 1) log.debug('merged dir %s from %d branches', p, hits.length)
    return { path: p, hits: hits.slice(), opaque } // slice: an array of its exact length (a pushed-to one keeps room for 17)
  }

  /**
   * Whether a branch *below the upper* still supplies `p` to the merged view, ignoring the
   * upper's own entry for it: decides if deleting or renaming the upper entry needs a whiteout.
   */
  lowerSupplies(p: UnionPath): boolean {
    if (p === '/') return true
    const parent = this.resolve(parentOf(p))
    if (!parent) return false
    const name = baseName(p)
    for (const dir of parent.hits) {
      if (dir.branch.writable) continue
      const stats = lstatOrUndefined(dir.host + '/' + name)
      if (stats) return !isCharDevWhiteout(stats)
      if (hasWhiteout(dir.host, name)) return false
    }
    return false
  }
}
