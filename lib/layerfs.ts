// The core: POSIX-shaped operations over the branch stack (union-contract.md). Imports nothing
// from FUSE; the adapter and the in-process UnionView are thin translations of it.
import { toAttr, type Attr } from './attr.js'
import { type Branch } from './branches/branch.js'
import { InodeTable } from './branches/inodes.js'
import { listMerged } from './branches/readdir.js'
import type { PrefetchedDir } from './branches/prefetched.js'
import type { ReadAheadDir } from './branches/read-ahead.js'
import { BranchHit, isDirResolution, Resolver, type NameIndex, type Resolution } from './branches/resolve.js'
import { BranchStack, type BranchSpec } from './branches/stack.js'
import { copyUp, copyUpDirChain, copyUpSingle, identityOf, type CopyUpContext, type CopyUpCounts, type CopyUpOptions } from './copyup/copyup.js'
import { carryOver } from './copyup/carry-over.js'
import { LinkGroups } from './copyup/link-groups.js'
import { PathLocks } from './copyup/locks.js'
import { WorkArea } from './copyup/work-area.js'
import { errnoName, FsError, rethrow } from './errors.js'
import { createLogger } from './log.js'
import {
  fs, fstatOf, getXattr, O_ACCMODE, listXattrs, lstatOrUndefined, mknod, mutate, removeXattr, setXattr, type FileStats,
} from './fs.js'
import { baseName, isUndecodableName, isWithin, joinUnion, normalizeUnionPath, parentOf, type UnionPath } from './paths.js'
import { isReservedName } from './whiteout/encoding.js'
import { createWhiteout, dropWhiteoutsBelow, hasWhiteout, markOpaque, removeWhiteout } from './whiteout/whiteout.js'

const { O_RDONLY, O_TRUNC, O_CREAT, O_EXCL, O_RDWR, O_NOFOLLOW, O_NOCTTY, O_APPEND, O_SYNC, O_DSYNC, O_DIRECT, O_NOATIME } = fs.constants
/** Open flags a copy-up's own read-write descriptor lacks: such an open opens the copy again. */
const FLAGS_OF_THEIR_OWN = O_APPEND | O_SYNC | O_DSYNC | O_DIRECT | O_NOATIME
/** Copy-ups in flight at once while a directory tree goes up (rename of a directory). */
const TREE_COPY_CONCURRENCY = 16
const log = createLogger('layerfs:union')
/**
 * Dropped from the mode of every file created through the mount: the daemon cannot learn the
 * caller's uid (fuse-native), so the file is root's, and a setuid/setgid bit would make any
 * user's program a setuid-root one. The owner (root) may still chmod them on afterwards.
 */
const SETID_BITS = 0o6000
const S_ISUID = 0o4000
const S_ISGID = 0o2000
const CAPABILITY_XATTR = 'security.capability'

/** The setid bits a write by a caller without CAP_FSETID clears, as the VFS: setgid only with group exec. */
function setidBitsToDrop(mode: number): number {
  return mode & (S_ISUID | (mode & 0o010 ? S_ISGID : 0))
}

function dropCapabilities(host: string): void {
  if (getXattr(host, CAPABILITY_XATTR) !== undefined) removeXattr(host, CAPABILITY_XATTR)
}

/** Who creates an entry (the native transport knows the caller; fuse-native does not). */
export interface Owner {
  readonly uid: number
  readonly gid: number
}
const XATTR_CREATE = 1
const XATTR_REPLACE = 2

export interface LayerFsOptions {
  /** Resolutions kept in the LRU cache (positive and negative). */
  readonly cacheSize?: number
  /** How long a cached resolution is trusted, in ms (--revalidate); default: until invalidated. */
  readonly cacheTtlMs?: number
}

export interface StatFs {
  readonly bsize: number; readonly frsize: number; readonly blocks: number; readonly bfree: number
  readonly bavail: number; readonly files: number; readonly ffree: number; readonly namemax: number
}

interface OpenFile {
  /** The handle given out: the descriptor of the first open, kept open so its number stays ours. */
  readonly fh: number
  /** The descriptor I/O goes to: `fh`, or the re-opened file after a checkpoint. */
  fd: number
  /** Kept current across renames through the union (a checkpoint re-opens by name). */
  path: UnionPath
  readonly writable: boolean
  /** The open(2) flags, without O_CREAT/O_EXCL/O_TRUNC (to re-open after a checkpoint). */
  readonly flags: number
  /** The branch whose host file `fd` refers to. */
  branch: Branch
  /** `branch` was sealed by a checkpoint: re-open in the new upper before writing. */
  sealed: boolean
  /** A re-open in flight (concurrent writes through the fd wait for the same one). */
  reopening?: Promise<void>
  /** security.capability was checked (and dropped) since the handle first wrote. */
  capsDropped?: boolean
  /** A new file's stats from create, for the attributes of the create's reply (used once). */
  created?: FileStats
  /**
   * The kernel reads and writes this rw-branch file itself (FUSE passthrough): its writes never
   * reach layerfs, so a checkpoint carries the file over into the new rw branch (#carryOverPassedThrough).
   */
  passedThrough?: boolean
}

/** The read-only xattr naming the branch that supplies a path (docs/control.md). */
export const ORIGIN_XATTR = 'user.layerfs.origin'

/** Xattrs that belong to the branch format, never shown or settable through the union. */
function isPrivateXattr(name: string): boolean {
  return name.startsWith('trusted.overlay.') || name === ORIGIN_XATTR
}

/**
 * A union of branches. Every method takes union paths ('/a/b'), returns a value or a Promise,
 * and throws FsError with an errno code. Operations that may copy up are async; lookups are
 * synchronous on branch paths (the fast path; branch paths are never inside the mount).
 */
export class LayerFs {
  readonly stack: BranchStack
  readonly resolver: Resolver
  readonly inodes = new InodeTable()
  #upper: Branch | undefined
  #work: WorkArea | undefined
  /** Name mutations (create, unlink, rename…) hold the names they change. */
  readonly names = new PathLocks()
  #copyCtx: CopyUpContext | undefined
  readonly #copyLocks = new PathLocks()
  readonly #files = new Map<number, OpenFile>()
  readonly #uid = process.getuid?.() ?? 0
  readonly #gid = process.getgid?.() ?? 0
  readonly #umask: number
  #idle: (() => boolean) | undefined
  #queueFd: number | undefined
  /** Copy-ups done since the union was made (layerfs status). */
  readonly copyUps: CopyUpCounts = { files: 0, filesOffThread: 0, dirs: 0, others: 0 }

  constructor(branches: readonly BranchSpec[], opts: LayerFsOptions = {}) {
    this.stack = new BranchStack(branches)
    this.resolver = new Resolver(this.stack, opts.cacheSize, opts.cacheTtlMs)
    this.#umask = process.umask()
    this.#bindUpper()
    this.inodes.setRoot(identityOf(this.resolver.require('/', 'mount')))
  }

  /** The rw branch (index 0), or undefined for a read-only stack. */
  get upper(): Branch | undefined {
    return this.#upper
  }

  get work(): WorkArea | undefined {
    return this.#work
  }

  /** Files currently open through this union. */
  get openFiles(): number {
    return this.#files.size
  }

  /** Files open through this union whose host file lies in the branch rooted at `root`. */
  openFilesIn(root: string): number {
    let n = 0
    for (const f of this.#files.values()) if (f.branch.root === root) n++
    return n
  }

  /**
   * Tells the union how to learn that no other request waits for this thread (the FUSE
   * transport polls its queue); undefined: never assume so. Copy-up then does larger copies at
   * once when their data is cached (CopyUpContext.idle). `queueFd`: a descriptor that polls
   * readable while a request waits (/dev/fuse); with it, larger copies begin at once even when
   * their data is on disk, and go to a worker when a request comes (CopyUpContext.queueFd).
   */
  setIdleCheck(check: (() => boolean) | undefined, queueFd?: number): void {
    this.#idle = check
    this.#queueFd = check ? queueFd : undefined
  }

  /** Binds upper, work area and copy-up context to the stack's current top (constructor, restack). */
  #bindUpper(): void {
    const upper = this.stack.upper()
    if (upper === this.#upper && this.#copyCtx) return
    this.#upper = upper
    this.#work = upper ? new WorkArea(upper.root) : undefined
    this.#copyCtx = upper && this.#work
      ? { resolver: this.resolver, upper, work: this.#work, inodes: this.inodes, copyLocks: this.#copyLocks, linkGroups: new LinkGroups(), idle: () => this.#idle?.() === true, queueFd: () => this.#queueFd, counts: this.copyUps }
      : undefined
    this.#work?.prepare()
  }

  /**
   * Makes `specs` the stack of this live union (branch add/remove, checkpoint). Preconditions,
   * checked by the caller (lib/control/): at most one rw branch and only at index 0, no open file
   * in a removed branch, no operation in flight (the FUSE adapter's gate is held). Every cached
   * resolution is dropped; open files into a former upper are marked sealed and re-open in the
   * new upper on their next write (copying the file up first). Sync: nothing runs in between.
   * `moved`: a checkpoint renamed the upper's directory `from` to `to` (now a ro branch) and
   * made a new empty one at `from`; every branch then gets a new Branch object.
   */
  restack(specs: readonly BranchSpec[], moved?: { readonly from: string; readonly to: string }): void {
    const before = this.#upper
    this.stack.replace(specs, { fresh: moved !== undefined })
    this.resolver.cache.clear()
    this.#bindUpper()
    // Open files follow their branch to its new Branch object (a new index; a moved root).
    for (const f of this.#files.values()) {
      const wasUpper = before !== undefined && f.branch === before && this.#upper !== before
      const root = wasUpper && moved?.from === before.root ? moved.to : f.branch.root
      f.branch = this.stack.all().find((b) => b.root === root) ?? f.branch
      if (wasUpper) f.sealed = true
    }
    if (moved) this.#carryOverPassedThrough()
  }

  /**
   * After a checkpoint: the files of handles the kernel writes through itself move into the new
   * rw branch, a copy staying in the sealed layer (copyup/carry-over.ts); every handle of such a
   * file (the same inode) is then an ordinary handle of the new rw branch. When that fails, the
   * handles stay sealed (their kernel writes land in the sealed layer) and the failure is logged.
   */
  #carryOverPassedThrough(): void {
    const ctx = this.#copyCtx
    if (!ctx) return
    for (const direct of this.#files.values()) {
      if (!direct.sealed || !direct.passedThrough) continue // also: carried over with an earlier handle
      let file: FileStats | undefined
      try {
        file = carryOver(ctx, direct.branch, direct.path, direct.fd)
        if (!file) continue
      } catch (e) {
        log.warnOnce(`carry-over:${direct.path}`, 'checkpoint: %s stays in the sealed layer for its open handles: %s', direct.path, (e as Error).message)
        continue
      }
      for (const f of this.#files.values()) {
        if (!f.sealed) continue
        const st = fstatOf(f.fd)
        if (st.ino !== file.ino || st.dev !== file.dev) continue
        f.branch = this.#upper!
        f.sealed = false
      }
    }
  }

  // ---- lookup and attributes ------------------------------------------------------------

  /** The merged attributes of `p`. ENOENT, ENOTDIR. */
  getattr(p: UnionPath): Attr {
    const res = this.resolver.require(p, 'stat')
    const st = lstatOrUndefined(res.hits[0]!.host)
    if (!st) {
      // Changed underneath (or a racing rename): look once more from scratch.
      this.resolver.cache.invalidate(p)
      const again = this.resolver.require(p, 'stat')
      const st2 = lstatOrUndefined(again.hits[0]!.host)
      if (!st2) throw new FsError('ENOENT', 'stat', p) // removed underneath while we looked
      return this.#attrOf(again, st2)
    }
    return this.#attrOf(res, st)
  }

  /** getattr for the lookup fast path: undefined instead of a thrown ENOENT (no Error built). */
  tryGetattr(p: UnionPath): Attr | undefined {
    const res = this.resolver.resolve(p)
    if (!res) return undefined
    const st = this.resolver.takeFresh(res) ?? lstatOrUndefined(res.hits[0]!.host)
    return st ? this.#attrOf(res, st) : this.getattr(p)
  }

  #attrOf(res: Resolution, st: FileStats): Attr {
    const ino = this.inodes.numberFor(identityOf(res))
    // A merged directory's link count is not the sum of its branches: report 1, the
    // "unknown" value that makes find(1) and fts skip their leaf optimisation.
    const nlink = st.isDirectory() && res.hits.length > 1 ? 1 : st.nlink
    return toAttr(st, ino, nlink)
  }

  /** Attributes of an open file: from its descriptor (it may have been unlinked meanwhile). */
  fgetattr(p: UnionPath, fh: number): Attr {
    const f = this.#files.get(fh)
    if (!f) return this.getattr(p)
    if (f.sealed) this.#followCopy(f)
    const st = f.created ?? fstatOf(f.fd)
    f.created = undefined
    const res = this.resolver.resolve(p)
    const ino = res ? this.inodes.numberFor(identityOf(res)) : this.inodes.numberFor(st)
    return toAttr(st, ino)
  }

  /**
   * The branch directories that make up the merged directory `p`, top first ([] when `p` is not
   * a directory), for the read-ahead: what it reads of a read-only one no listing has read yet
   * is kept for the listing that follows (Resolver.adoptPrefetched). From the cache when `p` was
   * just resolved (a listing's entries are).
   */
  readAheadDirsOf(p: UnionPath): ReadAheadDir[] {
    const res = this.resolver.resolve(p)
    if (!res || !isDirResolution(res)) return []
    return res.hits.map((h) => Resolver.wouldAdopt(h)
      ? { host: h.host, adopt: (read: PrefetchedDir) => this.resolver.adoptPrefetched(h, read) }
      : { host: h.host })
  }

  /** The visible names of directory `p`, with '.' and '..'. ENOENT, ENOTDIR. */
  readdir(p: UnionPath): string[] {
    const res = this.resolver.require(p, 'scandir')
    if (!isDirResolution(res)) throw new FsError('ENOTDIR', 'scandir', p)
    const onNames = (hit: BranchHit, names: NameIndex): void => this.resolver.seedNames(hit, names)
    try {
      return ['.', '..', ...listMerged(res, onNames)]
    } catch (e) {
      // A branch directory vanished underneath (changed outside the mount): resolve afresh
      // once. ENOENT is no answer: glibc reads it from getdents as end-of-directory, so the
      // caller would see an empty listing. A vanished branch root re-resolves to EIO.
      if (errnoName(e) !== 'ENOENT') rethrow(e, 'scandir', p)
      this.resolver.cache.invalidate(p)
      const again = this.resolver.require(p, 'scandir')
      if (!isDirResolution(again)) throw new FsError('ENOTDIR', 'scandir', p)
      return this.#guard('scandir', p, () => ['.', '..', ...listMerged(again, onNames)])
    }
  }

  /** EINVAL when `p` is not a symlink. */
  readlink(p: UnionPath): string {
    const res = this.resolver.require(p, 'readlink')
    if (!res.hits[0]!.stats.isSymbolicLink()) throw new FsError('EINVAL', 'readlink', p)
    return this.#guard('readlink', p, () => fs.readlinkSync(res.hits[0]!.host))
  }

  /** Existence check; write access needs a rw branch (EROFS). Permissions: default_permissions. */
  access(p: UnionPath, mode: number): void {
    this.resolver.require(p, 'access')
    if (mode & fs.constants.W_OK && !this.upper) throw new FsError('EROFS', 'access', p)
  }

  /** The rw branch's file system (the top branch's when there is none). */
  statfs(): StatFs {
    const s = fs.statfsSync(this.stack.at(0).root)
    return {
      bsize: s.bsize, frsize: s.bsize, blocks: s.blocks, bfree: s.bfree, bavail: s.bavail,
      files: s.files, ffree: s.ffree, namemax: 255,
    }
  }

  // ---- files -------------------------------------------------------------------------------

  /**
   * Opens `p`; returns a handle for read/write/release, or a promise of it when a copy-up has to
   * wait (a large file copied off the JS thread, a parent dir or the same file being copied up).
   * Opening for writing (or O_TRUNC) copies a lower file up first; read-only opens never do.
   * EROFS without a rw branch, EISDIR for a directory opened for writing.
   */
  open(p: UnionPath, flags: number): number | Promise<number> {
    const res = this.resolver.require(p, 'open')
    const writes = (flags & O_ACCMODE) !== O_RDONLY || (flags & O_TRUNC) !== 0
    const hostFlags = (flags & ~(O_CREAT | O_EXCL | O_NOCTTY)) | O_NOFOLLOW
    if (!writes) return this.#openHost(p, res.hits[0]!.host, hostFlags, false, res.hits[0]!.branch)
    if (isDirResolution(res)) throw new FsError('EISDIR', 'open', p)
    // A copy made by this open without xattrs has no capability for the first write to drop.
    let capsDropped = false
    const copy: CopyUpOptions = { truncate: (flags & O_TRUNC) !== 0, onCopied: (c) => { capsDropped = c.xattrs === 0 } }
    const ctx = this.#copyCtx
    if (!ctx) return Promise.reject(new FsError('EROFS', 'open', p))
    // The common case, a single file at once (or on a worker when large, when a request waits,
    // or when its data is on disk and the queue cannot be watched): the copy's own descriptor
    // becomes the handle (one open less).
    const single = copyUpSingle(ctx, p, copy, (flags & FLAGS_OF_THEIR_OWN) === 0)
    if (single instanceof Promise) return single.then((c) => this.#openCopy(p, c, hostFlags, capsDropped))
    if (single) return this.#openCopy(p, single, hostFlags, capsDropped)
    // copyUpSingle does not apply: the locked walk (not #copyUp, which would ask it again).
    return copyUp(ctx, p, copy).then((host) => this.#openHost(p, host, hostFlags, true, this.#upper!, capsDropped))
  }

  /** The handle of a file just copied up: the copy-up's own descriptor when it kept one. */
  #openCopy(p: UnionPath, c: { host: string; fd: number }, flags: number, capsDropped: boolean): number {
    if (c.fd < 0) return this.#openHost(p, c.host, flags, true, this.#upper!, capsDropped)
    this.#files.set(c.fd, { fh: c.fd, fd: c.fd, path: p, writable: true, flags: flags & ~O_TRUNC, branch: this.#upper!, sealed: false, capsDropped })
    return c.fd
  }

  #openHost(p: UnionPath, host: string, flags: number, writable: boolean, branch: Branch, capsDropped = false): number {
    const fd = this.#guard('open', p, () => fs.openSync(host, flags))
    this.#files.set(fd, { fh: fd, fd, path: p, writable, flags: flags & ~O_TRUNC, branch, sealed: false, capsDropped })
    return fd
  }

  /** Creates and opens a regular file. EEXIST is never returned for a lower-only file: it is opened for writing. */
  async create(p: UnionPath, mode: number, flags = O_RDWR, owner?: Owner): Promise<number> {
    const existing = this.resolver.resolve(p)
    if (existing) {
      if (flags & O_EXCL) throw new FsError('EEXIST', 'open', p)
      return this.open(p, (flags & ~O_CREAT) | (flags & O_ACCMODE ? 0 : O_RDWR))
    }
    if (!owner) mode &= ~SETID_BITS
    let fd = -1
    await this.#createEntry(p, 'open', (host) => {
      fd = fs.openSync(host, O_CREAT | O_EXCL | O_RDWR | O_NOFOLLOW, mode & 0o7777)
      this.#applyMode(host, mode)
      this.#own(host, owner, mode)
    })
    // What a lookup finds now: the new file on top, hiding every branch below. Saves the
    // kernel's next request (the create's own attributes, a GETATTR) a lookup of its own.
    const upper = this.#upper!
    const created = fstatOf(fd)
    this.resolver.remember({ path: p, hits: [new BranchHit(upper, p, created)], opaque: false })
    // A new file has no capability to drop.
    this.#files.set(fd, { fh: fd, fd, path: p, writable: true, flags: O_RDWR | O_NOFOLLOW, branch: upper, sealed: false, capsDropped: true, created })
    return fd
  }

  #handle(fh: number, syscall: string): OpenFile {
    const f = this.#files.get(fh)
    if (!f) throw new FsError('EBADF', syscall)
    return f
  }

  /** The branch file descriptor behind handle `fh` (FUSE passthrough hands it to the kernel). */
  hostFd(fh: number): number {
    return this.#handle(fh, 'open').fd
  }

  /**
   * Whether handle `fh` is on a file of the rw branch: opened for writing, or a reader of a file
   * that lives there (such a reader follows the file across a checkpoint, see #followCopy).
   */
  onRwBranch(fh: number): boolean {
    const f = this.#handle(fh, 'open')
    return f.writable || f.branch.writable
  }

  /** Whether handle `fh` was opened for writing. */
  writable(fh: number): boolean {
    return this.#handle(fh, 'open').writable
  }

  /**
   * Whether the kernel may write handle `fh`'s rw-branch file itself (FUSE passthrough) with
   * nothing lost: a regular file of the rw branch, neither hard-linked (a checkpoint carries one
   * name over, #carryOverPassedThrough) nor setuid/setgid/capable (a write must drop those, which the kernel
   * leaves to us: dropPrivileges). Decided at open: a chmod u+s by root while the file is open
   * stays, as it would for root's own writes (only root's writers pass through: session.ts).
   */
  mayPassThrough(fh: number): boolean {
    const f = this.#handle(fh, 'open')
    if (f.branch !== this.#upper || f.sealed) return false
    const st = fstatOf(f.fd)
    if (!st.isFile() || st.nlink !== 1 || (st.mode & SETID_BITS) !== 0) return false
    if (!f.capsDropped) {
      const named = lstatOrUndefined(f.branch.host(f.path))
      if (named?.ino !== st.ino || named.dev !== st.dev) return false
      if (getXattr(f.branch.host(f.path), CAPABILITY_XATTR) !== undefined) return false
      f.capsDropped = true
    }
    return true
  }

  /** Handle `fh` was handed to the kernel (FUSE passthrough) by the transport. */
  passedThrough(fh: number): void {
    this.#handle(fh, 'open').passedThrough = true
  }

  read(fh: number, buf: Buffer, len: number, pos: number): number {
    const f = this.#handle(fh, 'read')
    if (f.sealed) this.#followCopy(f)
    return this.#guard('read', f.path, () => fs.readSync(f.fd, buf, 0, len, pos))
  }

  /** A number, or a Promise only for the first write through a handle sealed by a checkpoint. */
  write(fh: number, buf: Buffer, len: number, pos: number): number | Promise<number> {
    const f = this.#handle(fh, 'write')
    if (!f.writable) throw new FsError('EBADF', 'write', f.path)
    if (f.sealed) return this.#reopenInUpper(f).then(() => this.write(fh, buf, len, pos))
    return this.#guard('write', f.path, () => fs.writeSync(f.fd, buf, 0, len, pos))
  }

  /**
   * The host descriptors for a copy between two open handles (FUSE copy_file_range): the
   * source follows a copy made after a checkpoint, the destination is moved into the new upper
   * first if it was sealed, exactly as for `read` and `write`. EBADF when `fhOut` is read-only.
   */
  copyTargets(fhIn: number, fhOut: number): [number, number] | Promise<[number, number]> {
    const src = this.#handle(fhIn, 'copy_file_range')
    const dst = this.#handle(fhOut, 'copy_file_range')
    if (!dst.writable) throw new FsError('EBADF', 'copy_file_range', dst.path)
    if (src.sealed) this.#followCopy(src)
    if (dst.sealed) return this.#reopenInUpper(dst).then(() => this.copyTargets(fhIn, fhOut))
    return [src.fd, dst.fd]
  }

  ftruncate(fh: number, size: number): void | Promise<void> {
    const f = this.#handle(fh, 'ftruncate')
    if (!f.writable) throw new FsError('EINVAL', 'ftruncate', f.path)
    if (f.sealed) return this.#reopenInUpper(f).then(() => this.ftruncate(fh, size))
    this.#guard('ftruncate', f.path, () => fs.ftruncateSync(f.fd, size))
  }

  /**
   * A handle into a branch sealed by a checkpoint, before a write: copies its file up into the
   * new upper (once, whichever handle writes first) and moves the handle there, so no write ever
   * lands in a ro branch and none is lost. EIO when the handle's file is no longer reachable by
   * its name (docs/control.md "Checkpoint").
   */
  #reopenInUpper(f: OpenFile): Promise<void> {
    f.reopening ??= (async () => {
      this.#checkSameFile(f, 'write')
      const host = await this.#copyUp(f.path, {}, 'write')
      this.#swapFd(f, host, this.#upper!)
    })().finally(() => { f.reopening = undefined })
    return f.reopening
  }

  /** A sealed handle whose file another handle has copied up meanwhile: follow it (sync). */
  #followCopy(f: OpenFile): void {
    const top = this.resolver.resolve(f.path)?.hits[0]
    if (!top || top.branch !== this.#upper || f.reopening) return
    try {
      this.#checkSameFile(f, 'read')
    } catch {
      return // not the same file any more: keep reading what this handle had open
    }
    this.#swapFd(f, top.host, top.branch)
  }

  #checkSameFile(f: OpenFile, syscall: string): void {
    const st = fstatOf(f.fd)
    const named = lstatOrUndefined(f.branch.host(f.path))
    if (!named || named.ino !== st.ino || named.dev !== st.dev) throw new FsError('EIO', syscall, f.path)
  }

  #swapFd(f: OpenFile, host: string, branch: Branch): void {
    const fd = this.#guard('open', f.path, () => fs.openSync(host, f.flags))
    const old = f.fd
    f.fd = fd
    f.branch = branch
    f.sealed = false
    if (old !== f.fh) fs.closeSync(old)
  }

  /**
   * Privileges a write or truncation removes, when the kernel leaves that to us (the native
   * transport's FUSE_HANDLE_KILLPRIV_V2), after the write went through handle `fh`: setuid,
   * and setgid with group execute, when `suidgid` (the kernel sets it for writers without
   * CAP_FSETID); security.capability always (checked once per handle). True when the mode
   * changed (the kernel's cached attributes are then stale).
   */
  dropPrivileges(fh: number, suidgid: boolean): boolean {
    const f = this.#handle(fh, 'write')
    if (!suidgid && f.capsDropped) return false
    return this.#guard('write', f.path, () => {
      const st = fstatOf(f.fd)
      const drop = suidgid ? setidBitsToDrop(st.mode) : 0
      if (drop) fs.fchmodSync(f.fd, st.mode & 0o7777 & ~drop)
      if (!f.capsDropped) {
        f.capsDropped = true
        // xattrs by name: only while the name still leads to this very file.
        const host = f.branch.host(f.path)
        const named = lstatOrUndefined(host)
        if (named?.ino === st.ino && named.dev === st.dev) dropCapabilities(host)
      }
      return drop !== 0
    })
  }

  /** dropPrivileges for a truncation by name (after `truncate`, which copied `p` up). */
  dropPrivilegesAt(p: UnionPath, suidgid: boolean): void {
    const host = this.resolver.require(p, 'truncate').hits[0]!.host
    this.#guard('truncate', p, () => {
      const st = fs.lstatSync(host)
      if (!st.isFile()) return
      const drop = suidgid ? setidBitsToDrop(st.mode) : 0
      if (drop) fs.chmodSync(host, st.mode & 0o7777 & ~drop)
      dropCapabilities(host)
    })
  }

  fsync(fh: number, datasync: boolean): void {
    const f = this.#handle(fh, 'fsync')
    this.#guard('fsync', f.path, () => (datasync ? fs.fdatasyncSync(f.fd) : fs.fsyncSync(f.fd)))
  }

  /** fsync of a directory: syncs its rw-branch copy, if any. */
  fsyncdir(p: UnionPath): void {
    const res = this.resolver.require(p, 'fsync')
    const top = res.hits[0]!
    if (top.branch !== this.upper) return
    this.#guard('fsync', p, () => {
      const fd = fs.openSync(top.host, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY)
      try { fs.fsyncSync(fd) } finally { fs.closeSync(fd) }
    })
  }

  release(fh: number): void {
    const f = this.#files.get(fh)
    if (!f) return
    this.#files.delete(fh)
    if (f.fd !== f.fh) fs.closeSync(f.fh)
    this.#guard('close', f.path, () => fs.closeSync(f.fd))
  }

  /** Closes every open handle (unmount). */
  releaseAll(): void {
    for (const fh of [...this.#files.keys()]) this.release(fh)
  }

  /** After the unmount: closes every handle and removes the work area from the rw branch. */
  close(): void {
    this.releaseAll()
    try {
      this.work?.remove()
    } catch {
      // Harmless: it is emptied again at the next mount and never visible.
    }
  }

  // ---- attribute changes (copy-up first) ----------------------------------------------------

  async truncate(p: UnionPath, size: number): Promise<void> {
    const res = this.resolver.require(p, 'truncate')
    if (isDirResolution(res)) throw new FsError('EISDIR', 'truncate', p)
    const host = await this.#copyUp(p, { truncate: size === 0 }, 'truncate')
    this.#guard('truncate', p, () => fs.truncateSync(host, size))
  }

  async chmod(p: UnionPath, mode: number): Promise<void> {
    const res = this.resolver.require(p, 'chmod')
    if (res.hits[0]!.stats.isSymbolicLink()) throw new FsError('ENOTSUP', 'chmod', p)
    const host = await this.#copyUp(p, {}, 'chmod')
    this.#guard('chmod', p, () => fs.chmodSync(host, mode & 0o7777))
  }

  /** uid/gid of -1 (or 2^32-1) leave that id unchanged. */
  async chown(p: UnionPath, uid: number, gid: number): Promise<void> {
    this.resolver.require(p, 'chown')
    const host = await this.#copyUp(p, {}, 'chown')
    this.#guard('chown', p, () => fs.lchownSync(host, uid >>> 0 === 0xffffffff ? -1 : uid, gid >>> 0 === 0xffffffff ? -1 : gid))
  }

  /** Times in ms since the epoch; `undefined` leaves that time unchanged (UTIME_OMIT). */
  async utimens(p: UnionPath, atimeMs: number | undefined, mtimeMs: number | undefined): Promise<void> {
    this.resolver.require(p, 'utime')
    const host = await this.#copyUp(p, {}, 'utime')
    this.#guard('utime', p, () => {
      // A time left as it is (UTIME_OMIT) is read first; tar and cp -p set both.
      const st = atimeMs === undefined || mtimeMs === undefined ? fs.lstatSync(host) : undefined
      fs.lutimesSync(host, (atimeMs ?? st!.atimeMs) / 1000, (mtimeMs ?? st!.mtimeMs) / 1000)
    })
  }

  // ---- xattrs -------------------------------------------------------------------------------

  /** The value of xattr `name`; ENODATA when absent. */
  getxattr(p: UnionPath, name: string): Buffer {
    const v = this.tryGetxattr(p, name)
    if (v === undefined) throw new FsError('ENODATA', 'getxattr', p)
    return v
  }

  /**
   * getxattr without the ENODATA error: undefined when `p` has no such attribute (the kernel
   * asks for security.capability before every write).
   */
  tryGetxattr(p: UnionPath, name: string): Buffer | undefined {
    const res = this.resolver.require(p, 'getxattr')
    if (name === ORIGIN_XATTR) return Buffer.from(originOf(res))
    if (isPrivateXattr(name)) return undefined
    const v = this.#guard('getxattr', p, () => getXattr(res.hits[0]!.host, name))
    if (v === undefined) return undefined
    return v
  }

  listxattr(p: UnionPath): string[] {
    const res = this.resolver.require(p, 'listxattr')
    return this.#guard('listxattr', p, () => listXattrs(res.hits[0]!.host)).filter((n) => !isPrivateXattr(n))
  }

  /** flags: XATTR_CREATE (1) → EEXIST if present, XATTR_REPLACE (2) → ENODATA if absent. */
  async setxattr(p: UnionPath, name: string, value: Uint8Array, flags = 0): Promise<void> {
    const res = this.resolver.require(p, 'setxattr')
    if (isPrivateXattr(name)) throw new FsError('EPERM', 'setxattr', p)
    if (flags & (XATTR_CREATE | XATTR_REPLACE)) {
      const present = this.#guard('getxattr', p, () => getXattr(res.hits[0]!.host, name)) !== undefined
      if (flags & XATTR_CREATE && present) throw new FsError('EEXIST', 'setxattr', p)
      if (flags & XATTR_REPLACE && !present) throw new FsError('ENODATA', 'setxattr', p)
    }
    const host = await this.#copyUp(p, {}, 'setxattr')
    this.#guard('setxattr', p, () => setXattr(host, name, value))
  }

  async removexattr(p: UnionPath, name: string): Promise<void> {
    if (name === ORIGIN_XATTR) throw new FsError('EPERM', 'removexattr', p)
    this.getxattr(p, name) // ENODATA before any copy-up
    const host = await this.#copyUp(p, {}, 'removexattr')
    this.#guard('removexattr', p, () => removeXattr(host, name))
  }

  // ---- names: create ----------------------------------------------------------------------

  async mkdir(p: UnionPath, mode: number, owner?: Owner): Promise<void> {
    await this.#createEntry(p, 'mkdir', (host, overWhiteout) => {
      if (!overWhiteout) {
        fs.mkdirSync(host, { mode: mode & 0o7777 })
        this.#applyMode(host, mode)
        this.#own(host, owner)
        return
      }
      // The name was deleted from a lower branch: the new dir is opaque, built in the work area
      // so it never appears without its marker.
      const tmp = this.work!.tempPath('mkdir')
      try {
        fs.mkdirSync(tmp, { mode: 0o700 })
        markOpaque(tmp)
        fs.chmodSync(tmp, mode & 0o7777)
        fs.renameSync(tmp, host)
        this.#own(host, owner)
      } catch (e) {
        this.work!.discard(tmp)
        throw e
      }
    })
  }

  async symlink(target: string, p: UnionPath, owner?: Owner): Promise<void> {
    await this.#createEntry(p, 'symlink', (host) => {
      fs.symlinkSync(target, host)
      this.#own(host, owner)
    })
  }

  async mknod(p: UnionPath, mode: number, rdev: number, owner?: Owner): Promise<void> {
    if (!owner) mode &= ~SETID_BITS
    await this.#createEntry(p, 'mknod', async (host) => {
      await mknod(host, mode & ~SETID_BITS, rdev)
      this.#applyMode(host, mode & ~SETID_BITS)
      this.#own(host, owner, mode)
    })
  }

  /** Hard link: copies `src` up once, then links in the rw branch. EPERM for directories. */
  async link(src: UnionPath, dst: UnionPath): Promise<void> {
    const res = this.resolver.require(src, 'link')
    if (isDirResolution(res)) throw new FsError('EPERM', 'link', src)
    // Refuse a bad new name before the copy-up: a failed link must leave the rw branch as it was.
    if (isReservedName(baseName(dst))) throw new FsError('EINVAL', 'link', dst)
    if (isUndecodableName(baseName(dst))) throw new FsError('EILSEQ', 'link', dst)
    if (this.resolver.resolve(dst)) throw new FsError('EEXIST', 'link', dst)
    const srcHost = await this.#copyUp(src, {}, 'link')
    await this.#createEntry(dst, 'link', (host) => fs.linkSync(srcHost, host))
    this.resolver.cache.invalidate(src)
  }

  /**
   * Creates the name `p` in the rw branch with `make(host, overWhiteout)`: parents are copied
   * up, then `make` runs, then a whiteout of the name is removed (an entry beside its own
   * whiteout wins, so the name never flickers). EROFS, EINVAL (reserved name), EEXIST, ENOENT/ENOTDIR (parent).
   */
  async #createEntry(p: UnionPath, syscall: string, make: (host: string, overWhiteout: boolean) => void | Promise<void>): Promise<void> {
    const upper = this.#requireUpper(syscall, p)
    const name = baseName(p)
    if (p === '/' ) throw new FsError('EEXIST', syscall, p)
    if (isReservedName(name)) throw new FsError('EINVAL', syscall, p)
    // Not UTF-8: the name we were given is not the caller's (paths.ts), refuse it.
    if (isUndecodableName(name)) throw new FsError('EILSEQ', syscall, p)
    await this.names.run(p, async () => {
      if (this.resolver.resolve(p)) throw new FsError('EEXIST', syscall, p)
      const parent = this.resolver.require(parentOf(p), syscall)
      if (!isDirResolution(parent)) throw new FsError('ENOTDIR', syscall, p)
      const parentHost = await this.#copyUpDirs(parentOf(p), syscall)
      const overWhiteout = hasWhiteout(parentHost, name)
      const host = upper.host(p)
      try {
        await mutate(syscall, host, () => make(host, overWhiteout))
        if (overWhiteout) removeWhiteout(parentHost, name)
      } catch (e) {
        rethrow(e, syscall, p)
      } finally {
        // Nothing below a new name can be cached: negative lookups under a missing parent
        // are never cached (Resolver.resolve), so the name alone is enough.
        this.resolver.cache.invalidate(p)
      }
    })
  }

  /**
   * A new entry belongs to its creator, as on any file system: uid always, gid unless the
   * parent directory is setgid (the host file system gave it the parent's group). chown clears
   * setid bits, so those asked for at creation are set afterwards. Without an owner (the
   * fuse-native transport cannot tell who asked) the entry stays the daemon's.
   */
  #own(host: string, owner: Owner | undefined, mode?: number): void {
    if (!owner) return
    // The daemon's own user and group (most creates, when root runs the tools) already own it,
    // or the setgid parent's group does, as it should: nothing to stat or chown then.
    if (owner.uid !== this.#uid || owner.gid !== this.#gid) {
      const parentSetgid = (fs.statSync(host.slice(0, host.lastIndexOf('/')) || '/').mode & S_ISGID) !== 0
      const gid = parentSetgid ? -1 : owner.gid
      if (owner.uid !== this.#uid || (gid !== -1 && gid !== this.#gid)) fs.lchownSync(host, owner.uid, gid)
    }
    if (mode !== undefined && mode & SETID_BITS) fs.chmodSync(host, mode & 0o7777)
  }

  /** The kernel applied the caller's umask already; undo the daemon's own, if it has one. */
  #applyMode(host: string, mode: number): void {
    if (this.#umask & mode & 0o7777) fs.chmodSync(host, mode & 0o7777)
  }

  // ---- names: delete --------------------------------------------------------------------------

  /** Removes a non-directory; whites it out when a lower branch still supplies it. EISDIR for dirs. */
  async unlink(p: UnionPath): Promise<void> {
    this.#requireUpper('unlink', p)
    await this.names.run(p, async () => {
      const res = this.resolver.require(p, 'unlink')
      if (isDirResolution(res)) throw new FsError('EISDIR', 'unlink', p)
      await this.#removeName(p, res, 'unlink')
    })
  }

  /** Removes a directory that is empty in the merged view (whiteouts below do not count). */
  async rmdir(p: UnionPath): Promise<void> {
    this.#requireUpper('rmdir', p)
    if (p === '/') throw new FsError('EBUSY', 'rmdir', p)
    await this.names.run(p, async () => {
      const res = this.resolver.require(p, 'rmdir')
      if (!isDirResolution(res)) throw new FsError('ENOTDIR', 'rmdir', p)
      if (listMerged(res).length > 0) throw new FsError('ENOTEMPTY', 'rmdir', p)
      await this.#removeName(p, res, 'rmdir')
    })
  }

  /**
   * Makes `p` disappear from the merged view. Order keeps every step consistent on disk:
   * (1) the whiteout first (beside the rw entry, the entry still wins); (2) then the rw entry
   * goes (a directory is first moved into the work area, so it vanishes in one rename).
   * Caller holds the name lock of `p`.
   */
  async #removeName(p: UnionPath, res: Resolution, syscall: string): Promise<void> {
    const upper = this.upper!
    const top = res.hits[0]!
    try {
      const needsWhiteout = this.resolver.lowerSupplies(p)
      if (top.branch === upper) {
        if (needsWhiteout) createWhiteout(upper.host(parentOf(p)), baseName(p))
        if (isDirResolution(res)) this.#discardUpperDir(top.host)
        else {
          const st = lstatOrUndefined(top.host)
          mutate('unlink', top.host, () => fs.unlinkSync(top.host))
          // Its last name is gone: drop its number, so the inode table does not grow with every
          // file ever deleted and a reused host inode does not inherit it.
          if (st && st.nlink <= 1) this.inodes.forget(st)
        }
      } else {
        const parentHost = await this.#copyUpDirs(parentOf(p), syscall)
        createWhiteout(parentHost, baseName(p))
      }
    } catch (e) {
      rethrow(e, syscall, p)
    } finally {
      this.resolver.cache.invalidate(p, { subtree: isDirResolution(res) })
    }
  }

  /**
   * Moves a rw-branch directory into the work area in one rename, then deletes it there off the
   * JS thread (it may hold thousands of whiteouts).
   */
  #discardUpperDir(host: string): void {
    const tmp = this.work!.tempPath('rmdir')
    mutate('rename to work', host, () => fs.renameSync(host, tmp))
    this.work!.discardLater(tmp)
  }

  // ---- names: rename --------------------------------------------------------------------------

  /**
   * rename(2) through the union. Files and symlinks: copy-up, rename in the rw branch, a
   * whiteout for the old name when a lower branch still has it. Directories with lower content
   * are copied (merged view, data by reflink/copy_file_range) into the work area, made opaque,
   * and renamed into place (union-contract.md "Rename": no EXDEV).
   */
  async rename(src: UnionPath, dst: UnionPath): Promise<void> {
    const upper = this.#requireUpper('rename', src)
    if (isReservedName(baseName(dst))) throw new FsError('EINVAL', 'rename', dst)
    if (isUndecodableName(baseName(dst))) throw new FsError('EILSEQ', 'rename', dst)
    if (src === '/' || dst === '/') throw new FsError('EBUSY', 'rename', src)
    if (src === dst) { this.resolver.require(src, 'rename'); return }
    if (isWithin(dst, src)) throw new FsError('EINVAL', 'rename', dst)
    await this.names.runAll([src, dst], async () => {
      const sres = this.resolver.require(src, 'rename')
      const dres = this.resolver.resolve(dst)
      const srcIsDir = isDirResolution(sres)
      if (dres) {
        const dstIsDir = isDirResolution(dres)
        if (srcIsDir && !dstIsDir) throw new FsError('ENOTDIR', 'rename', dst)
        if (!srcIsDir && dstIsDir) throw new FsError('EISDIR', 'rename', dst)
        if (dstIsDir && listMerged(dres).length > 0) throw new FsError('ENOTEMPTY', 'rename', dst)
      }
      const dstParent = this.resolver.require(parentOf(dst), 'rename')
      if (!isDirResolution(dstParent)) throw new FsError('ENOTDIR', 'rename', dst)
      try {
        const dstParentHost = await this.#copyUpDirs(parentOf(dst), 'rename')
        const dstHost = upper.host(dst)
        const dstName = baseName(dst)
        let srcHost: string
        if (srcIsDir) {
          // (1) Everything visible under the directory goes up, entry by entry, each copy
          // atomic: the merged view does not change while this runs, and a crash leaves a
          // valid upper. (2) Then it is made opaque when lower content is involved, which
          // changes nothing visible either. (3) One rename(2) then moves it: atomic.
          srcHost = await this.#copyUpTree(sres)
          const landsOnLower = hasWhiteout(dstParentHost, dstName) || this.#lowerHasName(dst)
          if (sres.hits.some((h) => h.branch !== upper) || landsOnLower) {
            markOpaque(srcHost)
            dropWhiteoutsBelow(srcHost)
          }
        } else {
          srcHost = await this.#copyUp(src, { parentChangesNext: true }, 'rename')
        }
        if (dres && isDirResolution(dres) && dres.hits[0]!.branch === upper) this.#discardUpperDir(dres.hits[0]!.host)
        // The whiteout goes first: the rw entry beside it still wins until the rename. A source
        // that resolved to a lower entry needs one; an upper one only if it hid a lower entry.
        const needsWhiteout = sres.hits[0]!.branch !== upper || this.resolver.lowerSupplies(src)
        if (needsWhiteout) createWhiteout(upper.host(parentOf(src)), baseName(src))
        mutate('rename', dstHost, () => fs.renameSync(srcHost, dstHost))
        removeWhiteout(dstParentHost, dstName)
      } catch (e) {
        rethrow(e, 'rename', src)
      } finally {
        this.#renameOpenFiles(src, dst)
        // Subtrees only move with a directory; a file rename touches two names.
        this.resolver.cache.invalidate(src, { subtree: srcIsDir })
        this.resolver.cache.invalidate(dst, { subtree: srcIsDir })
      }
    })
  }

  /** Open handles follow their file's name (a checkpoint re-opens them by name). */
  #renameOpenFiles(src: UnionPath, dst: UnionPath): void {
    for (const f of this.#files.values()) {
      if (isWithin(f.path, src)) f.path = (dst + f.path.slice(src.length)) as UnionPath
    }
  }

  /** Whether any lower branch holds an entry named like `p` in its parent's merged dirs. */
  #lowerHasName(p: UnionPath): boolean {
    const parent = this.resolver.resolve(parentOf(p))
    if (!parent) return false
    return parent.hits.some((h) => !h.branch.writable && lstatOrUndefined(h.host + '/' + baseName(p)) !== undefined)
  }

  /**
   * Copies up directory `res` and everything visible below it; returns its upper host path.
   * Data goes by reflink/copy_file_range; hard-link groups stay groups; every directory keeps
   * its inode number (its upper copy is aliased to its identity).
   */
  async #copyUpTree(res: Resolution): Promise<string> {
    const host = await this.#copyUpDirs(res.path, 'rename')
    this.inodes.alias(fs.lstatSync(host), identityOf(res))
    // Files go up several at a time: each copy waits on the thread pool, not on the JS thread.
    const files: UnionPath[] = []
    for (const name of listMerged(res)) {
      const child = this.resolver.require(joinUnion(res.path, name), 'rename')
      if (isDirResolution(child)) await this.#copyUpTree(child)
      else if (child.hits[0]!.branch !== this.upper) files.push(child.path)
    }
    for (let i = 0; i < files.length; i += TREE_COPY_CONCURRENCY) {
      await Promise.all(files.slice(i, i + TREE_COPY_CONCURRENCY).map((f) => this.#copyUp(f, {}, 'rename')))
    }
    return host
  }

  // ---- helpers ------------------------------------------------------------------------------

  #requireUpper(syscall: string, p: UnionPath): Branch {
    if (!this.upper) throw new FsError('EROFS', syscall, p)
    return this.upper
  }

  async #copyUp(p: UnionPath, opts: CopyUpOptions, syscall: string): Promise<string> {
    if (!this.#copyCtx) throw new FsError('EROFS', syscall, p)
    // A single file at once (small, or cached with nothing waiting), or on a worker; else the locked walk.
    const single = copyUpSingle(this.#copyCtx, p, opts, false)
    return single ? (await single).host : copyUp(this.#copyCtx, p, opts)
  }

  /** The host path of directory `dir` in the rw branch, copied up (with its parents) first if needed. */
  #copyUpDirs(dir: UnionPath, syscall: string): string | Promise<string> {
    if (!this.#copyCtx) return Promise.reject(new FsError('EROFS', syscall, dir))
    return copyUpDirChain(this.#copyCtx, dir) // at once when already up (callers await either)
  }

  /** Runs branch I/O and re-throws its failure with the union path (code and cause kept). */
  #guard<T>(syscall: string, p: UnionPath | undefined, fn: () => T): T {
    try {
      return fn()
    } catch (e) {
      rethrow(e, syscall, p ?? '')
    }
  }
}

/**
 * The value of `user.layerfs.origin`: "INDEX:MODE:ROOT" of the branch that supplies the path
 * (a merged directory: its top-most branch), e.g. "1:ro:/srv/base".
 */
export function originOf(res: Resolution): string {
  const b = res.hits[0]!.branch
  return `${b.index}:${b.mode}:${b.root}`
}

/** Normalizes a path given by a user of the API ('a/b', '/a/b/') to a union path. */
export function toUnionPath(p: string, syscall?: string): UnionPath {
  return normalizeUnionPath(p.startsWith('/') ? p : '/' + p, syscall)
}
