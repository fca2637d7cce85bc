// Mount lifecycle: mount a LayerFs through fuse-native with tuned options, notice when the mount
// goes away (umount from outside), unmount on request.
import type { LayerFs } from '../layerfs.js'
import { fs } from '../fs.js'
import { createLogger } from '../log.js'
import { ConfigError, isMountpoint } from '../options.js'
import { Activity } from './activity.js'
import { makeFuseOps } from './adapter.js'
import { loadFuse, type FuseInstance } from './binding.js'
import { unmountPath, type UnmountOptions } from './unmount.js'
import { tryNativeFuse } from './kernel/addon.js'
import { mountKernel } from './kernel/mount.js'
import type { PollStats } from './kernel/session.js'
import { warmUp } from '../warm-up.js'

const log = createLogger('layerfs:mount')

export interface ServeOptions {
  /** Share the mount with every user (as root: on by default, with default_permissions). */
  readonly allowOther?: boolean
  /** Kernel cache lifetimes in seconds (docs/design.md "Caching"). */
  readonly entryTimeout?: number
  readonly attrTimeout?: number
  readonly negativeTimeout?: number
  /**
   * Pick up changes made directly in the branch directories within this many seconds: kernel
   * entry/attr/negative timeouts of this length, auto_cache instead of kernel_cache, and
   * resolutions cached by the daemon for at most as long (docs/control.md "Changes underneath").
   */
  readonly revalidate?: number
  /** libfuse's own request trace on stderr. */
  readonly fuseDebug?: boolean
  /**
   * Exact hard-link semantics across names (attr_timeout=0, auto_cache instead of kernel_cache):
   * every stat and open asks the daemon. Slower; see docs/design.md "Hard links".
   */
  readonly coherent?: boolean
  /** Honour device nodes / setuid bits (libfuse mounts nodev,nosuid by default). Root only. */
  readonly dev?: boolean
  readonly suid?: boolean
  /**
   * Which FUSE transport serves the mount: 'native' (layerfs's own, /dev/fuse on the JS
   * thread, modern protocol; root only) or 'fuse-native' (libfuse 2 through fuse-native).
   * Default: LAYERFS_TRANSPORT, else native when it is built and we are root.
   */
  readonly transport?: Transport
  /**
   * Native transport: the kernel reads files of read-only branches opened read-only straight from
   * the branch (FUSE passthrough), where it allows (root, Linux 6.9+). Default on; false turns it off.
   */
  readonly passthrough?: boolean
  /**
   * Native transport: after answering the last queued request, keep reading /dev/fuse for up to
   * this many microseconds before the thread sleeps, so a client's next request (often 10–20 µs
   * later) costs no wake-up. The window adapts below this bound and closes when requests are
   * sparse (docs/transport.md "Busy polling"). 0 turns it off. Default: $LAYERFS_BUSY_POLL_US,
   * else DEFAULT_BUSY_POLL_MICROS.
   */
  readonly busyPoll?: number
  /**
   * Native transport: the kernel's writeback cache (FUSE_WRITEBACK_CACHE, as fuse-overlayfs
   * mounts by default). A write fills the page cache and returns; the kernel sends the data
   * later (at close, fsync, sync or under memory pressure), and keeps file sizes and times
   * itself. Faster small writes; in exchange ENOSPC/EIO surface at close or fsync, not at write,
   * and nothing may change files underneath (docs/transport.md "Writeback cache"). Default off.
   */
  readonly writebackCache?: boolean
}

/** The busy-polling bound of the native transport, µs (docs/transport.md "Busy polling"). */
export const DEFAULT_BUSY_POLL_MICROS = 30
/** Larger windows only burn CPU: the requests worth catching come within tens of µs. */
export const MAX_BUSY_POLL_MICROS = 1000

/** A busy-polling bound from the CLI, the API or $LAYERFS_BUSY_POLL_US: whole µs, 0–1000. */
export function parseBusyPoll(v: string | number): number {
  const n = typeof v === 'number' ? v : v.trim() === '' ? NaN : Number(v)
  if (!Number.isInteger(n) || n < 0 || n > MAX_BUSY_POLL_MICROS) {
    throw new ConfigError('EINVAL', `busy poll '${v}' is not a whole number of microseconds from 0 to ${MAX_BUSY_POLL_MICROS}`)
  }
  return n
}

/** The bound `serve` uses for `opts` (see ServeOptions.busyPoll). */
export function busyPollMicros(opts: ServeOptions): number {
  if (opts.busyPoll !== undefined) return parseBusyPoll(opts.busyPoll)
  const fromEnv = process.env.LAYERFS_BUSY_POLL_US
  if (fromEnv === undefined) return DEFAULT_BUSY_POLL_MICROS
  try {
    return parseBusyPoll(fromEnv)
  } catch (e) {
    throw new ConfigError('EINVAL', `LAYERFS_BUSY_POLL_US: ${(e as Error).message}`)
  }
}

export type Transport = 'native' | 'fuse-native'
export const TRANSPORTS: readonly Transport[] = ['native', 'fuse-native']

/** The transport `serve` uses for `opts` (see ServeOptions.transport). */
export function chooseTransport(requested?: Transport): Transport {
  const fromEnv = process.env.LAYERFS_TRANSPORT
  const want = requested ?? (fromEnv ? parseTransport(fromEnv) : undefined)
  if (want) return want
  return process.getuid?.() === 0 && tryNativeFuse() ? 'native' : 'fuse-native'
}

export function parseTransport(s: string): Transport {
  if ((TRANSPORTS as readonly string[]).includes(s)) return s as Transport
  throw new ConfigError('EINVAL', `unknown transport '${s}': use ${TRANSPORTS.join(' or ')}`)
}

export interface ServedMount {
  readonly mountpoint: string
  readonly core: LayerFs
  /** Operation counts, and the gate stack changes hold (lib/control/). */
  readonly activity: Activity
  /** The options the mount was made with (status). */
  readonly options: ServeOptions
  /** The transport serving it. */
  readonly transport: Transport
  /**
   * Makes the kernel drop what it cached (names, attributes, pages) after a stack change.
   * Resolves with the number of notifications sent; 0 where the transport cannot (fuse-native:
   * the kernel's entries expire after their timeout instead).
   */
  invalidateKernelCache(): Promise<number>
  /** Protocol details for status (native transport). */
  readonly protocol?: {
    readonly minor: number; readonly passthrough: boolean
    /** The kernel's writeback cache is on (asked for with writebackCache, and offered). */
    readonly writebackCache: boolean
    readonly nodes: () => number; readonly busyPoll: () => PollStats | undefined
    /** Metadata read-ahead of listed subdirectories (branches/read-ahead.ts); undefined when off. */
    readonly readAhead: () => { readonly dirs: number; readonly entries: number; readonly dropped: number; readonly kept: number } | undefined
  }
  /** Resolves when the mount point is no longer mounted (by unmount() or from outside). */
  readonly closed: Promise<void>
  unmount(opts?: UnmountOptions): Promise<void>
}

/** Seconds. All changes go through the daemon, which the kernel sees, so long lifetimes are safe. */
export const DEFAULT_TIMEOUTS = { entry: 60, attr: 60, negative: 60 }

/**
 * Operations that may copy a whole file up: no fuse-native timeout (its 15 s default would
 * answer ETIMEDOUT in the middle of a large copy). Everything else: 30 s, a bug guard.
 */
const UNBOUNDED_OPS = ['open', 'create', 'truncate', 'rename', 'link', 'chmod', 'chown', 'utimens', 'setxattr', 'removexattr']

/**
 * Serves `core` at `mountpoint` (a checked, real path) in this process. The caller must not
 * touch the mount synchronously from this process (style guide §4.4).
 * Throws ConfigError ENODEV without /dev/fuse, ENOSYS without libfuse2.
 */
export async function serve(core: LayerFs, mountpoint: string, opts: ServeOptions = {}): Promise<ServedMount> {
  if (!fs.existsSync('/dev/fuse')) throw new ConfigError('ENODEV', '/dev/fuse is missing: load the fuse module (modprobe fuse) or pass the device in')
  const transport = chooseTransport(opts.transport)
  if (opts.passthrough && transport !== 'native') throw new ConfigError('EINVAL', 'passthrough needs the native transport (--transport native)')
  if (opts.busyPoll && transport !== 'native') throw new ConfigError('EINVAL', 'busy polling needs the native transport (--transport native)')
  checkWriteback(opts, transport)
  return transport === 'native' ? serveNative(core, mountpoint, opts) : serveFuseNative(core, mountpoint, opts)
}

/**
 * The writeback cache's conditions: the native transport (libfuse 2 has no writeback cache), and
 * none of the modes that pick up changes made underneath, since with it the kernel keeps a
 * regular file's size and times itself and never takes them from the daemon again.
 */
export function checkWriteback(opts: ServeOptions, transport: Transport): void {
  if (!opts.writebackCache) return
  if (transport !== 'native') throw new ConfigError('EINVAL', 'the writeback cache needs the native transport (--transport native)')
  if (opts.coherent) throw new ConfigError('EINVAL', '--writeback-cache and --coherent exclude each other: with the writeback cache the kernel keeps file sizes and times itself')
  if (opts.revalidate !== undefined) throw new ConfigError('EINVAL', '--writeback-cache and --revalidate exclude each other: the kernel would never take a changed file size from the branches')
  if (opts.passthrough) throw new ConfigError('EINVAL', '--writeback-cache and --passthrough exclude each other: the kernel passes no file through under the writeback cache')
}

/** Cache lifetimes (seconds) and page-cache policy: both transports, and status. */
export function cachePolicy(opts: ServeOptions): { entry: number; attr: number; negative: number; keepCache: boolean } {
  // --revalidate N: the kernel keeps names and attributes N seconds at most (explicit timeouts
  // still win), and re-checks file pages at open instead of keeping them.
  const rv = opts.revalidate
  return {
    entry: opts.entryTimeout ?? rv ?? DEFAULT_TIMEOUTS.entry,
    attr: opts.coherent ? 0 : opts.attrTimeout ?? rv ?? DEFAULT_TIMEOUTS.attr,
    negative: opts.negativeTimeout ?? rv ?? DEFAULT_TIMEOUTS.negative,
    keepCache: !opts.coherent && rv === undefined,
  }
}

async function serveNative(core: LayerFs, mountpoint: string, opts: ServeOptions): Promise<ServedMount> {
  const c = cachePolicy(opts)
  const root = process.getuid?.() === 0
  const km = await mountKernel(core, mountpoint, {
    allowOther: opts.allowOther ?? root, entryTimeout: c.entry, attrTimeout: c.attr, negativeTimeout: c.negative,
    // The kernel turns passthrough off under the writeback cache (process_init_reply): not asked.
    keepCache: c.keepCache, passthrough: opts.passthrough ?? !opts.writebackCache, dev: opts.dev ?? false, suid: opts.suid ?? false,
    busyPollMicros: busyPollMicros(opts), writebackCache: opts.writebackCache ?? false,
  })
  let finished = false
  const closed = km.ended.then(() => {
    if (finished) return
    finished = true
    core.close()
  })
  return {
    mountpoint, core, closed, activity: km.activity, options: opts, transport: 'native',
    invalidateKernelCache: () => km.session.invalidateAll(),
    protocol: {
      minor: km.session.negotiated?.minor ?? 0,
      passthrough: km.session.negotiated?.passthrough ?? false,
      writebackCache: km.session.negotiated?.writebackCache ?? false,
      nodes: () => km.session.nodes.size,
      busyPoll: () => km.session.pollStats(),
      readAhead: () => (km.session.readAhead.enabled ? { ...km.session.readAhead.stats } : undefined),
    },
    async unmount(uopts?: UnmountOptions) {
      await km.unmount(uopts)
      if (!uopts?.lazy && !finished) {
        finished = true
        core.close()
      }
    },
  }
}

async function serveFuseNative(core: LayerFs, mountpoint: string, opts: ServeOptions): Promise<ServedMount> {
  // The first operations would otherwise pay V8's compilation (the native transport warms its
  // own session, which runs the core too: kernel/warm-up.ts).
  if (core.work) await warmUp(core.work.tempPath('warm-up'))
  const { Fuse, setUnmount, fixedBinding } = loadFuse()
  if (!fixedBinding) {
    log.warnOnce('prebuilt-binding', 'the fixed FUSE binding is not built (npm install runs scripts/build-fuse-binding.mjs): times set through the mount lose their mtime')
  }
  // fuse-native's own close path calls this after we unmounted: tolerate 'not mounted'.
  setUnmount((mnt) => (isMountpoint(mnt) ? unmountPath(mnt) : Promise.resolve()))
  const root = process.getuid?.() === 0
  const allowOther = opts.allowOther ?? root
  // Given here rather than through fuse-native's options, which drop a timeout of 0.
  const c = cachePolicy(opts)
  const extra = [
    'use_ino', // our inode numbers, stable across copy-up, instead of libfuse's
    'big_writes', 'max_write=131072', 'max_read=131072',
    `entry_timeout=${c.entry}`,
    `attr_timeout=${c.attr}`,
    `negative_timeout=${c.negative}`,
    'default_permissions', // the kernel checks permissions against the merged attributes
    // open(O_TRUNC) reaches us with O_TRUNC (else the kernel strips it and truncates later):
    // a lower file opened with O_TRUNC is copied up empty, not copied whole and then cut.
    'atomic_o_trunc',
    // kernel_cache keeps file pages across opens (every write goes through us, so they stay
    // right) — except for the other names of a hard link, which libfuse 2 gives kernel inodes
    // of their own: --coherent revalidates pages at open (auto_cache) and attributes always.
    c.keepCache ? 'kernel_cache' : 'auto_cache',
  ]
  if (!core.upper) extra.push('ro')
  if (opts.dev) extra.push('dev')
  if (opts.suid) extra.push('suid')
  const timeout: Record<string, number | false> = { default: 30_000 }
  for (const op of UNBOUNDED_OPS) timeout[op] = false
  const activity = new Activity()
  const fuse: FuseInstance = new Fuse(mountpoint, makeFuseOps(core, activity), {
    fsname: 'layerfs', subtype: 'layerfs', allowOther,
    debug: opts.fuseDebug ?? false,
    timeout, extraOptions: extra,
  })
  await new Promise<void>((resolve, reject) => {
    fuse.mount((err) => (err ? reject(new ConfigError('EIO', `mount on '${mountpoint}' failed: ${err.message}`)) : resolve()))
  })
  log.debug('mounted %s', mountpoint)

  let onClosed!: () => void
  const closed = new Promise<void>((r) => (onClosed = r))
  // Notice an unmount done from outside (umount, fusermount -u): fuse-native does not report it.
  const poll = setInterval(() => {
    if (!isMountpoint(mountpoint)) finish()
  }, 100)
  poll.unref()
  let finished = false
  function finish(): void {
    if (finished) return
    finished = true
    clearInterval(poll)
    core.close()
    onClosed()
  }
  return {
    mountpoint, core, closed, activity, options: opts, transport: 'fuse-native',
    invalidateKernelCache: async () => 0,
    async unmount(uopts?: UnmountOptions) {
      if (isMountpoint(mountpoint)) {
        await unmountPath(mountpoint, uopts)
        await new Promise<void>((resolve) => fuse.unmount(() => resolve())).catch(() => undefined)
      }
      finish()
    },
  }
}
