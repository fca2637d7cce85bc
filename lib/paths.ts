// Union paths ('/a/b', always absolute, normalized) and their checks; no I/O.
import { FsError } from './errors.js'

/** A path inside the union, as FUSE hands it over: '/' or '/a/b'. */
export type UnionPath = string

const NAME_MAX = 255

/**
 * Validates and normalizes a union path. Throws EINVAL for NUL bytes, '.' or '..' components
 * and relative paths, ENAMETOOLONG for a component over NAME_MAX bytes.
 */
export function normalizeUnionPath(p: string, syscall = 'lookup'): UnionPath {
  if (typeof p !== 'string' || !p.startsWith('/') || p.includes('\0')) throw new FsError('EINVAL', syscall, p)
  const parts = p.split('/').filter((s) => s !== '')
  for (const part of parts) {
    const bad = badName(part)
    if (bad) throw new FsError(bad, syscall, p)
  }
  return parts.length === 0 ? '/' : '/' + parts.join('/')
}

/** Why `name` cannot be a path component: EINVAL for '.', '..', '/' or NUL, ENAMETOOLONG over NAME_MAX bytes. */
function badName(name: string): 'EINVAL' | 'ENAMETOOLONG' | undefined {
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) return 'EINVAL'
  // A UTF-16 unit is at most 3 UTF-8 bytes: only long names need counting.
  if (name.length * 3 > NAME_MAX && Buffer.byteLength(name) > NAME_MAX) return 'ENAMETOOLONG'
  return undefined
}

/**
 * Checks one name as the kernel hands it over (native transport): EINVAL for '', '.', '..',
 * '/' or NUL, ENAMETOOLONG over NAME_MAX bytes. Returns the name.
 */
export function checkName(name: string, syscall = 'lookup'): string {
  const bad = badName(name)
  if (bad) throw new FsError(bad, syscall, name)
  return name
}

/**
 * Whether a name arrived with bytes that are not UTF-8: fuse-native hands paths over as UTF-8
 * strings, decoding such bytes to U+FFFD, so the real name is lost and two names would collide.
 */
export function isUndecodableName(name: string): boolean {
  return name.includes('\uFFFD')
}

export function parentOf(p: UnionPath): UnionPath {
  const i = p.lastIndexOf('/')
  return i <= 0 ? '/' : p.slice(0, i)
}

export function baseName(p: UnionPath): string {
  return p.slice(p.lastIndexOf('/') + 1)
}

export function joinUnion(dir: UnionPath, name: string): UnionPath {
  return dir === '/' ? '/' + name : dir + '/' + name
}

/** True when `p` is `dir` or lies below it (normalized absolute paths: union or host). */
export function isWithin(p: UnionPath, dir: UnionPath): boolean {
  return dir === '/' || p === dir || p.startsWith(dir + '/')
}

/** '/a/b/c' → ['/a', '/a/b', '/a/b/c']. */
export function ancestorsAndSelf(p: UnionPath): UnionPath[] {
  if (p === '/') return []
  const out: UnionPath[] = []
  let i = 0
  while ((i = p.indexOf('/', i + 1)) !== -1) out.push(p.slice(0, i))
  out.push(p)
  return out
}
