// Content digests: a pass-through stream that hashes (and counts) what flows through it, and
// the 'sha256:<hex>' form OCI uses for blobs and DiffIDs.
import { createHash, type Hash } from 'node:crypto'
import { Transform, type TransformCallback } from 'node:stream'

const DIGEST_RE = /^sha256:[0-9a-f]{64}$/

/** True for a well-formed 'sha256:<64 hex>' digest (the only algorithm layerfs accepts). */
export function isDigest(s: unknown): s is string {
  return typeof s === 'string' && DIGEST_RE.test(s)
}

/** The hex part of 'sha256:<hex>' (for store paths). Precondition: isDigest(d). */
export function digestHex(d: string): string {
  return d.slice('sha256:'.length)
}

/** sha256 of a buffer as 'sha256:<hex>'. */
export function sha256Of(data: Uint8Array | string): string {
  return 'sha256:' + createHash('sha256').update(data).digest('hex')
}

/** A pass-through that hashes every byte; read `digest()` and `bytes` once the stream ended. */
export class DigestTap extends Transform {
  readonly #hash: Hash = createHash('sha256')
  #digest: string | undefined
  bytes = 0
  /** Called with the running byte count (progress bars). */
  onBytes: ((n: number) => void) | undefined

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.#hash.update(chunk)
    this.bytes += chunk.length
    this.onBytes?.(this.bytes)
    cb(null, chunk)
  }

  /** 'sha256:<hex>' of everything that went through; call after the stream finished. */
  digest(): string {
    this.#digest ??= 'sha256:' + this.#hash.digest('hex')
    return this.#digest
  }
}
