// The only importer of node:fs and the xattr binding: synchronous calls on branch paths for the
// hot path, off-thread copies for copy-up, and the few calls Node lacks (mknod). Never pass a
// path inside the mount to anything here (style guide §4.4).
import * as fs from 'node:fs'
import { execFile } from 'node:child_process'
import { constants as osConstants } from 'node:os'
import * as xattr from '@napi-rs/xattr'
import { createLogger } from './log.js'
import { nativeAddon } from './native.js'

export { fs }
/** The access-mode bits of open(2) flags (Node's fs.constants has no O_ACCMODE). */
export const O_ACCMODE = 3
export type Stats = fs.Stats
const log = createLogger('layerfs:fs')

/** What layerfs reads of an lstat: fs.Stats's numbers and type tests, without its Dates. */
export type FileStats = Pick<fs.Stats, 'mode' | 'nlink' | 'uid' | 'gid' | 'rdev' | 'size' | 'blksize' | 'blocks' |
  'ino' | 'dev' | 'atimeMs' | 'mtimeMs' | 'ctimeMs' | 'isDirectory' | 'isFile' | 'isSymbolicLink' | 'isCharacterDevice' |
  'isBlockDevice' | 'isFIFO' | 'isSocket'>

const S_IFMT = 0o170000

/** fs.Stats's type tests, from `mode` alone: for the stats layerfs builds itself. */
export abstract class TypedByMode {
  abstract readonly mode: number
  isDirectory(): boolean { return (this.mode & S_IFMT) === 0o040000 }
  isFile(): boolean { return (this.mode & S_IFMT) === 0o100000 }
  isSymbolicLink(): boolean { return (this.mode & S_IFMT) === 0o120000 }
  isCharacterDevice(): boolean { return (this.mode & S_IFMT) === 0o020000 }
  isBlockDevice(): boolean { return (this.mode & S_IFMT) === 0o060000 }
  isFIFO(): boolean { return (this.mode & S_IFMT) === 0o010000 }
  isSocket(): boolean { return (this.mode & S_IFMT) === 0o140000 }
}

/** The numbers of one stat in a Float64Array, as the addon writes them (native/layerfs.h). */
export const STAT_DOUBLES = 13

/**
 * An lstat read by the addon: plain numbers (Node's fs.Stats also builds four Dates per call),
 * the STAT_DOUBLES at `at` in `o`.
 */
export class NativeStats extends TypedByMode implements FileStats {
  readonly mode: number; readonly nlink: number; readonly uid: number; readonly gid: number
  readonly rdev: number; readonly size: number; readonly blksize: number; readonly blocks: number
  readonly ino: number; readonly dev: number; readonly atimeMs: number; readonly mtimeMs: number; readonly ctimeMs: number

  constructor(o: Float64Array, at = 0) {
    super()
    this.mode = o[at]!; this.nlink = o[at + 1]!; this.uid = o[at + 2]!; this.gid = o[at + 3]!; this.rdev = o[at + 4]!
    this.size = o[at + 5]!; this.blksize = o[at + 6]!; this.blocks = o[at + 7]!; this.ino = o[at + 8]!; this.dev = o[at + 9]!
    this.atimeMs = o[at + 10]!; this.mtimeMs = o[at + 11]!; this.ctimeMs = o[at + 12]!
  }
}

const addon = nativeAddon()
const nativeLstat = addon instanceof Error || process.env.LAYERFS_NODE_LSTAT === '1'
  ? undefined
  : (addon as { lstat(host: string, out: Float64Array): number }).lstat
const statOut = new Float64Array(STAT_DOUBLES)

/** lstat by the addon (undefined for ENOENT, ENOTDIR); exported for the tests that compare it with Node's. */
export function nativeLstatOrUndefined(host: string): FileStats | undefined {
  const r = nativeLstat!(host, statOut)
  if (r === 0) return new NativeStats(statOut)
  if (r === -osConstants.errno.ENOENT || r === -osConstants.errno.ENOTDIR) return undefined
  throw addonError(r, 'lstat', `'${host}'`, host)
}

/**
 * lstat that returns undefined for ENOENT and ENOTDIR (a missing entry is a value, not an
 * error). The hot path of every lookup: through the addon when it is built (LAYERFS_NODE_LSTAT=1: never).
 */
export function lstatOrUndefined(host: string): FileStats | undefined {
  if (nativeLstat) return nativeLstatOrUndefined(host)
  try {
    return fs.lstatSync(host, { throwIfNoEntry: false })
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined
    throw e
  }
}

const nativeFstat = nativeLstat && (addon as { fstat?: (fd: number, out: Float64Array) => number }).fstat

/** fstat of an open branch file, by the addon when it is built (no Dates); throws errno-shaped errors. */
export function fstatOf(fd: number): FileStats {
  if (!nativeFstat) return fs.fstatSync(fd)
  const r = nativeFstat(fd, statOut)
  if (r === 0) return new NativeStats(statOut)
  throw addonError(r, 'fstat', String(fd))
}

/** Runs one mutation of a branch and logs it with its result at debug level (cf. ovl_do_*). */
export function mutate<T>(what: string, host: string, fn: () => T): T {
  try {
    const r = fn()
    log.debug('%s(%s) = 0', what, host)
    return r
  } catch (e) {
    log.debug('%s(%s) = %s', what, host, (e as NodeJS.ErrnoException).code)
    throw e
  }
}

/**
 * Files up to this size are copied on the JS thread: the thread-pool round trip costs more than
 * the copy itself (measured: bench/ "copy-up 4 KiB"), and the stall is bounded.
 */
export const SYNC_COPY_MAX_BYTES = 256 * 1024

/**
 * Files up to this size are also copied on the JS thread when no other request is waiting and
 * their data is in the page cache (all but 1/16 of its pages at most): memory time only, ~1 ms
 * per 4 MiB on the bench machine, and no worker round trip (docs/benchmarks.md §14); or, with
 * the request queue watched, when it is not, in slices that a waiting request interrupts
 * (copyUpFileWhileIdle, §16).
 */
export const IDLE_COPY_MAX_BYTES = 8 * 1024 * 1024

/**
 * Copies a regular file's data: reflink when the file system can, else copy_file_range; off the
 * JS thread unless the file is small (`size`, when known, decides).
 */
export function copyFileData(src: string, dst: string, size = Infinity): Promise<void> {
  const mode = fs.constants.COPYFILE_EXCL | fs.constants.COPYFILE_FICLONE
  if (size <= SYNC_COPY_MAX_BYTES) {
    fs.copyFileSync(src, dst, mode)
    return Promise.resolve()
  }
  return fs.promises.copyFile(src, dst, mode)
}

/** A regular file copied up by the addon in one call (copyUpFileNow, copyUpFileOffThread). */
export interface CopiedFile {
  /** The copy in place, after the rename (undefined: fstat failed; lstat it). */
  readonly stats: FileStats | undefined
  /** xattr names the source has. */
  readonly xattrs: number
  /** xattrs the rw branch refused (the copy is kept without them), and the first refusal's errno. */
  readonly xattrFailures: number
  readonly xattrErrno: number
}

type CopyUpFileArgs = [src: string, tmp: string, dst: string, parent: string, uid: number, gid: number, truncate: boolean, out: Float64Array]
interface CopyUpAddon {
  copyUpFile: (...args: [...CopyUpFileArgs, keep?: boolean, cachedOnly?: boolean, watchFd?: number]) => number | Promise<number>
  copyUpFileAsync: (...args: [...CopyUpFileArgs, keep?: boolean]) => Promise<number>
}
const copyAddon = addon instanceof Error || process.env.LAYERFS_JS_COPYUP === '1' || typeof (addon as Partial<CopyUpAddon>).copyUpFile !== 'function'
  ? undefined
  : (addon as CopyUpAddon)

/** Whether copyUpFileNow and copyUpFileOffThread can be used (the addon is built; LAYERFS_JS_COPYUP=1: never). */
export const canCopyUpInOneCall = copyAddon !== undefined

/**
 * Copies the regular file `src` up in one addon call (native/copy_up.c) on a worker thread:
 * builds it at `tmp` with the source's data, owner, mode, xattrs and times, renames it to `dst`,
 * and gives `parent` (a host dir; '' for none) back its times. `owner`: what a new entry in the
 * work area gets (chown only when the source differs). copyUpFileNow does the same on the JS
 * thread. With `keepOpen`, `fd` is the copy's descriptor (read-write, the caller's to close);
 * else -1. Throws errno-shaped errors; on failure nothing is left at `tmp` or `dst`.
 */
export async function copyUpFileOffThread(src: string, tmp: string, dst: string, parent: string,
  owner: { uid: number; gid: number } | undefined, keepOpen = false): Promise<CopiedFile & { readonly fd: number }> {
  const out = new Float64Array(16)
  const r = await copyAddon!.copyUpFileAsync(src, tmp, dst, parent, owner?.uid ?? -1, owner?.gid ?? -1, false, out, keepOpen)
  if (r < 0) throw addonError(r, 'copyup', `'${src}' -> '${dst}'`, src)
  return copiedFrom(out, keepOpen ? r : -1)
}

/**
 * copyUpFileOffThread on the JS thread, whatever the size (callers keep it for small files, or
 * for cached ones when no request waits); `src` may also be a directory (no data, no flags). With `keepOpen`, `fd` is the copy's descriptor, open
 * read-write and the caller's to close; else -1. With `cachedOnly`, undefined (and nothing done)
 * when the source's data is not in the page cache (all but 1/16 of its pages at most): a copy
 * that would read the disk does not belong on the JS thread unless it can stop for a waiting
 * request (copyUpFileWhileIdle). `truncate`: no data to copy.
 */
export function copyUpFileNow(src: string, tmp: string, dst: string, parent: string,
  owner: { uid: number; gid: number } | undefined, truncate: boolean, keepOpen: boolean): CopiedFile & { readonly fd: number }
export function copyUpFileNow(src: string, tmp: string, dst: string, parent: string,
  owner: { uid: number; gid: number } | undefined, truncate: boolean, keepOpen: boolean, cachedOnly: boolean): (CopiedFile & { readonly fd: number }) | undefined
export function copyUpFileNow(src: string, tmp: string, dst: string, parent: string,
  owner: { uid: number; gid: number } | undefined, truncate: boolean, keepOpen: boolean, cachedOnly = false): (CopiedFile & { readonly fd: number }) | undefined {
  const out = new Float64Array(16)
  const r = copyAddon!.copyUpFile(src, tmp, dst, parent, owner?.uid ?? -1, owner?.gid ?? -1, truncate, out, keepOpen, cachedOnly) as number
  if (cachedOnly && r === -osConstants.errno.EAGAIN) return undefined
  if (r < 0) throw addonError(r, 'copyup', `'${src}' -> '${dst}'`, src)
  return copiedFrom(out, keepOpen ? r : -1)
}

/**
 * The copy-up of a regular file begun on the JS thread while no request waits on `queueFd`
 * (/dev/fuse): data in the page cache is copied whole (memory time); data that is not, in
 * slices of 512 KiB read from disk, looking at the queue between two of them. When a request
 * waits, the rest of the copy goes on on a worker thread, and the result is a promise of it: a
 * request that comes during the copy waits for one slice at most, and a copy no one interrupts
 * costs no thread-pool round trip (docs/benchmarks.md §16). Otherwise as copyUpFileNow.
 */
export function copyUpFileWhileIdle(src: string, tmp: string, dst: string, parent: string,
  owner: { uid: number; gid: number } | undefined, keepOpen: boolean, queueFd: number): (CopiedFile & { readonly fd: number }) | Promise<CopiedFile & { readonly fd: number }> {
  const out = new Float64Array(16)
  const r = copyAddon!.copyUpFile(src, tmp, dst, parent, owner?.uid ?? -1, owner?.gid ?? -1, false, out, keepOpen, true, queueFd)
  const done = (n: number): CopiedFile & { readonly fd: number } => {
    if (n < 0) throw addonError(n, 'copyup', `'${src}' -> '${dst}'`, src)
    return copiedFrom(out, keepOpen ? n : -1)
  }
  return typeof r === 'number' ? done(r) : r.then(done)
}

function copiedFrom(out: Float64Array, fd: number): CopiedFile & { readonly fd: number } {
  return { stats: out[0] ? new NativeStats(out) : undefined, xattrs: out[13]!, xattrFailures: out[14]!, xattrErrno: out[15]!, fd }
}

/** What the read-ahead read of the directories it was asked to keep ([names joined by '/', 13 doubles per name] or null, by index). */
export interface PrefetchRead {
  readonly statted: number
  readonly dirs: readonly ([string, Float64Array] | null)[]
}
export interface PrefetchDirs {
  (dirs: string[], maxEntries: number): Promise<number>
  (dirs: string[], maxEntries: number, keep: boolean[]): Promise<number | PrefetchRead>
}

/**
 * The addon's metadata read-ahead (native/prefetch.c): reads each host directory and lstats its
 * entries (at most `maxEntries`) on a libuv worker; resolves with the number lstat'ed, or, with
 * `keep`, also with what it read of the directories `keep` marks (each read whole, or null).
 * Undefined without the addon.
 */
export const nativePrefetchDirs = addon instanceof Error
  ? undefined
  : (addon as { prefetchDirs?: PrefetchDirs }).prefetchDirs

// mknod(2) has no Node binding: the addon's, or else python3's os.mknod (the smallest well-known
// way in; it also makes sockets and FIFOs), run asynchronously on a branch path only.
const MKNOD_PY = 'import os,sys; os.mknod(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))'
const nativeMknod = addon instanceof Error ? undefined : (addon as { mknod?: (host: string, mode: number, rdev: number) => number }).mknod

/** mknod(2) on a branch path. Rejects with the errno name of the failure (EEXIST, EPERM…). */
export function mknod(host: string, mode: number, rdev: number): Promise<void> {
  if (nativeMknod && process.env.LAYERFS_PYTHON_MKNOD !== '1') {
    const r = nativeMknod(host, mode, rdev)
    return r === 0 ? Promise.resolve() : Promise.reject(addonError(r, 'mknod', `'${host}'`, host))
  }
  return new Promise((resolve, reject) => {
    execFile('python3', ['-c', MKNOD_PY, host, String(mode), String(rdev)], (err, _o, stderr) => {
      if (!err) return resolve()
      const m = /\[Errno \d+\] ([^\n]*)|(E[A-Z]+)/.exec(String(stderr))
      const code = /File exists/.test(stderr) ? 'EEXIST'
        : /not permitted/.test(stderr) ? 'EPERM'
        : /No such file/.test(stderr) ? 'ENOENT'
        : /No space/.test(stderr) ? 'ENOSPC'
        : /Read-only/.test(stderr) ? 'EROFS'
        : /Invalid argument/.test(stderr) ? 'EINVAL'
        : (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'ENOSYS' : 'EIO'
      reject(Object.assign(new Error(`mknod ${host}: ${m?.[1] ?? stderr}`), { code }))
    })
  })
}

// Extended attributes. The binding works on the path itself (l*xattr: symlinks are not followed)
// and reports failures as "… (os error N)"; give them back their errno name.
const ERRNO_NAMES = new Map(Object.entries(osConstants.errno).map(([k, v]) => [v, k]))

/** 'ENOENT' for 2…; 'EIO' for a number without a name. */
export function codeOfErrno(errno: number): string {
  return ERRNO_NAMES.get(Math.abs(errno)) ?? 'EIO'
}

/** The error of an addon call that answered `r` (-errno), shaped as Node's own ("ENOENT: lstat '…'"). */
function addonError(r: number, syscall: string, what: string, path?: string): NodeJS.ErrnoException {
  const code = codeOfErrno(r)
  return Object.assign(new Error(`${code}: ${syscall} ${what}`), { errno: r, code, syscall, ...(path !== undefined ? { path } : {}) })
}

function withXattrErrno<T>(fn: () => T): T {
  try {
    return fn()
  } catch (e) {
    const n = /os error (\d+)/.exec(String((e as Error).message))
    const code = n ? ERRNO_NAMES.get(Number(n[1])) : undefined
    throw Object.assign(new Error((e as Error).message), { code: code ?? 'EIO' })
  }
}
/** getxattr; undefined when the attribute is absent (ENODATA). */
export function getXattr(host: string, name: string): Buffer | undefined {
  return withXattrErrno(() => xattr.getAttributeSync(host, name) ?? undefined)
}
export function listXattrs(host: string): string[] {
  return withXattrErrno(() => xattr.listAttributesSync(host))
}
export function setXattr(host: string, name: string, value: Uint8Array): void {
  withXattrErrno(() => xattr.setAttributeSync(host, name, value))
}
export function removeXattr(host: string, name: string): void {
  withXattrErrno(() => xattr.removeAttributeSync(host, name))
}
