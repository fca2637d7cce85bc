// What the control channel can do to a live mount: look up origins, report status, change the
// stack (branch add/remove, checkpoint). Runs in the daemon, on branch paths only: never on the
// mount (style guide §4.4), and every stack change holds the adapter's gate (lib/fuse/activity.ts).
import * as path from 'node:path'
import { explain, entryType } from '../branches/explain.js'
import { listMerged } from '../branches/readdir.js'
import { isDirResolution } from '../branches/resolve.js'
import type { BranchSpec } from '../branches/stack.js'
import { fs, lstatOrUndefined } from '../fs.js'
import { cachePolicy, type ServedMount } from '../fuse/mount.js'
import { joinUnion, normalizeUnionPath } from '../paths.js'
import { ConfigError, resolveStack } from '../options.js'
import { WORK_DIR } from '../whiteout/encoding.js'
import type { BranchInfo, ControlRequest, LsEntry, StackChangeResult, StatusResult, WhichResult } from './protocol.js'

export interface ServiceHooks {
  /** Called after every stack change (the daemon rewrites its record). */
  readonly onStackChange?: (specs: readonly BranchSpec[]) => void
  readonly started: Date
}

/** A control request's answer, or a thrown ConfigError/FsError carrying an errno code. */
export async function handleRequest(m: ServedMount, req: ControlRequest, hooks: ServiceHooks): Promise<unknown> {
  switch (req.op) {
    case 'which': return which(m, req.path)
    case 'ls': return ls(m, req.path)
    case 'status': return status(m, hooks)
    case 'branch-add': return branchAdd(m, req.dir, req, hooks)
    case 'branch-remove': return branchRemove(m, req.index, hooks)
    case 'checkpoint': return checkpoint(m, req.to, hooks)
    default: throw new ConfigError('EINVAL', `unknown control request '${(req as { op?: unknown }).op}'`)
  }
}

function branches(m: ServedMount): BranchInfo[] {
  return m.core.stack.all().map((b) => ({ index: b.index, path: b.root, mode: b.mode, openFiles: m.core.openFilesIn(b.root) }))
}

function which(m: ServedMount, p: string): WhichResult {
  const up = normalizeUnionPath(p, 'which')
  const res = m.core.resolver.resolve(up)
  const all = branches(m)
  return {
    path: up,
    visible: res !== undefined,
    origin: res ? all[res.hits[0]!.branch.index] : undefined,
    merged: res && isDirResolution(res) ? res.hits.map((h) => h.branch.index) : undefined,
    explanation: explain(m.core.stack, up),
  }
}

function ls(m: ServedMount, p: string): LsEntry[] {
  const up = normalizeUnionPath(p, 'ls')
  const dir = m.core.resolver.require(up, 'scandir')
  if (!isDirResolution(dir)) throw new ConfigError('ENOTDIR', `'${up}' is not a directory`)
  const out: LsEntry[] = []
  for (const name of listMerged(dir).sort()) {
    const child = m.core.resolver.resolve(joinUnion(up, name))
    if (!child) continue // changed underneath meanwhile
    const isDir = isDirResolution(child)
    out.push({
      name, type: entryType(child.hits[0]!.stats), index: child.hits[0]!.branch.index,
      merged: isDir ? child.hits.map((h) => h.branch.index) : undefined,
    })
  }
  return out
}

function status(m: ServedMount, hooks: ServiceHooks): StatusResult {
  const o = m.options
  const c = cachePolicy(o)
  return {
    mountpoint: m.mountpoint,
    pid: process.pid,
    started: hooks.started.toISOString(),
    uptimeSeconds: Math.round((Date.now() - hooks.started.getTime()) / 1000),
    branches: branches(m),
    openFiles: m.core.openFiles,
    cache: { resolutions: m.core.resolver.cache.size, inodes: m.core.inodes.size },
    copyUps: { ...m.core.copyUps },
    operations: { ...m.activity.counts },
    inflight: m.activity.inflight,
    transport: m.transport,
    protocol: m.protocol ? { minor: m.protocol.minor, passthrough: m.protocol.passthrough, writebackCache: m.protocol.writebackCache, kernelNodes: m.protocol.nodes(), busyPoll: m.protocol.busyPoll(), readAhead: m.protocol.readAhead() } : undefined,
    options: {
      entryTimeout: c.entry,
      attrTimeout: c.attr,
      negativeTimeout: c.negative,
      revalidate: o.revalidate,
      coherent: !!o.coherent,
    },
  }
}

/** The longest time the kernel may still answer from what it cached before a stack change. */
function kernelCacheSeconds(m: ServedMount): number {
  const c = cachePolicy(m.options)
  return Math.max(c.entry, c.attr, c.negative)
}

function inside(child: string, parent: string): boolean {
  return child === parent || child.startsWith(parent === '/' ? '/' : parent + '/')
}

/**
 * A host path given over the control channel must be absolute, normalized, outside the mount,
 * and free of symlinks (the client sends real paths): so checking it never reaches the mount,
 * which would deadlock the daemon. Each existing component is lstat'ed, never followed.
 */
function checkHostPath(p: string, m: ServedMount, what: string): void {
  if (typeof p !== 'string' || !path.isAbsolute(p) || path.resolve(p) !== p) throw new ConfigError('EINVAL', `${what} '${p}' must be an absolute, normalized path`)
  if (inside(p, m.mountpoint)) throw new ConfigError('ELOOP', `${what} '${p}' is inside the mount point '${m.mountpoint}'`)
  let cur = ''
  for (const part of p.split('/').filter(Boolean)) {
    cur += '/' + part
    const st = lstatOrUndefined(cur)
    if (!st) return
    if (st.isSymbolicLink()) throw new ConfigError('EINVAL', `${what} '${p}': '${cur}' is a symlink; give the real path`)
  }
}

async function changeStack(m: ServedMount, hooks: ServiceHooks, change: () => { specs: BranchSpec[]; moved?: { from: string; to: string } }): Promise<StackChangeResult & { sealed?: string }> {
  const result = await m.activity.exclusive(() => {
    const { specs, moved } = change()
    m.core.restack(specs, moved)
    hooks.onStackChange?.(specs)
    return { branches: branches(m), kernelCacheSeconds: kernelCacheSeconds(m), sealed: moved?.to }
  })
  // The native transport tells the kernel to drop its names, attributes and pages, once the
  // gate is open again: invalidating the pages of a file being written waits for that write,
  // whose request may be queued behind the gate. With fuse-native, they expire after their
  // timeout (reported to the caller).
  const invalidated = await m.invalidateKernelCache()
  return invalidated > 0 ? { ...result, kernelCacheSeconds: 0 } : result
}

/** Checks a whole new stack (options.ts rules), without touching the mount point itself. */
function checkedStack(m: ServedMount, specs: readonly BranchSpec[]): BranchSpec[] {
  return resolveStack({ branches: specs, mountpoint: m.mountpoint, skipMountpointCheck: true })
}

/**
 * The writeback cache keeps every regular file's size in the kernel, never taken from the daemon
 * again: a branch added or removed under a file it caches would leave that size wrong.
 */
function refuseUnderWriteback(m: ServedMount, what: string): void {
  if (m.protocol?.writebackCache) {
    throw new ConfigError('EINVAL', `cannot ${what} on a mount with the writeback cache: the kernel keeps its own file sizes (remount without --writeback-cache)`)
  }
}

async function branchAdd(m: ServedMount, dir: string, where: { below?: number; topRo?: boolean }, hooks: ServiceHooks): Promise<StackChangeResult> {
  refuseUnderWriteback(m, 'add a branch')
  checkHostPath(dir, m, 'branch')
  return changeStack(m, hooks, () => {
    const cur = m.core.stack.specs()
    let at: number
    if (where.topRo) at = m.core.upper ? 1 : 0
    else if (where.below !== undefined) {
      if (!Number.isInteger(where.below) || where.below < 0 || where.below >= cur.length) throw new ConfigError('EINVAL', `no branch ${where.below} (the stack has ${cur.length})`)
      at = where.below + 1
    } else at = cur.length
    const next = [...cur.slice(0, at), { path: dir, mode: 'ro' as const }, ...cur.slice(at)]
    return { specs: checkedStack(m, next) }
  })
}

async function branchRemove(m: ServedMount, index: number, hooks: ServiceHooks): Promise<StackChangeResult> {
  refuseUnderWriteback(m, 'remove a branch')
  return changeStack(m, hooks, () => {
    const cur = m.core.stack.specs()
    if (!Number.isInteger(index) || index < 0 || index >= cur.length) throw new ConfigError('EINVAL', `no branch ${index} (the stack has ${cur.length})`)
    if (cur.length === 1) throw new ConfigError('EINVAL', 'cannot remove the only branch')
    const b = cur[index]!
    if (b.mode === 'rw') throw new ConfigError('EINVAL', `branch ${index} is the rw branch: it cannot be removed (layerfs checkpoint seals it instead)`)
    const open = m.core.openFilesIn(b.path)
    if (open > 0) throw new ConfigError('EBUSY', `branch ${index} ('${b.path}') has ${open} open file${open === 1 ? '' : 's'}`)
    return { specs: cur.filter((_, i) => i !== index) }
  })
}

/** The default place of a checkpoint: UPPER.ckpt-N, the first free N. */
function defaultCheckpointDir(upper: string): string {
  for (let n = 1; ; n++) {
    const p = `${upper}.ckpt-${n}`
    if (!lstatOrUndefined(p)) return p
  }
}

/**
 * Seals the rw branch: its directory is renamed to `to` (a new ro branch just below the top)
 * and a fresh empty rw branch is made at the old path, in one synchronous step while no
 * changing operation is in flight. The merged view does not change. Handles open into the
 * sealed branch re-open in the new upper at their next write (LayerFs.restack).
 */
async function checkpoint(m: ServedMount, toArg: string | undefined, hooks: ServiceHooks): Promise<StackChangeResult> {
  const upper = m.core.upper
  if (!upper) throw new ConfigError('EROFS', 'the mount has no rw branch to checkpoint')
  if (toArg !== undefined) checkHostPath(toArg, m, 'checkpoint directory')
  return changeStack(m, hooks, () => {
    const up = m.core.upper!
    const to = toArg ?? defaultCheckpointDir(up.root)
    if (lstatOrUndefined(to)) throw new ConfigError('EEXIST', `checkpoint directory '${to}' already exists`)
    const cur = m.core.stack.specs()
    for (const s of cur) {
      if (inside(to, s.path) || inside(s.path, to)) throw new ConfigError('ELOOP', `checkpoint directory '${to}' overlaps branch '${s.path}'`)
    }
    if (inside(m.mountpoint, to)) throw new ConfigError('ELOOP', `mount point '${m.mountpoint}' would be inside '${to}'`)
    const st = fs.lstatSync(up.root)
    try {
      fs.renameSync(up.root, to)
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? 'EIO'
      const hint = code === 'EXDEV' ? ' (it must be on the rw branch\'s file system)' : code === 'EBUSY' ? ' (the rw branch is itself a mount point)' : ''
      throw new ConfigError(code, `cannot move the rw branch to '${to}': ${(e as Error).message}${hint}`)
    }
    try {
      fs.mkdirSync(up.root, { mode: st.mode & 0o7777 })
      fs.chownSync(up.root, st.uid, st.gid)
      fs.chmodSync(up.root, st.mode & 0o7777)
    } catch (e) {
      fs.renameSync(to, up.root) // give it back: nothing changed
      throw new ConfigError((e as NodeJS.ErrnoException).code ?? 'EIO', `cannot create a new rw branch at '${up.root}': ${(e as Error).message}`)
    }
    // The sealed branch is a layer now: no work area in it (nothing is in flight).
    fs.rmSync(to + '/' + WORK_DIR, { recursive: true, force: true })
    const specs = [{ path: up.root, mode: 'rw' as const }, { path: to, mode: 'ro' as const }, ...cur.slice(1)]
    return { specs, moved: { from: up.root, to } }
  })
}
