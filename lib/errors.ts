// Errors as data: FsError carries an errno *name*; only the FUSE adapter turns it into a number.
import { constants } from 'node:os'

export type Errno =
  | 'ENOENT' | 'EEXIST' | 'ENOTDIR' | 'EISDIR' | 'ENOTEMPTY' | 'EXDEV' | 'EROFS' | 'EACCES'
  | 'EPERM' | 'EINVAL' | 'ENAMETOOLONG' | 'ENOTSUP' | 'EIO' | 'EBADF' | 'ENODATA' | 'ENOSPC'
  | 'ELOOP' | 'EBUSY' | 'ERANGE' | 'ENOSYS' | 'EMLINK' | 'EFBIG' | 'EDQUOT' | 'EILSEQ'

const DESCRIPTIONS: Record<Errno, string> = {
  ENOENT: 'no such file or directory', EEXIST: 'file already exists', ENOTDIR: 'not a directory',
  EISDIR: 'illegal operation on a directory', ENOTEMPTY: 'directory not empty',
  EXDEV: 'cross-device link not permitted', EROFS: 'read-only file system',
  EACCES: 'permission denied', EPERM: 'operation not permitted', EINVAL: 'invalid argument',
  ENAMETOOLONG: 'name too long', ENOTSUP: 'operation not supported', EIO: 'i/o error',
  EBADF: 'bad file descriptor', ENODATA: 'no data available', ENOSPC: 'no space left on device',
  ELOOP: 'too many symbolic links', EBUSY: 'resource busy or locked', ERANGE: 'result too large',
  ENOSYS: 'function not implemented', EMLINK: 'too many links', EFBIG: 'file too large',
  EDQUOT: 'disk quota exceeded', EILSEQ: 'illegal byte sequence',
}

/** An errno-shaped error with a Node-style message: `ENOENT: no such file or directory, lookup '/a'`. */
export class FsError extends Error {
  readonly code: string
  readonly syscall: string
  readonly path: string | undefined
  readonly errno: number

  constructor(code: Errno | string, syscall: string, path?: string, options?: { cause?: unknown }) {
    const what = DESCRIPTIONS[code as Errno] ?? code.toLowerCase()
    // An expected, errno-shaped outcome (ENOENT, ENODATA…), answered thousands of times a
    // second: no stack trace (capturing one cost more than the lookup it reports).
    const limit = Error.stackTraceLimit
    Error.stackTraceLimit = 0
    super(`${code}: ${what}, ${syscall}${path === undefined ? '' : ` '${path}'`}`, options)
    Error.stackTraceLimit = limit
    this.name = 'FsError'
    this.code = code
    this.syscall = syscall
    this.path = path
    this.errno = -(constants.errno[code as keyof typeof constants.errno] ?? constants.errno.EIO)
  }
}

export function isErrnoException(e: unknown): e is NodeJS.ErrnoException & { code: string } {
  return e instanceof Error && typeof (e as NodeJS.ErrnoException).code === 'string'
}

/** The errno name of an error, or undefined when it carries none (a bug, reported as EIO). */
export function errnoName(e: unknown): string | undefined {
  return isErrnoException(e) && e.code in constants.errno ? e.code : undefined
}

/** A negative errno for the kernel: always <= -1; anything unknown becomes -EIO. */
export function toFuseErrno(e: unknown): number {
  const code = errnoName(e)
  const n = code === undefined ? undefined : constants.errno[code as keyof typeof constants.errno]
  return -(n ?? constants.errno.EIO)
}

/** Re-throws a Node error from branch I/O with the union path, keeping its code and the cause. */
export function rethrow(e: unknown, syscall: string, unionPath: string): never {
  if (e instanceof FsError) throw e
  const code = errnoName(e)
  if (code === undefined) throw e
  throw new FsError(code, syscall, unionPath, { cause: e })
}
