// The one importer of fuse-native: loads it with a clear error when libfuse2 is missing, and
// extends it with the options and fixes it lacks (use_ino, negative_timeout, big_writes…).
import { createRequire } from 'node:module'
import { fs } from '../fs.js'
import { ConfigError } from '../options.js'

const require = createRequire(import.meta.url)

/** The part of fuse-native's Fuse class layerfs uses. */
export interface FuseInstance {
  mount(cb: (err: Error | null) => void): void
  unmount(cb: (err: Error | null) => void): void
}
export type FuseCtor = new (mnt: string, ops: object, opts: object) => FuseInstance

type Signal = (code: number, ...rest: unknown[]) => void
interface FuseNativeInternals {
  ops: Record<string, (...args: any[]) => void>
  opts: { extraOptions?: string[] }
}

let cached: { Fuse: FuseCtor; setUnmount(fn: (mnt: string) => Promise<void>): void; fixedBinding: boolean } | undefined

/**
 * Whether fuse-native loads the binding scripts/build-fuse-binding.mjs built at install (utimens
 * fix) rather than its prebuilt one, which turns every mtime set through the mount into the atime.
 */
function hasFixedBinding(): boolean {
  try {
    const dir = require.resolve('fuse-native/package.json').replace(/package\.json$/, '')
    return fs.existsSync(dir + 'build/Release/LAYERFS_PATCHED')
  } catch {
    return false
  }
}

/**
 * fuse-native, subclassed. Throws ConfigError ENOSYS naming the Debian package when the
 * binding or libfuse.so.2 cannot be loaded.
 */
export function loadFuse(): NonNullable<typeof cached> {
  if (cached) return cached
  let Base: any
  try {
    Base = require('fuse-native')
  } catch (e) {
    const msg = String((e as Error).message)
    if (/libfuse\.so\.2/.test(msg)) throw new ConfigError('ENOSYS', 'libfuse.so.2 is missing: install it with `apt-get install libfuse2`')
    throw new ConfigError('ENOSYS', `cannot load the FUSE binding fuse-native: ${msg.split('\n')[0]}`)
  }
  class LayerfsFuse extends Base {
    /** fuse-native's own option list lacks several libfuse 2.9 options; append ours. */
    _fuseOptions(): string {
      const base: string = super._fuseOptions()
      const extra = (this as unknown as FuseNativeInternals).opts.extraOptions ?? []
      if (extra.length === 0) return base
      return base === '' ? '-o' + extra.join(',') : base + ',' + extra.join(',')
    }

    /** fuse-native answers fgetattr through getattr; keep the descriptor (unlinked open files). */
    _op_fgetattr(signal: Signal, path: string, fd: number): void {
      const self = this as unknown as FuseNativeInternals
      if (!self.ops.fgetattr) return (Base.prototype._op_fgetattr as Function).call(this, signal, path, fd)
      self.ops.fgetattr(path, fd, (err: number, stat: unknown) => {
        if (err) return signal(err)
        return signal(0, statArray(stat))
      })
    }

    /** fuse-native never answers ERANGE: a value larger than the caller's buffer must be refused. */
    _op_getxattr(signal: Signal, path: string, name: string, valueBuf: Buffer, position: number): void {
      const self = this as unknown as FuseNativeInternals
      self.ops.getxattr!(path, name, position, (err: number, value?: Buffer) => {
        if (err) return signal(err, valueBuf.buffer)
        if (!value) return signal(-61, valueBuf.buffer)
        if (valueBuf.length === 0) return signal(value.length, valueBuf.buffer)
        if (value.length > valueBuf.length) return signal(-34, valueBuf.buffer) // ERANGE
        value.copy(valueBuf)
        return signal(value.length, valueBuf.buffer)
      })
    }

    /**
     * fuse-native signals a readdir failure without the name and stat arrays, which its C side
     * reads anyway (uninitialized lengths): the caller got an empty listing instead of the errno.
     */
    _op_readdir(signal: Signal, path: string): void {
      const self = this as unknown as FuseNativeInternals
      self.ops.readdir!(path, (err: number, names?: string[]) => {
        if (err) return signal(err, [], [])
        return signal(0, names ?? [], [])
      })
    }

    /** Same for listxattr: the size query must be exact and a short buffer gives ERANGE. */
    _op_listxattr(signal: Signal, path: string, listBuf: Buffer): void {
      const self = this as unknown as FuseNativeInternals
      self.ops.listxattr!(path, (err: number, list?: string[]) => {
        if (err || !list) return signal(err || -5, listBuf.buffer)
        const joined = Buffer.from(list.map((n) => n + '\0').join(''))
        if (listBuf.length === 0) return signal(joined.length, listBuf.buffer)
        if (joined.length > listBuf.length) return signal(-34, listBuf.buffer)
        joined.copy(listBuf)
        return signal(joined.length, listBuf.buffer)
      })
    }
  }
  // fuse-native's getStatArray is not exported; rebuild it the same way (uint32 pairs).
  const statArray = (stat: any): Uint32Array => {
    const ints = new Uint32Array(18)
    const set2 = (i: number, n: number): void => { ints[i] = n % 4294967296; ints[i + 1] = Math.floor(n / 4294967296) }
    ints[0] = stat.mode; ints[1] = stat.uid; ints[2] = stat.gid; set2(3, stat.size)
    ints[5] = stat.dev ?? 0; ints[6] = stat.nlink; ints[7] = stat.ino; ints[8] = stat.rdev
    ints[9] = stat.blksize; set2(10, stat.blocks); set2(12, stat.atime); set2(14, stat.mtime); set2(16, stat.ctime)
    return ints
  }
  cached = {
    Fuse: LayerfsFuse as unknown as FuseCtor,
    fixedBinding: hasFixedBinding(),
    // fuse-native unmounts with `fusermount -uz` (lazy, and absent on some systems); use ours.
    setUnmount(fn) {
      Base.unmount = (mnt: string, cb: (err: Error | null) => void) => fn(mnt).then(() => cb(null), cb)
    },
  }
  return cached
}
