// The native FUSE transport's view of layerfs's addon (loaded by lib/native.ts): the calls it
// makes, and a clear error when the addon was not built.
import { nativeAddon } from '../../native.js'
import { ConfigError } from '../../options.js'

export interface NativeFuse {
  /** A non-blocking, close-on-exec descriptor of /dev/fuse. */
  openDevice(): number
  mount(source: string, target: string, fstype: string, flags: number, data: string): void
  /**
   * Reads requests into `buffer` on the JS thread and calls `onRequest(length)`, or `(-errno)`
   * once at the end. `pollMicros`: how long, at most, to keep reading after the queue empties
   * before the thread sleeps (0: never; the window adapts below it, native/layerfs_fuse.c).
   */
  start(fd: number, buffer: Buffer, onRequest: (n: number) => void, pollMicros: number): object
  /** [window µs now, its bound µs, requests read while polling, returns to the event loop]; not after stop(). */
  pollStats(session: object): readonly number[]
  /** Reads the next requests into `buffer`; the old one is JS's to keep. */
  setBuffer(session: object, buffer: Buffer): void
  stop(session: object): void
  /** Whether no request waits on `fd` (/dev/fuse) now: poll(2) without waiting. */
  queueEmpty(fd: number): boolean
  /** write(2) of `buffer`'s first `len` bytes (one reply): bytes written or -errno. */
  reply(fd: number, buffer: Buffer, len: number): number
  backingOpen(devFd: number, fd: number): number
  backingClose(devFd: number, id: number): void
  /** Writes each message of `buffer` (concatenated, each with its length first) from a worker thread: 0 or -errno. */
  writeOffThread(fd: number, buffer: Buffer): Promise<number>
  /** copy_file_range(2) between two descriptors; bytes copied (short at the end of the source). */
  copyFileRange(fdIn: number, offIn: number, fdOut: number, offOut: number, len: number): number
}

/** The addon, or undefined (with the reason from `nativeFuseError`) when it is not built. */
export function tryNativeFuse(): NativeFuse | undefined {
  const addon = nativeAddon()
  return addon instanceof Error ? undefined : (addon as NativeFuse)
}

export function nativeFuseError(): string | undefined {
  const addon = nativeAddon()
  return addon instanceof Error ? String(addon.message).split('\n')[0] : undefined
}

/** The addon; ConfigError ENOSYS naming the build step when it is missing. */
export function loadNativeFuse(): NativeFuse {
  const addon = tryNativeFuse()
  if (!addon) {
    throw new ConfigError('ENOSYS', `the native FUSE transport is not built (${nativeFuseError()}): run \`npm rebuild layerfs\` or \`node scripts/build-native.mjs\` (needs a C compiler), or use --transport fuse-native`)
  }
  return addon
}
