// commit --image: a copy of an image, as an OCI image layout, with one more layer on top (the
// committed rw branch): new config (DiffID and history appended), new manifest, new index.
import * as path from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { fs } from '../fs.js'
import { ConfigError } from '../options.js'
import { commit, type CommitOptions, type CommitResult } from './commit.js'
import { layerMediaType, sniffCompression } from './compress.js'
import { DigestTap, digestHex, sha256Of } from './digest.js'
import { readImage, scanArchive, type OciDescriptor, type OciManifest } from './oci.js'

const MANIFEST_TYPE = 'application/vnd.oci.image.manifest.v1+json'
const CONFIG_TYPE = 'application/vnd.oci.image.config.v1+json'
const REF_NAME = 'org.opencontainers.image.ref.name'

/** What appendLayer() wrote. */
export interface AppendResult {
  /** The new image layout dir. */
  readonly out: string
  readonly layer: CommitResult
  readonly manifestDigest: string
  readonly configDigest: string
}

export interface AppendOptions extends CommitOptions {
  /** The ref name of the new image in index.json (default: the source tag, else 'latest'). */
  readonly tag?: string
  /** The history entry's `created` time (default: $SOURCE_DATE_EPOCH, else now). */
  readonly created?: Date
}

function createdTime(opts: AppendOptions): string {
  if (opts.created) return opts.created.toISOString()
  const epoch = Number(process.env.SOURCE_DATE_EPOCH)
  return (Number.isFinite(epoch) && process.env.SOURCE_DATE_EPOCH ? new Date(epoch * 1000) : new Date()).toISOString().replace(/\.\d{3}Z$/, 'Z')
}

/**
 * Commits the rw branch `upper` as a new top layer of the image `ref` and writes the result as
 * an OCI image layout at `out` (which must not exist): the source's blobs (copied, or
 * extracted from a docker/podman save archive), the new layer blob, a config whose
 * rootfs.diff_ids ends with the new DiffID, a manifest and an index.json naming it. Built in a
 * temp dir and renamed into place. Throws ConfigError (EEXIST for an existing `out`, plus what
 * readImage and commit throw).
 */
export async function appendLayer(ref: string, upper: string, out: string, opts: AppendOptions = {}): Promise<AppendResult> {
  if (fs.existsSync(out)) throw new ConfigError('EEXIST', `'${out}' already exists (the new image layout is written there)`)
  const image = await readImage(ref)
  const tmp = fs.mkdtempSync(path.join(path.dirname(path.resolve(out)), `.${path.basename(out)}.`))
  const blobs = path.join(tmp, 'blobs', 'sha256')
  fs.mkdirSync(blobs, { recursive: true })
  const putBlob = (data: Buffer): string => {
    const d = sha256Of(data)
    fs.writeFileSync(path.join(blobs, digestHex(d)), data)
    return d
  }
  try {
    // 1. The source layers, as blobs with descriptors.
    const layers: OciDescriptor[] = []
    if (image.format === 'oci-layout') {
      for (const l of image.layers) {
        const dst = path.join(blobs, digestHex(l.digest!))
        if (!fs.existsSync(dst)) fs.copyFileSync(l.blob, dst, fs.constants.COPYFILE_FICLONE)
        layers.push(image.manifest!.layers[layers.length]!)
      }
    } else {
      const byMember = new Map<string, OciDescriptor>()
      await scanArchive(image.path, async (e, name) => {
        if (!image.layers.some((l) => l.blob === name) || byMember.has(name)) { e.resume(); return }
        const tap = new DigestTap()
        const part = path.join(tmp, `part-${byMember.size}-${layers.length}-${Math.random().toString(36).slice(2)}`)
        await pipeline(Readable.from(e), tap, fs.createWriteStream(part))
        const head = Buffer.alloc(4)
        const fd = fs.openSync(part, 'r')
        fs.readSync(fd, head, 0, 4, 0)
        fs.closeSync(fd)
        fs.renameSync(part, path.join(blobs, digestHex(tap.digest())))
        byMember.set(name, { mediaType: layerMediaType(sniffCompression(head)), digest: tap.digest(), size: tap.bytes })
      })
      for (const l of image.layers) {
        const d = byMember.get(l.blob)
        if (!d) throw new ConfigError('EINVAL', `image '${image.path}': layer '${l.blob}' was not found in the archive`)
        layers.push(d)
      }
    }
    // 2. The new layer.
    const part = path.join(tmp, 'layer.part')
    const layer = await commit(upper, part, opts)
    fs.renameSync(part, path.join(blobs, digestHex(layer.digest)))
    layers.push({ mediaType: layer.mediaType, digest: layer.digest, size: layer.size })
    // 3. Config, manifest, index.
    const config = structuredClone(image.config) as Record<string, unknown> & { rootfs?: { type?: string; diff_ids?: unknown[] }; history?: unknown[] }
    config.rootfs = { type: 'layers', diff_ids: [...(config.rootfs?.diff_ids ?? []), layer.diffId] }
    const created = createdTime(opts)
    config.history = [...(Array.isArray(config.history) ? config.history : []), { created, created_by: 'layerfs commit' }]
    config.created = created
    const configBuf = Buffer.from(JSON.stringify(config))
    const configDigest = putBlob(configBuf)
    const manifest: OciManifest = {
      schemaVersion: 2, mediaType: MANIFEST_TYPE,
      config: { mediaType: CONFIG_TYPE, digest: configDigest, size: configBuf.length }, layers,
    }
    const manifestBuf = Buffer.from(JSON.stringify(manifest))
    const manifestDigest = putBlob(manifestBuf)
    const tag = opts.tag ?? (image.tag?.split(':').pop() || 'latest')
    const index = {
      schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [{ mediaType: MANIFEST_TYPE, digest: manifestDigest, size: manifestBuf.length, annotations: { [REF_NAME]: tag } }],
    }
    fs.writeFileSync(path.join(tmp, 'index.json'), JSON.stringify(index))
    fs.writeFileSync(path.join(tmp, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }))
    fs.chmodSync(tmp, 0o755)
    fs.renameSync(tmp, out)
    return { out, layer, manifestDigest, configDigest }
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true })
    throw e
  }
}
