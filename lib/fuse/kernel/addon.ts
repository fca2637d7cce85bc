// The one importer of layerfs's native addon (native/layerfs_fuse.c, built at install by
// scripts/build-native.mjs): loaded once, with a clear error when it was not built.
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { fs } from '../../fs.js'
import { ConfigError } from '../../options.js'

export interface NativeFuse {
  /** A non-blocking, close-on-exec descriptor of /dev/fuse. */
  openDevice(): number
  mount(source: string, target: string, fstype: string, flags: number, data: string): void
  /** Reads requests into `buffer` on the JS thread and calls `onRequest(length)`, or `(-errno)` once at the end. */
  start(fd: number, buffer: Buffer, onRequest: (n: number) => void): object
  /** Reads the next requests into `buffer`; the old one is JS's to keep. */
  setBuffer(session: object, buffer: Buffer): void
  stop(session: object): void
  backingOpen(devFd: number, fd: number): number
  backingClose(devFd: number, id: number): void
  /** Writes each message of `buffer` (concatenated, each with its length first) from a worker thread: 0 or -errno. */
  writeOffThread(fd: number, buffer: Buffer): Promise<number>
  /** copy_file_range(2) between two descriptors; bytes copied (short at the end of the source). */
  copyFileRange(fdIn: number, offIn: number, fdOut: number, offOut: number, len: number): number
}

// lib/fuse/kernel/ in the sources (tests), dist/lib/fuse/kernel/ once built.
const ADDONS = ['../../../native/build/Release/layerfs_fuse.node', '../../../../native/build/Release/layerfs_fuse.node']
  .map((rel) => fileURLToPath(new URL(rel, import.meta.url)))

let loaded: NativeFuse | Error | undefined

/** The addon, or undefined (with the reason from `nativeFuseError`) when it is not built. */
export function tryNativeFuse(): NativeFuse | undefined {
  if (loaded === undefined) {
    try {
      const file = ADDONS.find((f) => fs.existsSync(f)) ?? ADDONS[1]!
      loaded = createRequire(import.meta.url)(file) as NativeFuse
    } catch (e) {
      loaded = e as Error
    }
  }
  return loaded instanceof Error ? undefined : loaded
}

export function nativeFuseError(): string | undefined {
  tryNativeFuse()
  return loaded instanceof Error ? String(loaded.message).split('\n')[0] : undefined
}

/** The addon; ConfigError ENOSYS naming the build step when it is missing. */
export function loadNativeFuse(): NativeFuse {
  const addon = tryNativeFuse()
  if (!addon) {
    throw new ConfigError('ENOSYS', `the native FUSE transport is not built (${nativeFuseError()}): run \`npm rebuild layerfs\` or \`node scripts/build-native.mjs\` (needs a C compiler), or use --transport fuse-native`)
  }
  return addon
}
