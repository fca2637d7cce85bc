// Copying metadata of an entry: owner, mode, xattrs, times (the order matters: chown clears setuid).
import { fs, getXattr, listXattrs, setXattr, type FileStats } from '../fs.js'
import { createLogger } from '../log.js'

const log = createLogger('layerfs:copyup')

/** Xattrs that describe the source branch's own bookkeeping and must not travel up. */
function isPrivateXattr(name: string): boolean {
  return name.startsWith('trusted.overlay.')
}

/** Copies every xattr of `src` onto `dst` (both host paths, symlinks not followed); returns how many `src` has. */
export function copyXattrs(src: string, dst: string): number {
  let names: string[]
  try {
    names = listXattrs(src)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOTSUP') return 0
    throw e
  }
  for (const name of names) {
    if (isPrivateXattr(name)) continue
    const value = getXattr(src, name)
    if (value === undefined) continue
    try {
      setXattr(dst, name, value)
    } catch (e) {
      // e.g. security.* refused by the upper's file system: keep the data, warn once per cause.
      log.warnOnce(`xattr:${name}`, 'could not copy xattr %s up (%s)', name, (e as NodeJS.ErrnoException).code)
    }
  }
  return names.length
}

/** Owner and mode a new entry already has: `mode` when it was set by the copy itself (copyfile). */
export interface Made {
  readonly uid: number
  readonly gid: number
  readonly mode?: number
}

/**
 * Applies owner, mode, xattrs and atime/mtime of `st` (the source) to the host entry `dst`;
 * returns the number of xattrs of `src`. `made`: what `dst` already has (no chown/chmod then).
 */
export function copyAttrs(src: string, st: FileStats, dst: string, made?: Made): number {
  const mode = st.mode & 0o7777
  if (made?.uid !== st.uid || made.gid !== st.gid) {
    fs.lchownSync(dst, st.uid, st.gid) // clears setuid/setgid: the mode is set after it
    if (!st.isSymbolicLink()) fs.chmodSync(dst, mode)
  } else if (made.mode !== mode && !st.isSymbolicLink()) {
    fs.chmodSync(dst, mode)
  }
  const xattrs = copyXattrs(src, dst)
  fs.lutimesSync(dst, st.atimeMs / 1000, st.mtimeMs / 1000)
  return xattrs
}
