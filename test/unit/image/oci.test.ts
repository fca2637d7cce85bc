// Images as stacks: OCI layouts and docker-save archives read, their layers unpacked once into
// the store and listed top first; bad images refused with one line.
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { appendLayer } from '../../../lib/image/append.js'
import { imageStack } from '../../../lib/image/image-stack.js'
import { parseImageRef, readImage } from '../../../lib/image/oci.js'
import { UnionView } from '../../../lib/union-view.js'
import { writeTree } from '../../helpers/fixture.js'
import { buildDockerArchive, buildOciLayout } from '../../helpers/image.js'

let root: string
let store: string
let layers: string[]
beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'layerfs-oci-'))
  store = path.join(root, 'store')
  writeTree(path.join(root, 'l1'), { etc: { 'os-release': 'ID=base\n', motd: 'hi\n' }, bin: { sh: 'sh' } })
  writeTree(path.join(root, 'l2'), { etc: { 'os-release': 'ID=child\n', '.wh.motd': '' }, app: { run: 'run' } })
  layers = [path.join(root, 'l1'), path.join(root, 'l2')]
})
afterEach(() => { fs.rmSync(root, { recursive: true, force: true }) })

async function merged(branches: string[]): Promise<Record<string, string>> {
  const v = new UnionView(branches.map((p) => ({ path: p, mode: 'ro' as const })))
  const out: Record<string, string> = {}
  for (const d of ['/etc', '/bin', '/app']) for (const n of await v.readdir(d)) out[`${d}/${n}`] = await v.readFile(`${d}/${n}`, 'utf8')
  return out
}

const expected = { '/etc/os-release': 'ID=child\n', '/bin/sh': 'sh', '/app/run': 'run' }

describe('images', () => {
  it('mounts an OCI layout: layers unpacked once, stacked top first', async () => {
    const img = path.join(root, 'oci')
    const built = buildOciLayout(img, layers, { tag: 'v1' })
    const s = await imageStack(`${img}:v1`, { store })
    expect(s.image.format).toBe('oci-layout')
    expect(s.branches).toEqual([...built.diffIds].reverse().map((d) => path.join(store, 'layers', 'sha256', d.slice(7))))
    expect(await merged(s.branches)).toEqual(expected)
    // Reused: a second run finds every layer in the store (even with the blobs gone).
    for (const d of built.digests) fs.rmSync(path.join(img, 'blobs', 'sha256', d.slice(7)))
    expect((await imageStack(img, { store })).branches).toEqual(s.branches)
  })

  it('mounts a docker-save archive, by tag', async () => {
    const img = path.join(root, 'image.tar')
    buildDockerArchive(img, layers, { repoTag: 'example/app:1.0', work: path.join(root, 'w') })
    const s = await imageStack(`${img}:example/app:1.0`, { store })
    expect(s.image.format).toBe('docker-archive')
    expect(await merged(s.branches)).toEqual(expected)
    await expect(imageStack(`${img}:other`, { store })).rejects.toThrow(/has no tag 'other' \(tags: example\/app:1.0\)/)
  })

  it('keeps a repeated layer once, at its top-most place', async () => {
    const img = path.join(root, 'oci')
    buildOciLayout(img, [layers[0]!, layers[1]!, layers[0]!])
    const s = await imageStack(img, { store })
    expect(s.branches).toHaveLength(2)
    expect(await merged(s.branches)).toEqual({ '/etc/os-release': 'ID=base\n', '/etc/motd': 'hi\n', '/bin/sh': 'sh', '/app/run': 'run' })
  })

  it('refuses a layer blob that does not match its digest, leaving nothing in the store', async () => {
    const img = path.join(root, 'oci')
    const built = buildOciLayout(img, layers)
    // Another valid gzip'd tar under layer 2's digest: only the digest check can notice.
    fs.copyFileSync(path.join(img, 'blobs', 'sha256', built.digests[0]!.slice(7)), path.join(img, 'blobs', 'sha256', built.digests[1]!.slice(7)))
    await expect(imageStack(img, { store })).rejects.toMatchObject({ code: 'EBADMSG', message: expect.stringMatching(new RegExp(`^layer ${built.diffIds[1]}: blob digest mismatch`)) })
    expect(fs.readdirSync(path.join(store, 'tmp'))).toEqual([])
  })

  it('refuses things that are not images', async () => {
    fs.mkdirSync(path.join(root, 'empty'))
    await expect(readImage(path.join(root, 'empty'))).rejects.toThrow(/without an oci-layout file/)
    await expect(readImage(path.join(root, 'missing'))).rejects.toMatchObject({ code: 'ENOENT' })
    fs.writeFileSync(path.join(root, 'junk.tar'), 'junk'.repeat(300))
    await expect(readImage(path.join(root, 'junk.tar'))).rejects.toThrow(/not a valid tar|neither an OCI layout/)
  })

  it('splits PATH[:TAG]', () => {
    expect(parseImageRef('/x/img.tar:busybox:latest')).toEqual({ path: '/x/img.tar', tag: 'busybox:latest' })
    expect(parseImageRef('/x/oci:v1')).toEqual({ path: '/x/oci', tag: 'v1' })
    expect(parseImageRef('/x/oci')).toEqual({ path: '/x/oci' })
  })

  it('commit --image: appends the new layer to a copy of the image', async () => {
    const img = path.join(root, 'image.tar')
    buildDockerArchive(img, layers, { work: path.join(root, 'w') })
    const upper = path.join(root, 'upper')
    writeTree(upper, { app: { run: 'run v2' }, etc: { '.wh.os-release': '' } })
    const out = path.join(root, 'new-image')
    const r = await appendLayer(img, upper, out, { compression: 'gzip', tag: 'v2' })
    const again = await readImage(`${out}:v2`)
    expect(again.format).toBe('oci-layout')
    expect(again.layers).toHaveLength(3)
    expect(again.layers[2]!.diffId).toBe(r.layer.diffId)
    const s = await imageStack(`${out}:v2`, { store })
    expect(await merged(s.branches)).toEqual({ '/bin/sh': 'sh', '/app/run': 'run v2' })
  })
})
