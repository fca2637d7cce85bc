// Test images built from branch dirs with GNU tar (not with layerfs' own writer, so the reader is
// checked against an independent producer): OCI image layouts and docker-save archives.
import { execFileSync } from 'node:child_process'
import * as crypto from 'node:crypto'
import * as fs from 'node:fs'
import * as path from 'node:path'
import * as zlib from 'node:zlib'

const sha = (b: Buffer): string => 'sha256:' + crypto.createHash('sha256').update(b).digest('hex')
const hex = (d: string): string => d.slice(7)

/** A layer tar of `dir` made by GNU tar (sorted, numeric owners, xattrs). */
export function gnuLayerTar(dir: string): Buffer {
  return execFileSync('tar', ['--sort=name', '--numeric-owner', '--pax-option=delete=atime,delete=ctime', '--xattrs', '--xattrs-include=*', '-C', dir, '-cf', '-', '.'], { maxBuffer: 1 << 30 })
}

export interface BuiltImage { diffIds: string[]; digests: string[] }

function config(diffIds: string[]): Buffer {
  return Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: diffIds }, history: [] }))
}

/** An OCI image layout at `out` from branch dirs (bottom first), layers gzipped unless told. */
export function buildOciLayout(out: string, layerDirs: readonly string[], opts: { tag?: string; gzip?: boolean } = {}): BuiltImage {
  const blobs = path.join(out, 'blobs', 'sha256')
  fs.mkdirSync(blobs, { recursive: true })
  const put = (b: Buffer): string => { const d = sha(b); fs.writeFileSync(path.join(blobs, hex(d)), b); return d }
  const diffIds: string[] = []
  const layers: object[] = []
  const digests: string[] = []
  for (const dir of layerDirs) {
    const tar = gnuLayerTar(dir)
    diffIds.push(sha(tar))
    const gz = opts.gzip !== false
    const blob = gz ? zlib.gzipSync(tar) : tar
    const d = put(blob)
    digests.push(d)
    layers.push({ mediaType: `application/vnd.oci.image.layer.v1.tar${gz ? '+gzip' : ''}`, digest: d, size: blob.length })
  }
  const cfg = config(diffIds)
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: put(cfg), size: cfg.length }, layers,
  }))
  const md = put(manifest)
  fs.writeFileSync(path.join(out, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}')
  fs.writeFileSync(path.join(out, 'index.json'), JSON.stringify({
    schemaVersion: 2,
    manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: md, size: manifest.length, annotations: { 'org.opencontainers.image.ref.name': opts.tag ?? 'latest' } }],
  }))
  return { diffIds, digests }
}

/** A `docker save`-style archive (legacy layout: <id>/layer.tar, manifest.json) at `out`. */
export function buildDockerArchive(out: string, layerDirs: readonly string[], opts: { repoTag?: string; work: string }): BuiltImage {
  const root = path.join(opts.work, 'docker-archive')
  fs.mkdirSync(root, { recursive: true })
  const diffIds: string[] = []
  const names: string[] = []
  for (const dir of layerDirs) {
    const tar = gnuLayerTar(dir)
    const d = sha(tar)
    diffIds.push(d)
    const id = hex(d)
    fs.mkdirSync(path.join(root, id), { recursive: true })
    fs.writeFileSync(path.join(root, id, 'layer.tar'), tar)
    names.push(`${id}/layer.tar`)
  }
  const cfg = config(diffIds)
  const cfgName = `${hex(sha(cfg))}.json`
  fs.writeFileSync(path.join(root, cfgName), cfg)
  fs.writeFileSync(path.join(root, 'manifest.json'), JSON.stringify([{ Config: cfgName, RepoTags: [opts.repoTag ?? 'test/image:latest'], Layers: names }]))
  execFileSync('tar', ['-C', root, '-cf', out, '.'])
  return { diffIds, digests: diffIds }
}
