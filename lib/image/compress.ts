// Layer compression: gzip through node:zlib, zstd through Debian's `zstd` binary (Node 20's zlib
// has no zstd), and sniffing the magic bytes of a blob to undo whichever was used.
import { spawn } from 'node:child_process'
import { Duplex, PassThrough, Readable, pipeline } from 'node:stream'
import * as zlib from 'node:zlib'
import { ConfigError } from '../options.js'

/** How a layer blob is compressed. */
export type Compression = 'none' | 'gzip' | 'zstd'

/** The OCI media type of a layer blob with this compression. */
export function layerMediaType(c: Compression): string {
  const base = 'application/vnd.oci.image.layer.v1.tar'
  return c === 'none' ? base : `${base}+${c}`
}

/**
 * `zstd ARGS` as a stream filter. Rejects (as a stream error) with ConfigError ENOENT when the
 * binary is missing and EIO with zstd's own message when it fails (corrupt input…).
 */
function zstdFilter(args: readonly string[]): Duplex {
  const child = spawn('zstd', ['-q', ...args], { stdio: ['pipe', 'pipe', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', (c: Buffer) => { if (stderr.length < 4096) stderr += c.toString() })
  const out = new PassThrough()
  const duplex = Duplex.from({ writable: child.stdin, readable: out })
  child.stdout.pipe(out, { end: false })
  // stdin EPIPE when zstd died early: the exit below reports the real reason.
  child.stdin.on('error', () => {})
  child.on('error', (e: NodeJS.ErrnoException) => {
    duplex.destroy(e.code === 'ENOENT'
      ? new ConfigError('ENOENT', 'zstd is not installed (apt-get install zstd)')
      : new ConfigError(e.code ?? 'EIO', `zstd: ${e.message}`))
  })
  child.on('close', (code, signal) => {
    if (code === 0) { out.end(); return }
    const why = stderr.trim().split('\n').pop() || (signal ? `killed by ${signal}` : `exit code ${code}`)
    duplex.destroy(new ConfigError('EIO', `zstd: ${why.replace(/^zstd: /, '')}`))
  })
  duplex.on('close', () => { if (child.exitCode === null) child.kill() })
  return duplex
}

/**
 * A compressor for `c` (a pass-through for 'none'). Both compressors are deterministic: gzip
 * from zlib writes mtime 0 and a fixed OS byte; zstd runs single-threaded at level 3 (the
 * output depends only on the input and the zstd version).
 */
export function compressor(c: Compression): Duplex {
  if (c === 'gzip') return zlib.createGzip({ level: 6 })
  if (c === 'zstd') return zstdFilter(['-c', '-3', '-T1', '--no-progress'])
  return new PassThrough()
}

/** The compression a blob uses, from its first bytes. */
export function sniffCompression(head: Uint8Array): Compression {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip'
  if (head.length >= 4 && head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) return 'zstd'
  return 'none'
}

/**
 * The uncompressed bytes of `blob`, whatever of gzip, zstd or nothing it uses (from its magic
 * bytes, not its media type: docker-save archives label uncompressed layers loosely).
 */
export function decompress(blob: Readable): Readable {
  async function* run(): AsyncGenerator<Buffer> {
    const it = blob[Symbol.asyncIterator]() as AsyncIterator<Buffer>
    const head: Buffer[] = []
    let len = 0
    let done = false
    while (len < 4) {
      const r = await it.next()
      if (r.done) { done = true; break }
      head.push(r.value)
      len += r.value.length
    }
    const first = Buffer.concat(head)
    const rest = async function* (): AsyncGenerator<Buffer> {
      if (first.length) yield first
      if (done) return
      for (;;) {
        const r = await it.next()
        if (r.done) return
        yield r.value
      }
    }
    const kind = sniffCompression(first)
    if (kind === 'none') { yield* rest(); return }
    const filter = kind === 'gzip' ? zlib.createGunzip() : zstdFilter(['-d', '-c'])
    const src = Readable.from(rest())
    pipeline(src, filter, () => {}) // errors surface through `filter` below
    for await (const chunk of filter) yield chunk as Buffer
  }
  return Readable.from(run(), { objectMode: false })
}
