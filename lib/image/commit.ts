// commit(): a rw branch → an OCI image-spec layer blob on disk (tar, tar+gzip or tar+zstd), with
// its DiffID (sha256 of the uncompressed tar) and its blob digest, written atomically.
import * as path from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { fs } from '../fs.js'
import { ConfigError } from '../options.js'
import { compressor, layerMediaType, type Compression } from './compress.js'
import { DigestTap } from './digest.js'
import { layerTar, type LayerTarStats } from './layer-tar.js'
import type { WalkOptions } from './upper-walk.js'

export interface CommitOptions extends WalkOptions {
  /** 'none' (default), 'gzip' or 'zstd'. */
  readonly compression?: Compression
}

/** What commit() wrote. */
export interface CommitResult {
  /** sha256 of the uncompressed tar: the layer's DiffID (the config's rootfs.diff_ids entry). */
  readonly diffId: string
  /** sha256 of the blob as written (equals diffId when uncompressed): the manifest digest. */
  readonly digest: string
  /** Size of the blob in bytes. */
  readonly size: number
  readonly mediaType: string
  /** Tar entries written (markers included). */
  readonly entries: number
}

/**
 * Writes the rw branch `upper` as a layer blob at `out`: built next to it under a temporary
 * name and renamed into place, so `out` is either absent/old or complete. The tar is
 * deterministic (same branch → byte-identical tar, so the same DiffID): see layerTar() for the
 * fields and order. Throws ConfigError (ENOENT/ENOTDIR for a bad upper, ENOENT when zstd is
 * missing, EIO when a file changes under it) or the Node error of a failing read or write.
 * Precondition: nobody writes to `upper` meanwhile (unmount first, or stop the writers).
 */
export async function commit(upper: string, out: string, opts: CommitOptions = {}): Promise<CommitResult> {
  const st = fs.statSync(upper, { throwIfNoEntry: false })
  if (!st?.isDirectory()) throw new ConfigError(st ? 'ENOTDIR' : 'ENOENT', `upper '${upper}' ${st ? 'is not a directory' : 'does not exist'}`)
  const compression = opts.compression ?? 'none'
  const stats: LayerTarStats = { entries: 0 }
  const tarTap = new DigestTap()
  const blobTap = new DigestTap()
  const tmp = path.join(path.dirname(path.resolve(out)), `.${path.basename(out)}.${process.pid}.tmp`)
  try {
    await pipeline(
      Readable.from(layerTar(upper, { initLayer: opts.initLayer }, stats)),
      tarTap, compressor(compression), blobTap,
      fs.createWriteStream(tmp, { flags: 'wx', mode: 0o644 }),
    )
    fs.renameSync(tmp, out)
  } catch (e) {
    fs.rmSync(tmp, { force: true })
    throw e
  }
  return {
    diffId: tarTap.digest(), digest: blobTap.digest(), size: blobTap.bytes,
    mediaType: layerMediaType(compression), entries: stats.entries,
  }
}
