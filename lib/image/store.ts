// The layer store: each image layer unpacked once, in a directory named by its DiffID, verified
// before it is renamed into place, reused by every later mount. The dirs are ro branches.
import * as os from 'node:os'
import * as path from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { fs } from '../fs.js'
import { ConfigError } from '../options.js'
import { decompress } from './compress.js'
import { DigestTap, digestHex, isDigest } from './digest.js'
import { unpackTar, type UnpackStats } from './unpack.js'

/** A layer to bring into the store: its DiffID, and the blob digest when the image names it. */
export interface LayerRef {
  /** sha256 of the uncompressed tar (the image config's rootfs.diff_ids entry). */
  readonly diffId: string
  /** sha256 of the blob as stored in the image (compressed or not), when known. */
  readonly digest?: string
  /** Blob size in bytes, when known (progress bars). */
  readonly size?: number
}

/** Progress of one unpack: blob bytes read so far, out of `total` when known. */
export type ProgressFn = (layer: LayerRef, bytes: number, total: number | undefined) => void

/** The store used when none is given: $LAYERFS_STORE, else /var/lib/layerfs as root, else XDG data home. */
export function defaultStoreDir(): string {
  if (process.env.LAYERFS_STORE) return path.resolve(process.env.LAYERFS_STORE)
  if (process.getuid?.() === 0) return '/var/lib/layerfs'
  const data = process.env.XDG_DATA_HOME || path.join(os.homedir(), '.local', 'share')
  return path.join(data, 'layerfs')
}

/**
 * A content-addressed layer store at `root`:
 *   layers/sha256/<hex>/   an unpacked layer (a branch dir; never changed once renamed in)
 *   tmp/                   unpacks in progress (removed on failure, swept of stale ones)
 * The store dir is mode 0700: layers may hold setuid files that only a mount should expose.
 */
export class LayerStore {
  readonly root: string

  constructor(root: string = defaultStoreDir()) {
    this.root = path.resolve(root)
  }

  /** Host dir of a layer (present or not). Throws ConfigError EINVAL for a malformed DiffID. */
  layerDir(diffId: string): string {
    if (!isDigest(diffId)) throw new ConfigError('EINVAL', `'${diffId}' is not a sha256 digest`)
    return path.join(this.root, 'layers', 'sha256', digestHex(diffId))
  }

  /** Whether the layer is unpacked (and therefore verified) in the store. */
  has(diffId: string): boolean {
    return fs.statSync(this.layerDir(diffId), { throwIfNoEntry: false })?.isDirectory() ?? false
  }

  #prepare(): string {
    try {
      fs.mkdirSync(path.join(this.root, 'layers', 'sha256'), { recursive: true, mode: 0o700 })
      fs.chmodSync(this.root, 0o700)
      const tmp = path.join(this.root, 'tmp')
      fs.mkdirSync(tmp, { recursive: true, mode: 0o700 })
      return tmp
    } catch (e) {
      throw new ConfigError((e as NodeJS.ErrnoException).code ?? 'EIO', `layer store '${this.root}': ${(e as Error).message}`)
    }
  }

  /**
   * Unpacks `blob` (the layer as stored in the image: tar, tar+gzip or tar+zstd) into the store
   * unless the layer is there already, and returns its dir. The blob is fully read and checked
   * (its digest when `layer.digest` is given, the DiffID of its uncompressed tar always) before
   * the unpacked dir is renamed into place, so the store never holds a partial or unverified
   * layer; on any failure the temp dir is removed. Two processes unpacking the same layer race
   * harmlessly: the first rename wins. Throws ConfigError: EBADMSG (digest mismatch), EINVAL /
   * EPERM (a hostile entry, named), EIO (corrupt or truncated blob); each message names the layer.
   */
  async ingest(layer: LayerRef, blob: Readable, onProgress?: ProgressFn): Promise<string> {
    const final = this.layerDir(layer.diffId)
    if (layer.digest !== undefined && !isDigest(layer.digest)) throw new ConfigError('EINVAL', `layer ${layer.diffId}: '${layer.digest}' is not a sha256 digest`)
    if (this.has(layer.diffId)) {
      blob.resume() // drain: the caller may be reading an archive sequentially
      return final
    }
    const tmpRoot = this.#prepare()
    const tmp = fs.mkdtempSync(path.join(tmpRoot, `${digestHex(layer.diffId).slice(0, 12)}-`))
    fs.chmodSync(tmp, 0o755) // the layer root's mode unless the tar has a './' entry
    const blobTap = new DigestTap()
    if (onProgress) blobTap.onBytes = (n) => onProgress(layer, n, layer.size)
    const tarTap = new DigestTap()
    const stats: UnpackStats = { entries: 0 }
    try {
      const tar = decompress(Readable.from(pipeThrough(blob, blobTap)))
      pipeline(tar, tarTap).catch((e: unknown) => { tarTap.destroy(e as Error) })
      // unpackTar reads to the very end, so bytes after the end-of-archive blocks are hashed too.
      await unpackTar(tarTap, tmp, stats)
      if (layer.digest !== undefined && blobTap.digest() !== layer.digest) {
        throw new ConfigError('EBADMSG', `blob digest mismatch: expected ${layer.digest}, got ${blobTap.digest()}`)
      }
      if (tarTap.digest() !== layer.diffId) {
        throw new ConfigError('EBADMSG', `DiffID mismatch: the uncompressed tar is ${tarTap.digest()}`)
      }
      try {
        fs.renameSync(tmp, final)
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code
        if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw e
        fs.rmSync(tmp, { recursive: true, force: true }) // another process was first: same content
      }
      return final
    } catch (e) {
      blob.destroy()
      fs.rmSync(tmp, { recursive: true, force: true })
      const code = (e as { code?: string }).code ?? 'EIO'
      const msg = e instanceof ConfigError ? e.message : String((e as Error)?.message ?? e)
      throw new ConfigError(code === 'Z_DATA_ERROR' || code === 'Z_BUF_ERROR' || code === 'TAR_BAD_ARCHIVE' ? 'EIO' : code, `layer ${layer.diffId}: ${msg}`)
    }
  }

  /** Removes temp dirs left by unpacks that crashed (older than `maxAgeMs`). */
  sweep(maxAgeMs = 24 * 3600_000): void {
    const tmp = path.join(this.root, 'tmp')
    for (const name of fs.readdirSync(tmp, { withFileTypes: true }).map((d) => d.name)) {
      const p = path.join(tmp, name)
      const st = fs.lstatSync(p, { throwIfNoEntry: false })
      if (st && Date.now() - st.mtimeMs > maxAgeMs) fs.rmSync(p, { recursive: true, force: true })
    }
  }
}

/** `src` through `tap` as an async iterable (errors of either reach the reader). */
async function* pipeThrough(src: Readable, tap: DigestTap): AsyncGenerator<Buffer> {
  const done = pipeline(src, tap).catch((e: unknown) => { tap.destroy(e as Error) })
  for await (const c of tap) yield c as Buffer
  await done
}
