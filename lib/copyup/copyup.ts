// Copy-up: parents first, the copy built in the work area, attributes set, then renamed into place.
import type { Branch } from '../branches/branch.js'
import { hostKey, type HostId, type InodeTable } from '../branches/inodes.js'
import { BranchHit, isDirResolution, type HitStats, type Resolution, type Resolver } from '../branches/resolve.js'
import { FsError, rethrow } from '../errors.js'
import { canCopyUpInOneCall, copyFileData, copyUpFileNow, copyUpFileOffThread, copyUpFileWhileIdle, codeOfErrno, fs, lstatOrUndefined, IDLE_COPY_MAX_BYTES, mknod, mutate, SYNC_COPY_MAX_BYTES, type CopiedFile, type FileStats } from '../fs.js'
import { createLogger } from '../log.js'
import { ancestorsAndSelf, parentOf, type UnionPath } from '../paths.js'
import { copyAttrs } from './copy-attrs.js'
import type { LinkGroups } from './link-groups.js'
import type { PathLocks } from './locks.js'
import type { WorkArea } from './work-area.js'

const log = createLogger('layerfs:copyup')

export interface CopyUpContext {
  readonly resolver: Resolver
  readonly upper: Branch
  readonly work: WorkArea
  readonly inodes: InodeTable
  /** Copy-up's own lock namespace, so a caller holding a name lock can still copy up. */
  readonly copyLocks: PathLocks
  /** Hard-link groups of the lower branches: a group is copied up as one rw inode. */
  readonly linkGroups: LinkGroups
  /**
   * Whether no other request waits for the JS thread now (the FUSE transport polls its queue).
   * Then files of up to IDLE_COPY_MAX_BYTES whose data is in the page cache are copied on the JS
   * thread too (copyAtOnce: copyUpSingle and the locked walk alike).
   */
  readonly idle?: () => boolean
  /**
   * The descriptor `idle` polls (/dev/fuse), when there is one: then a file of up to
   * IDLE_COPY_MAX_BYTES whose data is not cached is copied on the JS thread too, in slices, and
   * its copy goes to a worker as soon as a request waits on it (copyUpFileWhileIdle).
   */
  readonly queueFd?: () => number | undefined
  /** Told each copy-up done (layerfs status). */
  readonly counts?: CopyUpCounts
}

/**
 * Entries copied up, by kind, and the files whose data a worker thread copied (above
 * SYNC_COPY_MAX_BYTES, and not taken at once: too large, not cached, or a request was waiting).
 */
export interface CopyUpCounts {
  files: number
  filesOffThread: number
  dirs: number
  others: number
}

export interface CopyUpOptions {
  /** The caller truncates the file to 0 at once (O_TRUNC, truncate(0)): skip the data copy. */
  readonly truncate?: boolean
  /** Told when this call copied the entry itself: how many xattrs it carried up. */
  readonly onCopied?: (copied: { readonly xattrs: number }) => void
  /**
   * The caller changes the parent dir right after (rename moves the copy out of it): skip giving
   * the parent back its times. Saves a stat and a utimensat; if that change fails, the parent
   * keeps the copy-up's mtime.
   */
  readonly parentChangesNext?: boolean
}

/**
 * Makes `path` exist in the rw branch with its merged content and attributes, and returns its
 * host path there. Idempotent; two racing callers copy once. Parents are copied up first with
 * their merged mode, owner, times and xattrs. Throws ENOENT when `path` does not exist, and the
 * errno of the branch I/O that failed (ENOSPC…), leaving nothing visible half-copied.
 */
export async function copyUp(ctx: CopyUpContext, path: UnionPath, opts: CopyUpOptions = {}): Promise<string> {
  const up = upperHost(ctx, path)
  if (up !== undefined) return up
  await copyUpDirChain(ctx, parentOf(path))
  return copyUpOne(ctx, path, opts)
}

/**
 * Ensures the directory `dir` (and its parents) exists in the rw branch; returns its host path.
 * When it is already there (the common case), or no copy-up in its chain is under way, the
 * answer comes at once, without a promise.
 */
export function copyUpDirChain(ctx: CopyUpContext, dir: UnionPath): string | Promise<string> {
  return upperHost(ctx, dir) ?? dirChainNow(ctx, dir) ?? copyDirsUp(ctx, dir)
}

/**
 * Copies up the directories of `dir`'s chain that are not up yet, now on the JS thread, when no
 * copy-up of any of them is under way (each is a mkdir, its attributes and a rename: no data,
 * nothing to wait for); returns `dir`'s host path. Undefined, with nothing done, when one of them
 * is being copied up or is not a directory: the locked walk (copyDirsUp) then waits or gives the error.
 */
function dirChainNow(ctx: CopyUpContext, dir: UnionPath): string | undefined {
  const chain = ancestorsAndSelf(dir)
  if (chain.some((d) => ctx.copyLocks.isHeld(d))) return undefined
  const todo: [UnionPath, Resolution][] = []
  for (const d of chain) {
    const res = ctx.resolver.resolve(d)
    if (!res || !isDirResolution(res)) return undefined
    if (res.hits[0]!.branch !== ctx.upper) todo.push([d, res])
  }
  for (const [d, res] of todo) {
    const dst = ctx.upper.host(d)
    const tmp = ctx.work.tempPath('copyup')
    let made: Made
    try {
      made = copyDirStepByStep(ctx, d, res.hits[0]!.host, tmp, dst, ctx.upper.host(parentOf(d)))
    } catch (e) {
      ctx.work.discard(tmp)
      rethrow(e, 'copyup', d)
    }
    recordCopy(ctx, d, res, dst, made, {})
  }
  return ctx.upper.host(dir)
}

async function copyDirsUp(ctx: CopyUpContext, dir: UnionPath): Promise<string> {
  for (const d of ancestorsAndSelf(dir)) await copyUpOne(ctx, d, {})
  return ctx.upper.host(dir)
}

/** The host path of `path` when it already is in the rw branch (then so are all its parents). */
function upperHost(ctx: CopyUpContext, path: UnionPath): string | undefined {
  const top = ctx.resolver.resolve(path)?.hits[0]
  return top && top.branch === ctx.upper ? top.host : undefined
}

function copyUpOne(ctx: CopyUpContext, path: UnionPath, opts: CopyUpOptions): Promise<string> {
  const { resolver, upper } = ctx
  const quick = resolver.resolve(path)
  if (quick && quick.hits[0]!.branch === upper) return Promise.resolve(quick.hits[0]!.host)
  // Names of one lower hard-link group share a lock: the group goes up once, as one inode.
  const first = quick?.hits[0]
  const lockKey = first && isHardLinkedFile(first.stats) ? `ino:${hostKey(first.stats)}` : path
  return ctx.copyLocks.run(lockKey, async () => {
    const res = resolver.resolve(path) // again, under the lock: a racing copy-up may have won
    if (!res) throw new FsError('ENOENT', 'copyup', path)
    const top = res.hits[0]!
    if (top.branch === upper) return top.host
    const dst = upper.host(path)
    // '' tells both copy paths to leave the parent's times alone.
    const parentHost = path === '/' || opts.parentChangesNext ? '' : upper.host(parentOf(path))
    const tmp = ctx.work.tempPath('copyup')
    let made: Made
    try {
      made = isDirResolution(res)
        ? copyDirStepByStep(ctx, path, top.host, tmp, dst, parentHost)
        : canCopyUpInOneCall && top.stats.isFile()
          ? await copyFileInOneCall(ctx, path, top.host, top.stats.size, tmp, dst, parentHost, opts)
          : await copyStepByStep(ctx, path, top.host, tmp, dst, parentHost, opts)
    } catch (e) {
      ctx.work.discard(tmp)
      rethrow(e, 'copyup', path)
    }
    recordCopy(ctx, path, res, dst, made, opts)
    if (isHardLinkedFile(top.stats)) await linkSiblings(ctx, path, top.branch, hostKey(top.stats), dst)
    return dst
  })
}

/** A lower regular file that can be copied up by itself (copyUpSingle). */
interface SingleFile {
  readonly res: Resolution
  readonly src: string
  readonly size: number
  readonly dst: string
  readonly parentHost: string
}

/**
 * `path` when it is a regular file that is not hard-linked, no other copy-up of it is under way,
 * and its parent is in the rw branch (copied up here at once when no copy-up in its chain is
 * under way): it then needs no walk and no lock of others. `{ host }` when it already is in the
 * rw branch; undefined for any other case (copyUp).
 */
function singleFile(ctx: CopyUpContext, path: UnionPath, opts: CopyUpOptions): SingleFile | { readonly host: string } | undefined {
  if (!canCopyUpInOneCall || path === '/') return undefined
  const res = ctx.resolver.resolve(path)
  if (!res || isDirResolution(res)) return undefined
  const top = res.hits[0]!
  if (top.branch === ctx.upper) return { host: top.host }
  if (!top.stats.isFile() || isHardLinkedFile(top.stats) || ctx.copyLocks.isHeld(path)) return undefined
  // Its parents up first, at once unless one of them is being copied up (then: copyUp).
  if (upperHost(ctx, parentOf(path)) === undefined && dirChainNow(ctx, parentOf(path)) === undefined) return undefined
  const parentHost = opts.parentChangesNext ? '' : ctx.upper.host(parentOf(path))
  return { res, src: top.host, size: top.stats.size, dst: ctx.upper.host(path), parentHost }
}

/**
 * The copy-up of `path` when it is a single file (see singleFile), without copyUp's walk: on the
 * JS thread when it can be (copyAtOnce: small, or cached with no request waiting), else on a
 * worker holding the file's copy-up lock. That is the common first write to a file; at once it
 * skips the lock and the promise hops of copyUp (about a fifth of a 4 KiB copy-up's time in the
 * daemon: docs/benchmarks.md §10). Returns (or resolves with) the copy's host path and, with
 * `keepOpen`, its descriptor (read-write, the caller's to close; else -1); the host path alone
 * when `path` already is in the rw branch; undefined when the case does not apply: use copyUp.
 * Throws (or rejects) as copyUp does.
 */
export function copyUpSingle(ctx: CopyUpContext, path: UnionPath, opts: CopyUpOptions, keepOpen: boolean): { host: string; fd: number } | Promise<{ host: string; fd: number }> | undefined {
  const one = singleFile(ctx, path, opts)
  if (!one || 'host' in one) return one && { host: one.host, fd: -1 }
  const tmp = ctx.work.tempPath('copyup')
  let made: ReturnType<typeof copyAtOnce>
  try {
    made = copyAtOnce(ctx, one.src, tmp, one.dst, one.parentHost, one.size, opts.truncate === true, keepOpen)
  } catch (e) {
    ctx.work.discard(tmp)
    rethrow(e, 'copyup', path)
  }
  if (made && !(made instanceof Promise)) return recordSingle(ctx, path, one, made, opts)
  // On a worker: from the start (nothing was made at tmp), or for the rest of a copy a request
  // interrupted. No holder (singleFile checked): run() starts at once, so no other copy-up can
  // come between.
  const rest = made
  return ctx.copyLocks.run(path, async () => {
    let off: Awaited<ReturnType<typeof copyUpFileOffThread>>
    try {
      off = await (rest ?? copyUpFileOffThread(one.src, tmp, one.dst, one.parentHost, ctx.work.owner, keepOpen))
    } catch (e) {
      ctx.work.discard(tmp)
      rethrow(e, 'copyup', path)
    }
    return recordSingle(ctx, path, one, { ...off, offThread: true }, opts)
  })
}

/**
 * A regular file's copy in one addon call begun on the JS thread, when that is allowed: at most
 * SYNC_COPY_MAX_BYTES (or truncated), or at most IDLE_COPY_MAX_BYTES when no other request is
 * waiting (`ctx.idle`) and either its data is in the page cache or the queue can be watched
 * during the copy (`ctx.queueFd`; then a promise when a request came and a worker finishes it).
 * Undefined, with nothing made at `tmp`: the copy is a worker's.
 */
function copyAtOnce(ctx: CopyUpContext, src: string, tmp: string, dst: string, parentHost: string, size: number, truncate: boolean, keepOpen: boolean): ReturnType<typeof copyUpFileWhileIdle> | undefined {
  if (truncate || size <= SYNC_COPY_MAX_BYTES) return copyUpFileNow(src, tmp, dst, parentHost, ctx.work.owner, truncate, keepOpen)
  if (size > IDLE_COPY_MAX_BYTES || ctx.idle?.() !== true) return undefined
  const queueFd = ctx.queueFd?.()
  if (queueFd !== undefined) return copyUpFileWhileIdle(src, tmp, dst, parentHost, ctx.work.owner, keepOpen, queueFd)
  return copyUpFileNow(src, tmp, dst, parentHost, ctx.work.owner, false, keepOpen, true)
}

/** After a single file's copy: warnings, the cache and counts told; the descriptor closed if that fails. */
function recordSingle(ctx: CopyUpContext, path: UnionPath, one: SingleFile, made: CopiedFile & Made & { readonly fd: number }, opts: CopyUpOptions): { host: string; fd: number } {
  warnOfXattrFailures(path, made)
  try {
    recordCopy(ctx, path, one.res, one.dst, made, opts)
  } catch (e) {
    if (made.fd >= 0) fs.closeSync(made.fd) // the copy is in place; only the handle is lost
    throw e
  }
  return { host: one.dst, fd: made.fd }
}

/** After a copy-up of `path` (resolved as `res`) to `dst`: the inode keeps its number, the cache learns the copy. */
function recordCopy(ctx: CopyUpContext, path: UnionPath, res: Resolution, dst: string, made: Made, opts: CopyUpOptions): void {
  const { resolver, upper, counts } = ctx
  if (counts) {
    const kind = res.hits[0]!.stats
    if (kind.isFile()) {
      counts.files++
      if (made.offThread) counts.filesOffThread++
    } else if (kind.isDirectory()) counts.dirs++
    else counts.others++
  }
  const copied = made.stats ?? lstatOrUndefined(dst)
  if (copied) {
    ctx.inodes.alias(copied, identityOf(res))
    // What a lookup would find now: the copy on top (a file hides the rest; a directory is not
    // opaque, so the lower ones still merge below it). Saves the next request a resolve.
    const hit = new BranchHit(upper, path, copied)
    resolver.remember({ path, hits: copied.isDirectory() ? [hit, ...res.hits] : [hit], opaque: res.opaque })
  } else {
    resolver.cache.invalidate(path)
  }
  opts.onCopied?.({ xattrs: made.xattrs })
  if (isDirResolution(res)) log.debug('copied up %s (dir)', path)
  else log.debug('copied up %s (%d bytes)', path, res.hits[0]!.stats.size)
}

function isHardLinkedFile(st: HitStats): boolean {
  return st.isFile() && st.nlink > 1
}

/**
 * After copying up `path`, links every other visible name of its lower hard-link group to the
 * copy, so all names keep seeing one inode (writes through any name, st_nlink). Names that are
 * whited out or shadowed by a higher branch are not part of the merged group and stay as they are.
 */
async function linkSiblings(ctx: CopyUpContext, path: UnionPath, branch: Branch, key: string, dst: string): Promise<void> {
  for (const other of await ctx.linkGroups.namesOf(branch, key)) {
    if (other === path) continue
    let res: Resolution | undefined
    try {
      res = ctx.resolver.resolve(other)
    } catch {
      continue // a parent became a non-directory: not visible
    }
    const hit = res?.hits[0]
    if (!hit || hit.branch !== branch || hostKey(hit.stats) !== key) continue
    const parentHost = await copyUpDirChain(ctx, parentOf(other))
    const parentStats = lstatOrUndefined(parentHost)
    mutate('link copy-up', ctx.upper.host(other), () => fs.linkSync(dst, ctx.upper.host(other)))
    if (parentStats) restoreTimes(parentHost, parentStats)
    ctx.resolver.cache.invalidate(other)
  }
}

/** The host identity that names a resolution's inode: a dir's bottom hit, a file's only hit. */
export function identityOf(res: Resolution): HostId {
  return (isDirResolution(res) ? res.hits[res.hits.length - 1]! : res.hits[0]!).stats
}

/**
 * What a copy-up made: the copy's stats when already known, the xattrs the source had, and
 * whether a worker thread copied the data.
 */
interface Made {
  readonly stats: FileStats | undefined
  readonly xattrs: number
  readonly offThread?: boolean
}

/** A regular file's copy-up in one addon call: the copy, its attributes, the rename, the parent's times. */
async function copyFileInOneCall(ctx: CopyUpContext, path: UnionPath, src: string, size: number, tmp: string, dst: string, parentHost: string, opts: CopyUpOptions): Promise<Made> {
  const now = copyAtOnce(ctx, src, tmp, dst, parentHost, size, opts.truncate === true, false)
  const c = now && !(now instanceof Promise)
    ? now
    : { ...await (now ?? copyUpFileOffThread(src, tmp, dst, parentHost, ctx.work.owner)), offThread: true }
  warnOfXattrFailures(path, c)
  return c
}

function warnOfXattrFailures(path: UnionPath, c: CopiedFile): void {
  if (c.xattrFailures > 0) {
    const code = codeOfErrno(c.xattrErrno)
    log.warnOnce(`xattr:${code}`, 'could not copy %d xattr(s) of %s up (%s)', c.xattrFailures, path, code)
  }
}

/** Any non-directory entry's copy-up in Node calls: build the copy, rename it into place, give the parent back its times. */
async function copyStepByStep(ctx: CopyUpContext, path: UnionPath, srcHost: string, tmp: string, dst: string, parentHost: string, opts: CopyUpOptions): Promise<Made> {
  const { src, parentStats } = sourceAndParent(path, srcHost, parentHost)
  const xattrs = await buildCopy(srcHost, src, tmp, opts, ctx.work.owner)
  placeCopy(tmp, dst, parentHost, parentStats)
  return { stats: undefined, xattrs, offThread: !opts.truncate && src.isFile() && src.size > SYNC_COPY_MAX_BYTES }
}

/**
 * A directory's copy-up, the same steps, all synchronous (no data to copy): mkdir, attributes,
 * rename; in one addon call when it is built (native/copy_up.c: the same syscalls on
 * descriptors, times to the nanosecond, the copy's stats for the cache).
 */
function copyDirStepByStep(ctx: CopyUpContext, path: UnionPath, srcHost: string, tmp: string, dst: string, parentHost: string): Made {
  if (canCopyUpInOneCall) {
    const c = copyUpFileNow(srcHost, tmp, dst, parentHost, ctx.work.owner, false, false)
    warnOfXattrFailures(path, c)
    return c
  }
  const { src, parentStats } = sourceAndParent(path, srcHost, parentHost)
  fs.mkdirSync(tmp, { mode: 0o700 })
  const xattrs = copyAttrs(srcHost, src, tmp, ctx.work.owner)
  placeCopy(tmp, dst, parentHost, parentStats)
  return { stats: undefined, xattrs }
}

/** The source's stats (ENOENT when it vanished underneath) and the parent's, before the copy changes it ('' for none). */
function sourceAndParent(path: UnionPath, srcHost: string, parentHost: string): { src: FileStats; parentStats: FileStats | undefined } {
  const parentStats = parentHost ? lstatOrUndefined(parentHost) : undefined
  const src = lstatOrUndefined(srcHost)
  if (!src) throw new FsError('ENOENT', 'copyup', path)
  return { src, parentStats }
}

/** Renames the finished copy into place, then gives the parent back the times the link changed (as overlayfs). */
function placeCopy(tmp: string, dst: string, parentHost: string, parentStats: FileStats | undefined): void {
  mutate('rename copy-up', dst, () => fs.renameSync(tmp, dst))
  if (parentStats) restoreTimes(parentHost, parentStats)
}

/** Builds the copy of a non-directory at `tmp`; returns the number of xattrs it carried. `owner`: who creates entries in the work area. */
async function buildCopy(srcHost: string, st: FileStats, tmp: string, opts: CopyUpOptions, owner?: { uid: number; gid: number }): Promise<number> {
  let mode: number | undefined // set by the copy itself
  if (st.isFile()) {
    if (opts.truncate) fs.writeFileSync(tmp, '', { mode: 0o600, flag: 'wx' })
    else {
      await copyFileData(srcHost, tmp, st.size)
      mode = st.mode & 0o7777 // copyfile gives the copy the source's mode
    }
  } else if (st.isSymbolicLink()) {
    fs.symlinkSync(fs.readlinkSync(srcHost), tmp)
  } else {
    await mknod(tmp, st.mode, st.rdev)
  }
  return copyAttrs(srcHost, st, tmp, owner && { ...owner, mode })
}

/** Gives a host entry back the atime and mtime of `st` (a parent after an entry went in or out); never throws. */
export function restoreTimes(host: string, st: FileStats): void {
  try {
    fs.lutimesSync(host, st.atimeMs / 1000, st.mtimeMs / 1000)
  } catch {
    // Cosmetic only: the copy-up itself has succeeded.
  }
}
