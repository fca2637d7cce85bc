// Reading images: an OCI image layout directory, or an archive made by `docker save`,
// `podman save` (docker-archive) or an oci-archive. Yields the layers in manifest order with the
// digests to verify them by, and feeds missing ones to the layer store.
import * as path from 'node:path'
import { Readable } from 'node:stream'
import { Parser, type ReadEntry } from 'tar'
import { fs } from '../fs.js'
import { ConfigError } from '../options.js'
import { digestHex, isDigest, sha256Of } from './digest.js'
import type { LayerRef, LayerStore, ProgressFn } from './store.js'

const SMALL = 4 << 20 // manifests, configs and indexes are small; layers are not
const INDEX_TYPES = new Set(['application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.list.v2+json'])
const REF_NAME = 'org.opencontainers.image.ref.name'

/** One layer of an image: where its blob lives and how to verify it. */
export interface ImageLayer extends LayerRef {
  readonly mediaType?: string
  /** Blob path: a host path (layout dir) or a member name (archive). */
  readonly blob: string
}

/** An image, read far enough to know its layers. */
export interface ImageInfo {
  readonly path: string
  readonly tag?: string
  readonly format: 'oci-layout' | 'oci-archive' | 'docker-archive'
  /** The parsed image config (JSON). */
  readonly config: { rootfs?: { diff_ids?: unknown[] }; [k: string]: unknown }
  readonly configDigest?: string
  /** The OCI manifest, when the image has one (layout dirs, oci-archives, recent docker save). */
  readonly manifest?: OciManifest
  /** Bottom layer first (manifest order). */
  readonly layers: readonly ImageLayer[]
}

export interface OciDescriptor { mediaType?: string; digest: string; size?: number; annotations?: Record<string, string>; platform?: { os?: string; architecture?: string } }
export interface OciManifest { schemaVersion?: number; mediaType?: string; config: OciDescriptor; layers: OciDescriptor[]; annotations?: Record<string, string> }

/**
 * Splits 'PATH[:TAG]'. The path is the shortest prefix before a ':' that exists on disk (a path
 * holding ':' works, and so do tags holding '/' like 'img.tar:example/app:1.0'); when no prefix
 * exists, the tag starts at the first ':' after the last '/'.
 */
export function parseImageRef(ref: string): { path: string; tag?: string } {
  for (let i = ref.indexOf(':'); i !== -1; i = ref.indexOf(':', i + 1)) {
    if (i > 0 && fs.existsSync(ref.slice(0, i))) return { path: ref.slice(0, i), tag: ref.slice(i + 1) || undefined }
  }
  if (fs.existsSync(ref)) return { path: ref }
  const slash = ref.lastIndexOf('/')
  const colon = ref.indexOf(':', slash + 1)
  if (colon <= slash + 1) return { path: ref }
  return { path: ref.slice(0, colon), tag: ref.slice(colon + 1) }
}

function bad(where: string, why: string): ConfigError {
  return new ConfigError('EINVAL', `image '${where}': ${why}`)
}

function parseJson<T>(buf: Buffer | undefined, where: string, what: string): T {
  if (buf === undefined) throw bad(where, `${what} is missing`)
  try {
    return JSON.parse(buf.toString('utf8')) as T
  } catch {
    throw bad(where, `${what} is not valid JSON`)
  }
}

const GOARCH: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' }

/** Picks the manifest for `tag` (and this machine's platform, in a multi-platform index). */
function pickDescriptor(list: OciDescriptor[], tag: string | undefined, where: string): OciDescriptor {
  let cands = list
  if (tag !== undefined) {
    cands = list.filter((d) => {
      const a = d.annotations ?? {}
      const full = a['io.containerd.image.name'] ?? ''
      return a[REF_NAME] === tag || full === tag || full.endsWith(`/${tag}`) || full.endsWith(`:${tag}`)
    })
    if (cands.length === 0) throw new ConfigError('ENOENT', `image '${where}' has no tag '${tag}' (tags: ${list.map((d) => d.annotations?.[REF_NAME]).filter(Boolean).join(', ') || 'none'})`)
  }
  if (cands.length > 1) {
    const arch = GOARCH[process.arch] ?? process.arch
    const mine = cands.filter((d) => d.platform?.os === 'linux' && d.platform.architecture === arch)
    if (mine.length >= 1 && cands.every((d) => d.platform)) return mine[0]!
    const distinct = new Set(cands.map((d) => d.digest))
    if (distinct.size > 1) throw bad(where, `holds ${cands.length} images: say which with PATH:TAG (tags: ${cands.map((d) => d.annotations?.[REF_NAME]).filter(Boolean).join(', ') || 'none'})`)
  }
  return cands[0]!
}

/** Reads an OCI layout (from a dir, or from the members of an oci-archive). */
function readOci(read: (blobPath: string) => Buffer | undefined, blobPath: (d: string) => string, where: string, tag: string | undefined): Omit<ImageInfo, 'path' | 'tag' | 'format'> {
  const blob = (d: OciDescriptor, what: string): Buffer => {
    if (!isDigest(d?.digest)) throw bad(where, `${what} has no valid sha256 digest`)
    const b = read(blobPath(d.digest))
    if (b === undefined) throw bad(where, `${what} blob ${d.digest} is missing`)
    if (sha256Of(b) !== d.digest) throw new ConfigError('EBADMSG', `image '${where}': ${what} blob ${d.digest} does not match its digest`)
    return b
  }
  const index = parseJson<{ manifests?: OciDescriptor[] }>(read('index.json'), where, 'index.json')
  let desc = pickDescriptor(index.manifests ?? [], tag, where)
  for (let depth = 0; desc.mediaType !== undefined && INDEX_TYPES.has(desc.mediaType); depth++) {
    if (depth > 4) throw bad(where, 'image indexes nest too deep')
    const nested = parseJson<{ manifests?: OciDescriptor[] }>(blob(desc, 'image index'), where, 'image index')
    desc = pickDescriptor(nested.manifests ?? [], undefined, where)
  }
  const manifest = parseJson<OciManifest>(blob(desc, 'manifest'), where, 'manifest')
  if (!Array.isArray(manifest.layers) || !manifest.config) throw bad(where, 'manifest has no config or layers')
  const config = parseJson<ImageInfo['config']>(blob(manifest.config, 'config'), where, 'config')
  const diffIds = config.rootfs?.diff_ids ?? []
  if (diffIds.length !== manifest.layers.length) throw bad(where, `config lists ${diffIds.length} DiffIDs for ${manifest.layers.length} layers`)
  const layers = manifest.layers.map((l, i): ImageLayer => {
    const diffId = diffIds[i]
    if (!isDigest(diffId)) throw bad(where, `layer ${i + 1} has no valid sha256 DiffID`)
    if (!isDigest(l.digest)) throw bad(where, `layer ${i + 1} has no valid sha256 digest`)
    return { diffId, digest: l.digest, size: l.size, mediaType: l.mediaType, blob: blobPath(l.digest) }
  })
  return { config, configDigest: manifest.config.digest, manifest, layers }
}

/** Member name as stored in an archive, without './'. */
function memberName(p: string): string {
  return p.replace(/^(\.\/)+/, '').replace(/\/+$/, '')
}

interface ArchiveIndex { files: Map<string, Buffer>; links: Map<string, string>; members: Set<string> }

/** Streams every member of an archive through `onEntry` (it may be async; reading waits for it). Throws ConfigError EIO for a corrupt archive, or what `onEntry` throws. */
export async function scanArchive(file: string, onEntry: (e: ReadEntry, name: string) => Promise<void> | void): Promise<void> {
  const parser = new Parser({ strict: true })
  let failed: unknown
  let onFail: () => void = () => {}
  const failure = new Promise<void>((r) => { onFail = r })
  const fail = (e: unknown): void => { failed ??= e; onFail() }
  let chain = Promise.resolve()
  parser.on('entry', (e: ReadEntry) => {
    if (failed) { e.resume(); return }
    const p = Promise.resolve().then(() => onEntry(e, memberName(e.path)))
    p.catch((err: unknown) => { fail(err); e.resume() })
    chain = chain.then(() => p, () => p)
  })
  parser.on('error', (e: Error) => { fail(new ConfigError('EIO', `archive '${file}' is not a valid tar (${e.message})`)) })
  const ended = new Promise<void>((r) => { parser.on('end', () => r()); parser.on('close', () => r()) })
  const src = fs.createReadStream(file)
  try {
    for await (const chunk of src) {
      if (failed) break
      // Backpressure: an entry being unpacked is consumed slower than the file is read.
      if (!parser.write(chunk as Buffer)) await Promise.race([new Promise((r) => parser.once('drain', r)), failure])
    }
    if (!failed) { parser.end(); await Promise.race([ended, failure]) }
    await chain.catch(() => undefined)
  } finally {
    src.destroy()
  }
  if (failed) throw failed
}

async function indexArchive(file: string): Promise<ArchiveIndex> {
  const idx: ArchiveIndex = { files: new Map(), links: new Map(), members: new Set() }
  await scanArchive(file, async (e, name) => {
    idx.members.add(name)
    if (e.type === 'SymbolicLink' && e.linkpath) idx.links.set(name, e.linkpath)
    if ((e.type === 'File' || e.type === 'OldFile') && (e.size ?? 0) <= SMALL && (name.endsWith('.json') || name === 'oci-layout' || name.startsWith('blobs/') || name === 'repositories')) {
      const chunks: Buffer[] = []
      for await (const c of e) chunks.push(c as Buffer)
      idx.files.set(name, Buffer.concat(chunks))
    } else {
      e.resume()
    }
  })
  return idx
}

/** Follows symlinks between members (legacy docker save links duplicate layer.tar files). */
function resolveMember(idx: ArchiveIndex, name: string, where: string): string {
  let cur = memberName(name)
  for (let i = 0; i < 16; i++) {
    const target = idx.links.get(cur)
    if (target === undefined) {
      if (!idx.members.has(cur)) throw bad(where, `member '${name}' is missing`)
      return cur
    }
    const next = path.posix.normalize(path.posix.join(path.posix.dirname(cur), target))
    if (next.startsWith('../') || next.startsWith('/')) throw bad(where, `member '${cur}' links outside the archive`)
    cur = next
  }
  throw bad(where, `member '${name}' is a symlink loop`)
}

/**
 * Reads `ref` ('PATH[:TAG]'): an OCI layout dir, or an archive from docker/podman save (its
 * manifest.json) or an oci-archive. Verifies the manifest and config blobs against their
 * digests. Does not read layer blobs (an archive is scanned once for its small files).
 * Throws ConfigError: ENOENT (no such path or tag), EINVAL (not an image, malformed JSON, layer
 * and DiffID counts differ, several images and no tag), EBADMSG (a blob does not match).
 */
export async function readImage(ref: string): Promise<ImageInfo> {
  const { path: p, tag } = parseImageRef(ref)
  const st = fs.statSync(p, { throwIfNoEntry: false })
  if (!st) throw new ConfigError('ENOENT', `image '${p}' does not exist`)
  if (st.isDirectory()) {
    if (!fs.existsSync(path.join(p, 'oci-layout'))) throw bad(p, 'is a directory without an oci-layout file (not an OCI image layout)')
    const read = (rel: string): Buffer | undefined => {
      try { return fs.readFileSync(path.join(p, rel)) } catch { return undefined }
    }
    const info = readOci(read, (d) => `blobs/sha256/${digestHex(d)}`, p, tag)
    return { ...info, path: p, tag, format: 'oci-layout', layers: info.layers.map((l) => ({ ...l, blob: path.join(p, l.blob) })) }
  }
  const idx = await indexArchive(p)
  if (idx.files.has('manifest.json')) {
    const list = parseJson<Array<{ Config?: string; RepoTags?: string[] | null; Layers?: string[] }>>(idx.files.get('manifest.json'), p, 'manifest.json')
    if (!Array.isArray(list) || list.length === 0) throw bad(p, 'manifest.json lists no image')
    let cands = list
    if (tag !== undefined) {
      cands = list.filter((m) => (m.RepoTags ?? []).some((t) => t === tag || t.endsWith(`:${tag}`) || t === `${tag}:latest` || t.endsWith(`/${tag}`) || t.endsWith(`/${tag}:latest`)))
      if (cands.length === 0) throw new ConfigError('ENOENT', `image '${p}' has no tag '${tag}' (tags: ${list.flatMap((m) => m.RepoTags ?? []).join(', ') || 'none'})`)
    }
    if (cands.length > 1) throw bad(p, `holds ${cands.length} images: say which with PATH:TAG (tags: ${cands.flatMap((m) => m.RepoTags ?? []).join(', ')})`)
    const m = cands[0]!
    const configName = resolveMember(idx, m.Config ?? '', p)
    const configBuf = idx.files.get(configName)
    const config = parseJson<ImageInfo['config']>(configBuf, p, `config '${configName}'`)
    const fromName = /^blobs\/sha256\/([0-9a-f]{64})$/.exec(configName)
    if (fromName && configBuf && sha256Of(configBuf) !== `sha256:${fromName[1]}`) throw new ConfigError('EBADMSG', `image '${p}': config '${configName}' does not match its digest`)
    const diffIds = config.rootfs?.diff_ids ?? []
    const names = m.Layers ?? []
    if (diffIds.length !== names.length) throw bad(p, `config lists ${diffIds.length} DiffIDs for ${names.length} layers`)
    const layers = names.map((n, i): ImageLayer => {
      const diffId = diffIds[i]
      if (!isDigest(diffId)) throw bad(p, `layer ${i + 1} has no valid sha256 DiffID`)
      const blob = resolveMember(idx, n, p)
      const named = /^blobs\/sha256\/([0-9a-f]{64})$/.exec(blob)
      return { diffId, digest: named ? `sha256:${named[1]}` : undefined, blob }
    })
    return { path: p, tag, format: 'docker-archive', config, configDigest: fromName ? `sha256:${fromName[1]}` : undefined, layers }
  }
  if (idx.files.has('index.json')) {
    const info = readOci((rel) => idx.files.get(rel), (d) => `blobs/sha256/${digestHex(d)}`, p, tag)
    return { ...info, path: p, tag, format: 'oci-archive' }
  }
  throw bad(p, 'is neither an OCI layout nor a docker/podman save archive (no manifest.json or index.json)')
}

/**
 * Makes sure every layer of `image` is in `store` (unpacking the missing ones, each verified)
 * and returns the layer dirs in manifest order (bottom first). An archive is read once more,
 * only when a layer is missing. Throws what LayerStore.ingest throws.
 */
export async function unpackImage(image: ImageInfo, store: LayerStore, onProgress?: ProgressFn): Promise<string[]> {
  const missing = new Map<string, ImageLayer>()
  for (const l of image.layers) if (!store.has(l.diffId)) missing.set(l.blob, l)
  if (image.format === 'oci-layout') {
    for (const l of missing.values()) {
      if (!fs.existsSync(l.blob)) throw bad(image.path, `layer blob ${l.digest} is missing`)
      await store.ingest(l, fs.createReadStream(l.blob), onProgress)
    }
  } else if (missing.size > 0) {
    await scanArchive(image.path, async (e, name) => {
      const l = missing.get(name)
      if (l === undefined || store.has(l.diffId)) { e.resume(); return }
      await store.ingest({ ...l, size: l.size ?? e.size }, Readable.from(e), onProgress)
    })
    for (const l of missing.values()) {
      if (!store.has(l.diffId)) throw bad(image.path, `layer ${l.diffId} ('${l.blob}') was not found in the archive`)
    }
  }
  return image.layers.map((l) => store.layerDir(l.diffId))
}

/**
 * The branches of an image as a lower stack, top first (as a stack spec lists them). A layer
 * repeated in the manifest is kept once, at its top-most place: applying the same layer again
 * higher up re-asserts every path it names, so the lower copy adds nothing.
 */
export function imageBranches(layerDirs: readonly string[]): string[] {
  const seen = new Set<string>()
  const out: string[] = []
  for (const d of [...layerDirs].reverse()) {
    if (seen.has(d)) continue
    seen.add(d)
    out.push(d)
  }
  return out
}
