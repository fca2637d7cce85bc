// The FUSE ops table: a thin translation of LayerFs. Callbacks, numbers and fuse-native's
// calling conventions exist only here; every request is answered, whatever happens.
import { constants as fsConstants } from 'node:fs'
import { constants } from 'node:os'
import type { Attr } from '../attr.js'
import { errnoName, toFuseErrno } from '../errors.js'
import type { LayerFs } from '../layerfs.js'
import { Activity, GATED_OPS } from './activity.js'
import { ShrinkSettle } from './shrink-settle.js'
import { createLogger } from '../log.js'
import { normalizeUnionPath } from '../paths.js'

const log = createLogger('layerfs:fuse')
const ENOENT = -constants.errno.ENOENT
const O_TRUNC = fsConstants.O_TRUNC

type Cb = (code: number, value?: unknown) => void

/** fuse-native's stat shape (times in ms since the epoch). */
function toFuseStat(a: Attr): object {
  return {
    mode: a.mode, uid: a.uid, gid: a.gid, size: a.size, dev: 0, nlink: a.nlink, ino: a.ino,
    rdev: a.rdev, blksize: a.blksize, blocks: a.blocks, atime: a.atimeMs, mtime: a.mtimeMs, ctime: a.ctimeMs,
  }
}

export function failure(op: string, path: string, e: unknown): number {
  const code = toFuseErrno(e)
  if (errnoName(e) === undefined) {
    log.warnOnce(`bug:${op}`, '%s %s failed unexpectedly, answered EIO: %s', op, path, (e as Error)?.stack ?? e)
  }
  return code
}

/**
 * Calls `fn` and answers `cb` with 0 and its value, or with a negative errno. Synchronous
 * results are answered at once (the hot path), promises when they settle.
 */
function settleNow(op: string, path: string, cb: Cb, fn: () => unknown, map?: (v: any) => unknown): unknown {
  const t0 = log.enabled() ? performance.now() : 0
  const done = (code: number, value?: unknown): void => {
    if (t0) log.debug('%s %s -> %s %sms', op, path, code < 0 ? codeName(code) : 'OK', (performance.now() - t0).toFixed(2))
    cb(code, value)
  }
  try {
    const r = fn()
    if (r instanceof Promise) {
      return r.then((v) => done(0, map ? map(v) : v), (e) => done(failure(op, path, e)))
    } else {
      done(0, map ? map(r) : r)
    }
  } catch (e) {
    done(failure(op, path, e))
  }
  return undefined
}

/**
 * Like settle, for fuse-native ops whose callback takes the result count first (read, write).
 * A promise (the first write through a handle sealed by a checkpoint) is answered when it settles.
 */
function settleCount(op: string, path: string, cb: (n: number) => void, fn: () => number | Promise<number>): unknown {
  try {
    const r = fn()
    if (typeof r === 'number') cb(r)
    else return r.then(cb, (e) => cb(failure(op, path, e)))
  } catch (e) {
    cb(failure(op, path, e))
  }
  return undefined
}

const names = new Map(Object.entries(constants.errno).map(([k, v]) => [-v, k]))
function codeName(code: number): string {
  return names.get(code) ?? String(code)
}

/**
 * UTIME_OMIT as the fixed binding sends it (scripts/build-fuse-binding.mjs: 2^53 - 1 ms); it
 * sends UTIME_NOW as the current time.
 */
const UTIME_OMIT_MS = Number.MAX_SAFE_INTEGER
/** The prebuilt binding turns both UTIME_NOW and UTIME_OMIT (tv_nsec ≈ 2^30) into 1073 ms. */
const UTIME_PREBUILT_SPECIAL_MS = 1073

function utimeArgs(atime: number, mtime: number): [number | undefined, number | undefined] {
  const a = atime === UTIME_PREBUILT_SPECIAL_MS
  const m = mtime === UTIME_PREBUILT_SPECIAL_MS
  if (a && m) return [Date.now(), Date.now()]
  const omit = (t: number, special: boolean): number | undefined => (special || t >= UTIME_OMIT_MS ? undefined : t)
  return [omit(atime, a), omit(mtime, m)]
}

/**
 * The operations table for fuse-native, over one LayerFs. Paths from the kernel are validated
 * first. `activity` counts every op and holds changing ops back during a stack change.
 */
export function makeFuseOps(core: LayerFs, activity = new Activity()): Record<string, (...args: any[]) => void> {
  const P = (p: string): string => normalizeUnionPath(p)
  const counts = activity.counts
  // Short reads racing a truncation wait until the kernel has the new size (shrink-settle.ts).
  // libfuse 2 does not say which task sent a request: the truncating handle's next operation
  // ends the window instead. Windows are keyed by the path as libfuse sends it (one spelling
  // per file; nothing to validate or normalize on the read and write paths).
  const shrinks = new ShrinkSettle<string>()
  const touch = (fd: number): void => {
    if (shrinks.size !== 0) shrinks.seen(fd)
  }
  /** An answer mapper: the op shrank `path`'s file, through handle `by` (-1: none). */
  const shrunk = (path: string, by: number) => <T>(v: T): T => {
    shrinks.shrunk(path, by)
    return v
  }
  /** An answer mapper for SETATTRs: their reply sets the kernel's size unchecked, like a write's. */
  const wrote = (path: string) => <T>(v: T): T => {
    shrinks.wrote(path, -1)
    return v
  }
  const settle = (op: string, path: string, cb: Cb, fn: () => unknown, map?: (v: any) => unknown): void => {
    counts[op] = (counts[op] ?? 0) + 1
    if (GATED_OPS.has(op)) activity.gate(() => settleNow(op, path, cb, fn, map))
    else settleNow(op, path, cb, fn, map)
  }
  return {
    init: (cb: Cb) => cb(0),
    getattr(path: string, cb: Cb) {
      counts.getattr = (counts.getattr ?? 0) + 1
      try {
        const a = core.tryGetattr(P(path))
        if (!a) return cb(ENOENT)
        cb(0, toFuseStat(a))
      } catch (e) {
        cb(failure('getattr', path, e))
      }
    },
    fgetattr(path: string, fd: number, cb: Cb) {
      touch(fd)
      settle('fgetattr', path, cb, () => core.fgetattr(P(path), fd), toFuseStat)
    },
    access: (path: string, mode: number, cb: Cb) => settle('access', path, cb, () => core.access(P(path), mode)),
    readdir: (path: string, cb: Cb) => settle('readdir', path, cb, () => core.readdir(P(path))),
    readlink: (path: string, cb: Cb) => settle('readlink', path, cb, () => core.readlink(P(path))),
    statfs: (path: string, cb: Cb) => settle('statfs', path, cb, () => core.statfs(), (s) => ({
      ...s, blocks: clamp32(s.blocks), bfree: clamp32(s.bfree), bavail: clamp32(s.bavail),
      files: clamp32(s.files), ffree: clamp32(s.ffree), favail: clamp32(s.ffree),
    })),
    // atomic_o_trunc: a truncating open shrinks the file; its handle's next operation ends the window.
    open: (path: string, flags: number, cb: Cb) =>
      settle('open', path, cb, () => core.open(P(path), flags), flags & O_TRUNC ? (fh: number) => (shrinks.shrunk(path, fh), fh) : undefined),
    create: (path: string, mode: number, cb: Cb) => settle('create', path, cb, () => core.create(P(path), mode)),
    read(path: string, fd: number, buf: Buffer, len: number, pos: number, cb: (n: number) => void) {
      counts.read = (counts.read ?? 0) + 1
      touch(fd)
      // The kernel's buffer stays lent until cb: a held short read answers later.
      const done = shrinks.size === 0 ? cb : (n: number): void => {
        if (n >= 0 && n < len && shrinks.hold(path, () => cb(n))) return
        cb(n)
      }
      settleCount('read', path, done, () => core.read(fd, buf, len, pos))
    },
    write(path: string, fd: number, buf: Buffer, len: number, pos: number, cb: (n: number) => void) {
      counts.write = (counts.write ?? 0) + 1
      touch(fd)
      shrinks.wrote(path, fd)
      activity.gate(() => settleCount('write', path, cb, () => core.write(fd, buf, len, pos)))
    },
    release(path: string, fd: number, cb: Cb) {
      touch(fd)
      settle('release', path, cb, () => core.release(fd))
    },
    // No flush op: libfuse answers ENOSYS once and the kernel stops sending FLUSH at every close.
    fsync(path: string, datasync: number, fd: number, cb: Cb) {
      touch(fd)
      settle('fsync', path, cb, () => core.fsync(fd, !!datasync))
    },
    fsyncdir: (path: string, _datasync: number, _fd: number, cb: Cb) => settle('fsyncdir', path, cb, () => core.fsyncdir(P(path))),
    // A truncation by path has no handle to be seen again: its window lasts SETTLE_MS.
    truncate: (path: string, size: number, cb: Cb) => settle('truncate', path, cb, () => core.truncate(P(path), size), shrunk(path, -1)),
    ftruncate(path: string, fd: number, size: number, cb: Cb) {
      touch(fd)
      settle('ftruncate', path, cb, () => core.ftruncate(fd, size), shrunk(path, fd))
    },
    chmod: (path: string, mode: number, cb: Cb) => settle('chmod', path, cb, () => core.chmod(P(path), mode), wrote(path)),
    chown: (path: string, uid: number, gid: number, cb: Cb) => settle('chown', path, cb, () => core.chown(P(path), uid, gid), wrote(path)),
    utimens(path: string, atime: number, mtime: number, cb: Cb) {
      const [a, m] = utimeArgs(atime, mtime)
      settle('utimens', path, cb, () => core.utimens(P(path), a, m), wrote(path))
    },
    mkdir: (path: string, mode: number, cb: Cb) => settle('mkdir', path, cb, () => core.mkdir(P(path), mode)),
    rmdir: (path: string, cb: Cb) => settle('rmdir', path, cb, () => core.rmdir(P(path))),
    unlink: (path: string, cb: Cb) => settle('unlink', path, cb, () => core.unlink(P(path))),
    rename: (src: string, dst: string, cb: Cb) => settle('rename', src, cb, () => core.rename(P(src), P(dst))),
    // fuse-native passes (target, linkpath) for symlink and (existing, new) for link.
    symlink: (target: string, path: string, cb: Cb) => settle('symlink', path, cb, () => core.symlink(target, P(path))),
    link: (src: string, dst: string, cb: Cb) => settle('link', dst, cb, () => core.link(P(src), P(dst))),
    mknod: (path: string, mode: number, dev: number, cb: Cb) => settle('mknod', path, cb, () => core.mknod(P(path), mode, dev)),
    getxattr: (path: string, name: string, _pos: number, cb: Cb) => settle('getxattr', path, cb, () => core.getxattr(P(path), name)),
    listxattr: (path: string, cb: Cb) => settle('listxattr', path, cb, () => core.listxattr(P(path))),
    setxattr(path: string, name: string, value: Buffer, _pos: number, flags: number, cb: Cb) {
      const copy = Buffer.from(value) // the kernel's buffer is only lent until we answer
      settle('setxattr', path, cb, () => core.setxattr(P(path), name, copy, flags))
    },
    removexattr: (path: string, name: string, cb: Cb) => settle('removexattr', path, cb, () => core.removexattr(P(path), name)),
  }
}

function clamp32(n: number): number {
  return Math.min(n, 0xffffffff)
}
