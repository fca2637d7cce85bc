// A checkpoint carries over the files the kernel writes itself.
//
// A checkpoint seals the rw branch: handles into it re-open in the new rw branch on their next
// write (LayerFs #reopenInUpper). A handle the kernel writes through itself (FUSE passthrough,
// lib/fuse/kernel/passthrough.ts) never tells layerfs that it writes, so its file cannot wait
// for that: it moves instead. The file (its inode, which every open handle of it writes to) gets
// its name in the new rw branch (a hard link), and a copy of it as it is at this moment is renamed
// over its name in the sealed layer. The sealed layer then holds what was written before the
// checkpoint, later writes land in the new rw branch, and no handle needs re-opening. A write
// racing the checkpoint itself lands in the new rw branch, and may also show in the sealed copy.
import type { Branch } from '../branches/branch.js'
import { FsError, rethrow } from '../errors.js'
import { canCopyUpInOneCall, copyUpFileNow, fs, lstatOrUndefined, type FileStats } from '../fs.js'
import { parentOf, type UnionPath } from '../paths.js'
import { copyAttrs } from './copy-attrs.js'
import { copyUpDirChain, restoreTimes, type CopyUpContext } from './copyup.js'

/**
 * Moves the regular file `p` of the `sealed` layer (open as `fd`) into the rw branch of `ctx`,
 * and leaves a copy of it in the sealed layer (never a moment without either); both parents
 * keep their times. The sealed layer must be in `ctx`'s stack (after the checkpoint's restack)
 * and no copy-up under way (the checkpoint holds the gate). Returns the carried inode's stats
 * (as open: its other handles are found by them); undefined, with nothing done, for a file
 * removed while open (no layer shows it); EIO when its name leads elsewhere (changed
 * underneath): then nothing is done either.
 */
export function carryOver(ctx: CopyUpContext, sealed: Branch, p: UnionPath, fd: number): FileStats | undefined {
  const from = sealed.host(p)
  const open = fs.fstatSync(fd)
  if (open.nlink === 0) return undefined // removed while open: no layer shows it, nothing to carry
  const named = lstatOrUndefined(from)
  if (!named || named.ino !== open.ino || named.dev !== open.dev) throw new FsError('EIO', 'checkpoint', p)
  const dir = copyUpDirChain(ctx, parentOf(p))
  if (typeof dir !== 'string') throw new FsError('EBUSY', 'checkpoint', p) // a copy-up under way: not while the gate is held
  const to = ctx.upper.host(p)
  const sealedDir = sealed.host(parentOf(p))
  const times = [[dir, lstatOrUndefined(dir)], [sealedDir, lstatOrUndefined(sealedDir)]] as const
  // A second name in the new rw branch first, then the copy renamed over the sealed name: at
  // every moment (a crash included) both layers have the file.
  try {
    fs.linkSync(from, to)
  } catch (e) {
    rethrow(e, 'checkpoint', p)
  }
  const tmp = ctx.work.tempPath('carry-over')
  try {
    copyBack(to, tmp, from, open)
  } catch (e) {
    ctx.work.discard(tmp)
    try {
      fs.unlinkSync(to) // as it was: the handles stay sealed and write to the sealed layer
    } catch {
      // Both names stay: the merged view is the same.
    }
    rethrow(e, 'checkpoint', p)
  } finally {
    for (const [host, st] of times) if (st) restoreTimes(host, st)
  }
  ctx.resolver.cache.invalidate(p)
  return open
}

/** The copy left in the sealed layer: data, owner, mode, xattrs and times of `src`, built at `tmp`, renamed to `dst`. */
function copyBack(src: string, tmp: string, dst: string, st: FileStats): void {
  if (canCopyUpInOneCall) {
    copyUpFileNow(src, tmp, dst, '', undefined, false, false)
    return
  }
  fs.copyFileSync(src, tmp, fs.constants.COPYFILE_EXCL | fs.constants.COPYFILE_FICLONE)
  copyAttrs(src, st, tmp)
  fs.renameSync(tmp, dst)
}
