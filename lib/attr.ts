// The attributes the merged view reports for an entry (what FUSE getattr answers).
import type { FileStats } from './fs.js'

export interface Attr {
  readonly ino: number
  readonly mode: number
  readonly nlink: number
  readonly uid: number
  readonly gid: number
  readonly rdev: number
  readonly size: number
  readonly blksize: number
  readonly blocks: number
  /** Milliseconds since the epoch (fractional). */
  readonly atimeMs: number
  readonly mtimeMs: number
  readonly ctimeMs: number
}

export function toAttr(st: FileStats, ino: number, nlink = st.nlink): Attr {
  return {
    ino, mode: st.mode, nlink, uid: st.uid, gid: st.gid, rdev: st.rdev, size: st.size,
    blksize: st.blksize, blocks: st.blocks, atimeMs: st.atimeMs, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs,
  }
}
