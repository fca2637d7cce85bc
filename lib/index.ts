// The public API of layerfs: mount a stack (in a daemon process, or in this one), parse branch
// specs, and work on a stack in-process without FUSE (UnionView).
import type { BranchSpec } from './branches/stack.js'
import { startDaemon } from './daemon/start.js'
import { parseBusyPoll, serve, type ServeOptions, type ServedMount } from './fuse/mount.js'
import { LayerFs } from './layerfs.js'
import { checkMountpoint, ConfigError, isMountpoint, parseBranches, resolveStack, type BranchInput } from './options.js'
import { unmountPath } from './fuse/unmount.js'

export { parseBranches, resolveStack, ConfigError, type BranchInput }
export { UnionView, type UnionStats, type UnionViewOptions } from './union-view.js'
export { LayerFs, type StatFs } from './layerfs.js'
export { FsError, type Errno } from './errors.js'
export type { Attr } from './attr.js'
export type { BranchSpec } from './branches/stack.js'
export type { BranchMode } from './branches/branch.js'
export { OPAQUE_MARKER, WHITEOUT_PREFIX, WORK_DIR, whiteoutNameFor, isReservedName } from './whiteout/encoding.js'

export interface MountOptions extends ServeOptions {
  /** A fresh rw branch on top of an all-ro stack (created when missing). */
  readonly upper?: string
  /**
   * Serve the mount from this process instead of a daemon process. Then this process must
   * never touch the mount synchronously (it would deadlock), and should raise
   * UV_THREADPOOL_SIZE before any async fs call if it awaits many operations on the mount.
   */
  readonly inProcess?: boolean
}

/** A live mount. `unmount()` resolves once the mount point is no longer mounted. */
export interface Mount extends AsyncDisposable {
  readonly mountpoint: string
  /** The daemon's pid (this process's pid for in-process mounts). */
  readonly pid: number
  unmount(opts?: { lazy?: boolean }): Promise<void>
}

/**
 * Mounts `branches` (top first: "A:B", "A=rw:B=ro", or parsed inputs) at `mountpoint`.
 * By default a daemon process serves it (the CLI's `mount --foreground`), so the caller may use
 * the mount freely; it resolves when the mount is ready. The mount lives until `unmount()` or
 * until the calling process ends (even by SIGKILL): then the daemon unmounts by itself. Rejects with ConfigError (one clear
 * message, nothing mounted) for a bad stack or mount point.
 */
export async function mount(branches: string | readonly BranchInput[], mountpoint: string, opts: MountOptions = {}): Promise<Mount> {
  const inputs = typeof branches === 'string' ? parseBranches(branches) : branches
  const specs = resolveStack({ branches: inputs, upper: opts.upper, mountpoint })
  if (opts.inProcess) return inProcessMount(specs, mountpoint, opts)
  checkMountpoint(mountpoint)
  const args = [
    ...(opts.allowOther === true ? ['--allow-other'] : opts.allowOther === false ? ['--no-allow-other'] : []),
    ...(opts.entryTimeout !== undefined ? ['--entry-timeout', String(opts.entryTimeout)] : []),
    ...(opts.attrTimeout !== undefined ? ['--attr-timeout', String(opts.attrTimeout)] : []),
    ...(opts.negativeTimeout !== undefined ? ['--negative-timeout', String(opts.negativeTimeout)] : []),
    ...(opts.coherent ? ['--coherent'] : []),
    ...(opts.transport !== undefined ? ['--transport', opts.transport] : []),
    ...(opts.passthrough === false ? ['--no-passthrough'] : opts.passthrough ? ['--passthrough'] : []),
    ...(opts.busyPoll !== undefined ? ['--busy-poll', String(parseBusyPoll(opts.busyPoll))] : []),
    ...(opts.revalidate !== undefined ? ['--revalidate', String(opts.revalidate)] : []),
    ...(opts.writebackCache ? ['--writeback-cache'] : []),
    specs.map((s) => `${s.path.replace(/:/g, '\\:')}=${s.mode}`).join(':'),
    mountpoint,
  ]
  const { child, mountpoint: real } = await startDaemon(args, { watchParent: true })
  child.unref() // this process may exit with the mount up; the daemon then unmounts by itself
  const exited = new Promise<void>((r) => (child.exitCode !== null ? r() : child.once('exit', () => r())))
  const m: Mount = {
    mountpoint: real,
    pid: child.pid!,
    async unmount(uopts = {}) {
      if (isMountpoint(real)) await unmountPath(real, { lazy: uopts.lazy })
      await exited
    },
    [Symbol.asyncDispose]() { return m.unmount() },
  }
  return m
}

async function inProcessMount(specs: BranchSpec[], mountpoint: string, opts: MountOptions): Promise<Mount> {
  const real = checkMountpoint(mountpoint)
  const core = new LayerFs(specs, { cacheTtlMs: opts.revalidate !== undefined ? opts.revalidate * 1000 : undefined })
  let served: ServedMount
  try {
    served = await serve(core, real, opts)
  } catch (e) {
    core.close() // nothing mounted: leave the rw branch as it was (no work area)
    throw e
  }
  const m: Mount = {
    mountpoint: real,
    pid: process.pid,
    async unmount(uopts = {}) {
      await served.unmount({ lazy: uopts.lazy })
    },
    [Symbol.asyncDispose]() { return m.unmount() },
  }
  return m
}
export { run, type RunOptions, type RunInfo } from './launcher/run.js'
export { diff, formatChanges, type Change, type ChangeKind, type DiffOptions } from './image/diff.js'
export { commit, type CommitOptions, type CommitResult } from './image/commit.js'
export { layerTar } from './image/layer-tar.js'
export { type Compression } from './image/compress.js'
export { LayerStore, defaultStoreDir, type LayerRef, type ProgressFn } from './image/store.js'
export { readImage, unpackImage, imageBranches, parseImageRef, type ImageInfo, type ImageLayer } from './image/oci.js'
export { imageStack, branchSpec, type ImageStack, type ImageStackOptions } from './image/image-stack.js'
export { appendLayer, type AppendOptions, type AppendResult } from './image/append.js'
export { whichBranch, listLayers, mountStatus, addBranch, removeBranch, checkpoint } from './control/api.js'
export type { WhichResult, LsEntry, StatusResult, StackChangeResult, BranchInfo } from './control/protocol.js'
export type { Explanation, BranchEntry, HiddenBy } from './branches/explain.js'
export { ORIGIN_XATTR } from './layerfs.js'
