// Branch specs ("A=rw:B=ro"), overlayfs-style -o options, and the checks that refuse a bad stack
// before anything is mounted (cf. overlayfs params.c and ovl_check_overlapping_layers).
import * as path from 'node:path'
import type { BranchMode } from './branches/branch.js'
import type { BranchSpec } from './branches/stack.js'
import { fs } from './fs.js'
import { isWithin } from './paths.js'

/** A configuration problem: one clear line for the user, nothing touched on disk. */
export class ConfigError extends Error {
  readonly code: string
  constructor(code: string, message: string) {
    super(message)
    this.name = 'ConfigError'
    this.code = code
  }
}

/** A branch as written by the user: a path and, when given, a mode. */
export interface BranchInput {
  readonly path: string
  readonly mode?: BranchMode
}

/**
 * Parses a stack spec, top branch first: "A:B", "A=rw:B=ro". A ':' inside a path is written
 * '\:' (as overlayfs' lowerdir). Throws ConfigError EINVAL for an empty branch or a mode that
 * is not rw/ro. Pure: does not look at the disk.
 */
export function parseBranches(spec: string): BranchInput[] {
  if (typeof spec !== 'string' || spec === '') throw new ConfigError('EINVAL', 'empty branch spec')
  const parts: string[] = []
  let cur = ''
  for (let i = 0; i < spec.length; i++) {
    const c = spec[i]!
    if (c === '\\' && spec[i + 1] === ':') { cur += ':'; i++; continue }
    if (c === ':') { parts.push(cur); cur = ''; continue }
    cur += c
  }
  parts.push(cur)
  return parts.map((part, i) => {
    if (part === '') throw new ConfigError('EINVAL', `malformed branch spec '${spec}': branch ${i + 1} is empty`)
    const eq = part.lastIndexOf('=')
    if (eq === -1) return { path: part }
    const dir = part.slice(0, eq)
    const mode = part.slice(eq + 1)
    if (dir === '') throw new ConfigError('EINVAL', `malformed branch spec '${spec}': '${part}' has no directory`)
    if (mode !== 'rw' && mode !== 'ro') {
      throw new ConfigError('EINVAL', `branch '${dir}' has mode '${mode}': a mode is 'rw' or 'ro'`)
    }
    return { path: dir, mode }
  })
}

/** What `-o` carries: overlayfs-style dirs (lowerdir top first) and the rest, passed on. */
export interface MountOptionInput {
  lowerdir?: string
  upperdir?: string
  workdir?: string
  /** Options that are not about the stack (ro, allow_other, …), in order. */
  other: string[]
}

/** Parses "-o lowerdir=L2:L1,upperdir=U,workdir=W,ro" (commas inside values escaped as '\,'). */
export function parseMountOptions(opts: readonly string[]): MountOptionInput {
  const out: MountOptionInput = { other: [] }
  for (const group of opts) {
    for (const raw of group.split(/(?<!\\),/)) {
      const o = raw.replace(/\\,/g, ',')
      if (o === '') continue
      const eq = o.indexOf('=')
      const key = eq === -1 ? o : o.slice(0, eq)
      const value = eq === -1 ? '' : o.slice(eq + 1)
      if (key === 'lowerdir' || key === 'upperdir' || key === 'workdir') {
        if (value === '') throw new ConfigError('EINVAL', `mount option '${key}' needs a directory`)
        out[key] = value
      } else {
        out.other.push(o)
      }
    }
  }
  return out
}

export interface StackRequest {
  readonly branches: readonly BranchInput[]
  /** A rw branch to put on top of an all-ro stack (created when missing). */
  readonly upper?: string
  /** The mount point, when checking for a mount (omit for the in-process view). */
  readonly mountpoint?: string
  /** Set by the caller once the mount point has been checked already (the daemon re-check). */
  readonly skipMountpointCheck?: boolean
}

function isWritableDir(dir: string): boolean {
  try {
    fs.accessSync(dir, fs.constants.W_OK)
    return true
  } catch {
    return false
  }
}

function realDir(p: string, what: string): string {
  let st: fs.Stats
  try {
    st = fs.statSync(p)
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'EIO'
    if (code === 'ENOENT') throw new ConfigError('ENOENT', `${what} '${p}' does not exist`)
    if (code === 'ENOTCONN') throw new ConfigError('ENOTCONN', `${what} '${p}' is a stale mount (run: layerfs umount ${p})`)
    throw new ConfigError(code, `${what} '${p}': ${(e as Error).message}`)
  }
  if (!st.isDirectory()) throw new ConfigError('ENOTDIR', `${what} '${p}' is not a directory`)
  return fs.realpathSync(p)
}

/** The real path a missing directory will have once created: its nearest existing ancestor, resolved. */
function futurePath(p: string): string {
  const tail: string[] = []
  let head = path.resolve(p)
  while (!fs.existsSync(head) && path.dirname(head) !== head) {
    tail.unshift(path.basename(head))
    head = path.dirname(head)
  }
  return path.join(fs.realpathSync(head), ...tail)
}

/**
 * Turns the user's stack into checked BranchSpecs, top first, with absolute real paths.
 * Rules (union-contract.md "Branches"): without modes the first branch is rw when writable
 * and the others ro; with any mode given, unmarked branches are ro; at most one rw branch, and
 * it must be the top one; --upper needs an all-ro stack. Refused: missing or non-directory
 * branches, a branch given twice, branches inside one another, a branch inside the mount
 * point or the mount point inside a branch, a mount point that is not an empty directory.
 */
export function resolveStack(req: StackRequest): BranchSpec[] {
  if (req.branches.length === 0) throw new ConfigError('EINVAL', 'no branches given')
  const explicit = req.branches.some((b) => b.mode !== undefined)
  if (req.upper !== undefined) {
    const rw = req.branches.find((b) => b.mode === 'rw')
    if (rw) throw new ConfigError('EINVAL', `--upper puts a rw branch on top, but branch '${rw.path}' is rw too`)
  }
  const specs: BranchSpec[] = req.branches.map((b, i) => {
    const real = realDir(b.path, 'branch')
    const mode: BranchMode = b.mode ?? (!explicit && req.upper === undefined && i === 0 && isWritableDir(real) ? 'rw' : 'ro')
    return { path: real, mode }
  })
  // A missing upper is created only once every check has passed: a refused stack writes nothing.
  const createUpper = req.upper !== undefined && !fs.existsSync(req.upper)
  if (req.upper !== undefined) specs.unshift({ path: createUpper ? futurePath(req.upper) : realDir(req.upper, 'upper'), mode: 'rw' })
  const rws = specs.filter((s) => s.mode === 'rw')
  if (rws.length > 1) throw new ConfigError('EINVAL', `two rw branches ('${rws[0]!.path}' and '${rws[1]!.path}'): at most one branch is rw`)
  if (rws.length === 1 && specs[0]!.mode !== 'rw') {
    throw new ConfigError('EINVAL', `rw branch '${rws[0]!.path}' must be the top (first) branch`)
  }
  for (let i = 0; i < specs.length; i++) {
    for (let j = 0; j < specs.length; j++) {
      if (i === j) continue
      const a = specs[i]!.path
      const b = specs[j]!.path
      if (a === b) throw new ConfigError('EINVAL', `branch '${a}' is given twice`)
      if (isWithin(a, b)) throw new ConfigError('ELOOP', `overlapping branches: '${a}' is inside '${b}'`)
    }
  }
  if (req.mountpoint !== undefined) {
    // Nesting first: a branch inside the mount point also makes it non-empty, and the
    // nesting is the precise complaint.
    const mnt = req.skipMountpointCheck ? path.resolve(req.mountpoint) : realDir(req.mountpoint, 'mount point')
    for (const s of specs) {
      if (isWithin(s.path, mnt)) throw new ConfigError('ELOOP', `branch '${s.path}' is inside the mount point '${mnt}'`)
      if (isWithin(mnt, s.path)) throw new ConfigError('ELOOP', `mount point '${mnt}' is inside branch '${s.path}'`)
    }
    if (!req.skipMountpointCheck) checkMountpoint(mnt)
  }
  if (createUpper) {
    try {
      fs.mkdirSync(req.upper!, { recursive: true })
    } catch (e) {
      throw new ConfigError((e as NodeJS.ErrnoException).code ?? 'EIO', `cannot create upper '${req.upper}': ${(e as Error).message}`)
    }
  }
  return specs
}

/** The mount point must be an existing, empty directory that is not mounted on. Returns its real path. */
export function checkMountpoint(mnt: string): string {
  const real = realDir(mnt, 'mount point')
  if (isMountpoint(real)) throw new ConfigError('EBUSY', `mount point '${real}' is already mounted on`)
  if (fs.readdirSync(real).length > 0) throw new ConfigError('ENOTEMPTY', `mount point '${real}' is not an empty directory`)
  return real
}

/** Whether `dir` (a real path) is a mount point, from /proc/self/mountinfo (no access to the mount). */
export function isMountpoint(dir: string): boolean {
  return mountedFsType(dir) !== undefined
}

/** The file system type mounted at `dir`, e.g. 'fuse.layerfs', or undefined. Reads only /proc. */
export function mountedFsType(dir: string): string | undefined {
  let info: string
  try {
    info = fs.readFileSync('/proc/self/mountinfo', 'utf8')
  } catch {
    return undefined
  }
  let found: string | undefined
  for (const line of info.split('\n')) {
    const f = line.split(' ')
    if (f.length < 10) continue
    const point = f[4]!.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)))
    if (point !== dir) continue
    const sep = f.indexOf('-')
    found = f[sep + 1] // the last mount on a path is the visible one
  }
  return found
}
