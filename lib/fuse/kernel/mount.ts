// Mounting with layerfs's own transport: open /dev/fuse, mount(2) it with the union's options,
// serve the connection on the JS thread (session.ts) until the kernel ends it (ENODEV).
import { constants } from 'node:os'
import { fs } from '../../fs.js'
import type { LayerFs } from '../../layerfs.js'
import { createLogger } from '../../log.js'
import { ConfigError, isMountpoint } from '../../options.js'
import { Activity } from '../activity.js'
import { unmountPath, type UnmountOptions } from '../unmount.js'
import { loadNativeFuse } from './addon.js'
import { KernelSession } from './session.js'
import { warmUpSession } from './warm-up.js'

const log = createLogger('layerfs:mount')

const MS_RDONLY = 1
const MS_NOSUID = 2
const MS_NODEV = 4

/** Requests of up to 1 MiB (max_pages 256): fewer round trips for large reads and writes. */
export const MAX_IO = 1 << 20

export interface KernelMountOptions {
  readonly allowOther: boolean
  readonly entryTimeout: number
  readonly attrTimeout: number
  readonly negativeTimeout: number
  readonly keepCache: boolean
  readonly passthrough: boolean
  readonly dev: boolean
  readonly suid: boolean
  /** Busy polling of /dev/fuse after its queue empties, µs at most (0: off; session.ts). */
  readonly busyPollMicros: number
  /** Ask for the kernel's writeback cache (session.ts, docs/transport.md "Writeback cache"). */
  readonly writebackCache: boolean
}

export interface KernelMount {
  readonly session: KernelSession
  readonly activity: Activity
  /** Resolves when the kernel ends the connection (unmounted and every file closed). */
  readonly ended: Promise<void>
  unmount(opts?: UnmountOptions): Promise<void>
}

/** Mounts `core` at `mountpoint` (a checked real path) and serves it; resolves once INIT is done. */
export async function mountKernel(core: LayerFs, mountpoint: string, o: KernelMountOptions): Promise<KernelMount> {
  if (process.getuid?.() !== 0) throw new ConfigError('EPERM', 'the native transport mounts with mount(2) and needs root: use --transport fuse-native')
  const addon = loadNativeFuse()
  let fd: number
  try {
    fd = addon.openDevice()
  } catch (e) {
    throw new ConfigError('ENODEV', `cannot open /dev/fuse: ${(e as Error).message}`)
  }
  const activity = new Activity()
  const sessionOpts = {
    entryTimeout: o.entryTimeout, attrTimeout: o.attrTimeout, negativeTimeout: o.negativeTimeout,
    keepCache: o.keepCache, passthrough: o.passthrough, maxIo: MAX_IO,
    pollMicros: o.busyPollMicros, writebackCache: o.writebackCache,
    // LAYERFS_PASS_WRITERS=0: rw-branch handles never pass through (for A/Bs).
    passWriters: process.env.LAYERFS_PASS_WRITERS !== '0',
  }
  // The first requests of each kind would otherwise pay V8's compilation (warm-up.ts).
  if (core.work) await warmUpSession(addon, core.work.tempPath('warm-up'), sessionOpts)
  const session = new KernelSession(core, activity, addon, fd, sessionOpts)
  const data = [
    `fd=${fd}`, 'rootmode=40000', 'user_id=0', 'group_id=0',
    'default_permissions', // the kernel checks permissions against the merged attributes
    `max_read=${MAX_IO}`,
  ]
  if (o.allowOther) data.push('allow_other')
  let flags = 0
  if (!o.dev) flags |= MS_NODEV
  if (!o.suid) flags |= MS_NOSUID
  if (!core.upper) flags |= MS_RDONLY
  try {
    addon.mount('layerfs', mountpoint, 'fuse.layerfs', flags, data.join(','))
  } catch (e) {
    fs.closeSync(fd)
    throw new ConfigError('EIO', `mount on '${mountpoint}' failed: ${(e as Error).message}`)
  }
  let onEnded!: () => void
  const ended = new Promise<void>((r) => (onEnded = r))
  let closedFd = false
  const end = (err: number): void => {
    if (err !== -constants.errno.ENODEV) log.debug('FUSE connection ended: %d', err) // ENODEV: unmounted
    core.setIdleCheck(undefined)
    session.stop()
    if (!closedFd) {
      closedFd = true
      fs.closeSync(fd)
    }
    onEnded()
  }
  // A request is read before it is answered: an empty queue means no one else waits (copy-up).
  // LAYERFS_IDLE_COPY=0: never ask (larger copies always on a worker; for A/Bs).
  if (process.env.LAYERFS_IDLE_COPY !== '0') core.setIdleCheck(() => !closedFd && addon.queueEmpty(fd), fd)
  try {
    await session.start(end)
  } catch (e) {
    end(-5)
    throw e
  }
  log.debug('mounted %s (native transport, FUSE 7.%d)', mountpoint, session.negotiated?.minor)
  return {
    session, activity, ended,
    async unmount(uopts?: UnmountOptions) {
      if (isMountpoint(mountpoint)) await unmountPath(mountpoint, uopts)
      // Not lazy: the kernel ends the connection at once. Lazy with files open: when they close.
      if (!uopts?.lazy) await Promise.race([ended, new Promise((r) => setTimeout(r, 2000).unref())])
    },
  }
}
