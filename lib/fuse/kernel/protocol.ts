// The FUSE wire protocol (linux/fuse.h, 7.40 subset layerfs speaks): opcodes, flags, and the
// byte layouts of requests and replies. Pure: no I/O, tested against recorded bytes.
import type { Attr } from '../../attr.js'

export const FUSE_KERNEL_VERSION = 7
/** The highest minor version layerfs implements (passthrough, 7.40). */
export const FUSE_OUR_MINOR = 40
export const FUSE_MIN_MINOR = 31

export const IN_HEADER_SIZE = 40
export const OUT_HEADER_SIZE = 16
export const ATTR_SIZE = 88
export const ENTRY_OUT_SIZE = 40 + ATTR_SIZE
export const ATTR_OUT_SIZE = 16 + ATTR_SIZE
export const OPEN_OUT_SIZE = 16
export const DIRENT_HEADER_SIZE = 24
export const INIT_OUT_SIZE = 64
export const STATFS_OUT_SIZE = 80

export const enum Op {
  LOOKUP = 1, FORGET = 2, GETATTR = 3, SETATTR = 4, READLINK = 5, SYMLINK = 6, MKNOD = 8, MKDIR = 9,
  UNLINK = 10, RMDIR = 11, RENAME = 12, LINK = 13, OPEN = 14, READ = 15, WRITE = 16, STATFS = 17,
  RELEASE = 18, FSYNC = 20, SETXATTR = 21, GETXATTR = 22, LISTXATTR = 23, REMOVEXATTR = 24, FLUSH = 25,
  INIT = 26, OPENDIR = 27, READDIR = 28, RELEASEDIR = 29, FSYNCDIR = 30, GETLK = 31, SETLK = 32,
  SETLKW = 33, ACCESS = 34, CREATE = 35, INTERRUPT = 36, BMAP = 37, DESTROY = 38, IOCTL = 39, POLL = 40,
  NOTIFY_REPLY = 41, BATCH_FORGET = 42, FALLOCATE = 43, READDIRPLUS = 44, RENAME2 = 45, LSEEK = 46,
  COPY_FILE_RANGE = 47, SYNCFS = 50, TMPFILE = 51, STATX = 52,
}

/** INIT flags (bits ≥ 32 travel in flags2, with INIT_EXT). */
export const Init = {
  ASYNC_READ: 1n << 0n, POSIX_LOCKS: 1n << 1n, ATOMIC_O_TRUNC: 1n << 3n, EXPORT_SUPPORT: 1n << 4n,
  BIG_WRITES: 1n << 5n, DONT_MASK: 1n << 6n, AUTO_INVAL_DATA: 1n << 12n, DO_READDIRPLUS: 1n << 13n,
  READDIRPLUS_AUTO: 1n << 14n, ASYNC_DIO: 1n << 15n, WRITEBACK_CACHE: 1n << 16n, PARALLEL_DIROPS: 1n << 18n,
  HANDLE_KILLPRIV: 1n << 19n, POSIX_ACL: 1n << 20n, MAX_PAGES: 1n << 22n, CACHE_SYMLINKS: 1n << 23n,
  EXPLICIT_INVAL_DATA: 1n << 25n, HANDLE_KILLPRIV_V2: 1n << 28n, INIT_EXT: 1n << 30n, HAS_EXPIRE_ONLY: 1n << 35n,
  DIRECT_IO_ALLOW_MMAP: 1n << 36n, PASSTHROUGH: 1n << 37n, NO_EXPORT_SUPPORT: 1n << 38n,
} as const

export const FOPEN_DIRECT_IO = 1
export const FOPEN_KEEP_CACHE = 2
export const FOPEN_CACHE_DIR = 8
export const FOPEN_PASSTHROUGH = 128

export const FATTR_MODE = 1
export const FATTR_UID = 2
export const FATTR_GID = 4
export const FATTR_SIZE = 8
export const FATTR_ATIME = 16
export const FATTR_MTIME = 32
export const FATTR_FH = 64
export const FATTR_ATIME_NOW = 128
export const FATTR_MTIME_NOW = 256

export const FATTR_KILL_SUIDGID = 1 << 11
export const FUSE_WRITE_KILL_SUIDGID = 1 << 2
export const FUSE_OPEN_KILL_SUIDGID = 1

export const FUSE_GETATTR_FH = 1
export const FUSE_FSYNC_FDATASYNC = 1
export const RENAME_NOREPLACE = 1
export const RENAME_EXCHANGE = 2
export const RENAME_WHITEOUT = 4

export const enum Notify { INVAL_INODE = 2, INVAL_ENTRY = 3, DELETE = 6, INC_EPOCH = 8 }

/** d_type from a mode. */
export function direntType(mode: number): number {
  return (mode >>> 12) & 0xf
}

export interface InHeader {
  readonly len: number
  readonly opcode: number
  readonly unique: bigint
  readonly nodeid: number
  readonly uid: number
  readonly gid: number
  readonly pid: number
}

export function readInHeader(b: Buffer): InHeader {
  return {
    len: b.readUInt32LE(0), opcode: b.readUInt32LE(4), unique: b.readBigUInt64LE(8),
    nodeid: u64(b, 16), uid: b.readUInt32LE(24), gid: b.readUInt32LE(28), pid: b.readUInt32LE(32),
  }
}

/** A u64 that layerfs keeps below 2^53 (node ids, handles, sizes). */
export function u64(b: Buffer, off: number): number {
  return b.readUInt32LE(off) + b.readUInt32LE(off + 4) * 0x1_0000_0000
}

export function writeU64(b: Buffer, n: number, off: number): void {
  b.writeUInt32LE(n >>> 0, off)
  b.writeUInt32LE(Math.floor(n / 0x1_0000_0000) >>> 0, off + 4)
}

/** A signed 64-bit value (offsets in notifications). */
function writeI64(b: Buffer, n: number, off: number): void {
  b.writeBigInt64LE(BigInt(n), off)
}

/** The NUL-terminated name at `off`, and where the next field starts. */
export function readName(b: Buffer, off: number, end: number): [string, number] {
  let z = b.indexOf(0, off)
  if (z < 0 || z > end) z = end
  // UTF-8, as fuse-native decoded them: invalid bytes become U+FFFD, which the core refuses (EILSEQ).
  return [b.toString('utf8', off, z), z + 1]
}

/** fuse_out_header; the request's unique id as its two u32 halves (0 for a notification). */
export function writeOutHeader(b: Buffer, len: number, error: number, uniqueLo = 0, uniqueHi = 0): void {
  b.writeUInt32LE(len, 0)
  b.writeInt32LE(error, 4)
  b.writeUInt32LE(uniqueLo, 8)
  b.writeUInt32LE(uniqueHi, 12)
}

function split(ms: number): [number, number] {
  const s = Math.floor(ms / 1000)
  const ns = Math.min(999_999_999, Math.max(0, Math.round((ms - s * 1000) * 1e6)))
  return [s, ns]
}

/** Seconds since the epoch: the kernel reads the u64 as signed (times before 1970). */
function writeSeconds(b: Buffer, secs: number, off: number): void {
  if (secs >= 0) writeU64(b, secs, off)
  else b.writeBigInt64LE(BigInt(secs), off)
}

/** Writes a fuse_attr at `off`. */
export function writeAttr(b: Buffer, a: Attr, off: number): void {
  writeU64(b, a.ino, off)
  writeU64(b, a.size, off + 8)
  writeU64(b, a.blocks, off + 16)
  const [as, ans] = split(a.atimeMs)
  const [ms, mns] = split(a.mtimeMs)
  const [cs, cns] = split(a.ctimeMs)
  writeSeconds(b, as, off + 24)
  writeSeconds(b, ms, off + 32)
  writeSeconds(b, cs, off + 40)
  b.writeUInt32LE(ans, off + 48)
  b.writeUInt32LE(mns, off + 52)
  b.writeUInt32LE(cns, off + 56)
  b.writeUInt32LE(a.mode >>> 0, off + 60)
  b.writeUInt32LE(a.nlink >>> 0, off + 64)
  b.writeUInt32LE(a.uid >>> 0, off + 68)
  b.writeUInt32LE(a.gid >>> 0, off + 72)
  b.writeUInt32LE(a.rdev >>> 0, off + 76)
  b.writeUInt32LE(a.blksize >>> 0, off + 80)
  b.writeUInt32LE(0, off + 84)
}

/** Timeouts in seconds (fractions allowed). */
function writeValid(b: Buffer, secs: number, off: number, nsecOff: number): void {
  const s = Math.floor(secs)
  writeU64(b, s, off)
  b.writeUInt32LE(Math.min(999_999_999, Math.round((secs - s) * 1e9)), nsecOff)
}

/** fuse_entry_out at `off`: nodeid 0 is a cached negative entry. */
export function writeEntry(b: Buffer, off: number, nodeid: number, a: Attr | undefined, entryValid: number, attrValid: number): void {
  writeU64(b, nodeid, off)
  writeU64(b, 0, off + 8) // generation: node ids are never reused
  writeValid(b, entryValid, off + 16, off + 32)
  writeValid(b, attrValid, off + 24, off + 36)
  if (a) writeAttr(b, a, off + 40)
  else b.fill(0, off + 40, off + ENTRY_OUT_SIZE)
}

export function writeAttrOut(b: Buffer, off: number, a: Attr, attrValid: number): void {
  writeValid(b, attrValid, off, off + 8)
  b.writeUInt32LE(0, off + 12)
  writeAttr(b, a, off + 16)
}

export function writeOpenOut(b: Buffer, off: number, fh: number, openFlags: number, backingId = 0): void {
  writeU64(b, fh, off)
  b.writeUInt32LE(openFlags, off + 8)
  b.writeInt32LE(backingId, off + 12)
}

/** One fuse_dirent (or, with `plusEntry`, a fuse_direntplus) at `off`; returns its padded size. */
export function direntSize(nameLen: number, plus: boolean): number {
  return (plus ? ENTRY_OUT_SIZE : 0) + ((DIRENT_HEADER_SIZE + nameLen + 7) & ~7)
}

/** `nameLen`: the name's UTF-8 length (Buffer.byteLength), already needed to see whether it fits. */
export function writeDirent(b: Buffer, off: number, ino: number, nextOff: number, type: number, name: string, nameLen: number): number {
  writeU64(b, ino, off)
  writeU64(b, nextOff, off + 8)
  b.writeUInt32LE(nameLen, off + 16)
  b.writeUInt32LE(type, off + 20)
  b.write(name, off + DIRENT_HEADER_SIZE, nameLen, 'utf8')
  const size = (DIRENT_HEADER_SIZE + nameLen + 7) & ~7
  b.fill(0, off + DIRENT_HEADER_SIZE + nameLen, off + size)
  return size
}

export interface StatFsOut {
  readonly blocks: number; readonly bfree: number; readonly bavail: number
  readonly files: number; readonly ffree: number; readonly bsize: number
  readonly namelen: number; readonly frsize: number
}

export function writeStatfs(b: Buffer, off: number, s: StatFsOut): void {
  b.fill(0, off, off + STATFS_OUT_SIZE)
  writeU64(b, s.blocks, off)
  writeU64(b, s.bfree, off + 8)
  writeU64(b, s.bavail, off + 16)
  writeU64(b, s.files, off + 24)
  writeU64(b, s.ffree, off + 32)
  b.writeUInt32LE(s.bsize, off + 40)
  b.writeUInt32LE(s.namelen, off + 44)
  b.writeUInt32LE(s.frsize, off + 48)
}

export interface InitIn {
  readonly major: number
  readonly minor: number
  readonly maxReadahead: number
  readonly flags: bigint
}

export function readInitIn(b: Buffer, off: number, len: number): InitIn {
  const major = b.readUInt32LE(off)
  const minor = b.readUInt32LE(off + 4)
  let flags = BigInt(b.readUInt32LE(off + 12))
  if (len >= off + 20 && flags & Init.INIT_EXT) flags |= BigInt(b.readUInt32LE(off + 16)) << 32n
  return { major, minor, maxReadahead: b.readUInt32LE(off + 8), flags }
}

export interface InitOut {
  readonly minor: number
  readonly maxReadahead: number
  readonly flags: bigint
  readonly maxBackground: number
  readonly congestionThreshold: number
  readonly maxWrite: number
  readonly timeGran: number
  readonly maxPages: number
  readonly maxStackDepth: number
}

export function writeInitOut(b: Buffer, off: number, o: InitOut): void {
  b.fill(0, off, off + INIT_OUT_SIZE)
  b.writeUInt32LE(FUSE_KERNEL_VERSION, off)
  b.writeUInt32LE(o.minor, off + 4)
  b.writeUInt32LE(o.maxReadahead, off + 8)
  b.writeUInt32LE(Number(o.flags & 0xffffffffn), off + 12)
  b.writeUInt16LE(o.maxBackground, off + 16)
  b.writeUInt16LE(o.congestionThreshold, off + 18)
  b.writeUInt32LE(o.maxWrite, off + 20)
  b.writeUInt32LE(o.timeGran, off + 24)
  b.writeUInt16LE(o.maxPages, off + 28)
  b.writeUInt16LE(0, off + 30) // map_alignment
  b.writeUInt32LE(Number(o.flags >> 32n), off + 32)
  b.writeUInt32LE(o.maxStackDepth, off + 36)
}

/** A notification message (unique 0, error = the notify code). */
export function notifyInvalEntry(parent: number, name: Buffer): Buffer {
  const b = Buffer.alloc(OUT_HEADER_SIZE + 16 + name.length + 1)
  writeOutHeader(b, b.length, Notify.INVAL_ENTRY)
  writeU64(b, parent, 16)
  b.writeUInt32LE(name.length, 24)
  name.copy(b, 32)
  return b
}

export function notifyInvalInode(nodeid: number, off = 0, len = 0): Buffer {
  const b = Buffer.alloc(OUT_HEADER_SIZE + 24)
  writeOutHeader(b, b.length, Notify.INVAL_INODE)
  writeU64(b, nodeid, 16)
  writeI64(b, off, 24)
  writeI64(b, len, 32)
  return b
}

/** FUSE_NOTIFY_INC_EPOCH (Linux 6.16+): every cached name is looked up again before use. */
export function notifyIncEpoch(): Buffer {
  const b = Buffer.alloc(OUT_HEADER_SIZE)
  writeOutHeader(b, OUT_HEADER_SIZE, Notify.INC_EPOCH)
  return b
}
