// The layer store: verified, atomic, reused; hostile or broken layers refused with one line
// naming the entry, and nothing left behind.
import { execFileSync } from 'node:child_process'
import * as crypto from 'node:crypto'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { Readable } from 'node:stream'
import * as zlib from 'node:zlib'
import * as tar from 'tar'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { commit } from '../../../lib/image/commit.js'
import { LayerStore } from '../../../lib/image/store.js'
import { hashTree, writeTree } from '../../helpers/fixture.js'
import { gnuLayerTar } from '../../helpers/image.js'

let root: string
let store: LayerStore
beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'layerfs-store-'))
  store = new LayerStore(path.join(root, 'store'))
})
afterEach(() => { fs.rmSync(root, { recursive: true, force: true }) })

const sha = (b: Buffer): string => 'sha256:' + crypto.createHash('sha256').update(b).digest('hex')

/** The store holds no layer and no temp dir: nothing half-unpacked. */
function expectStoreEmpty(): void {
  const layers = path.join(store.root, 'layers', 'sha256')
  expect(fs.existsSync(layers) ? fs.readdirSync(layers) : []).toEqual([])
  const tmp = path.join(store.root, 'tmp')
  expect(fs.existsSync(tmp) ? fs.readdirSync(tmp) : []).toEqual([])
}

/** A tar from raw entries made with node-tar's Header (so it can say anything a hostile tar says). */
function rawTar(entries: Array<{ path: string; type?: string; linkpath?: string; body?: string; devmaj?: number }>): Buffer {
  const blocks: Buffer[] = []
  for (const e of entries) {
    const body = Buffer.from(e.body ?? '')
    const h = new tar.Header({ path: e.path, type: (e.type ?? 'File') as 'File', mode: 0o644, uid: 0, gid: 0, size: body.length, mtime: new Date(0), linkpath: e.linkpath ?? '', devmaj: e.devmaj ?? 0, devmin: 0 })
    h.encode()
    blocks.push(h.block!, body, Buffer.alloc((512 - (body.length % 512)) % 512))
  }
  blocks.push(Buffer.alloc(1024))
  return Buffer.concat(blocks)
}

async function ingestBuffer(b: Buffer, diffId = sha(b), digest?: string): Promise<string> {
  return store.ingest({ diffId, digest }, Readable.from([b]))
}

describe('LayerStore.ingest', () => {
  it('unpacks a gzipped GNU tar layer identically, keyed by DiffID, and reuses it', async () => {
    const src = path.join(root, 'src')
    writeTree(src, { etc: { 'os-release': 'ID=test\n' }, '.wh.old': '', d: { '.wh..wh..opq': '' } })
    fs.symlinkSync('/usr/share/zoneinfo/UTC', path.join(src, 'etc', 'localtime'))
    fs.chownSync(path.join(src, 'etc', 'os-release'), 42, 43)
    execFileSync('setfattr', ['-n', 'user.k', '-v', 'v', path.join(src, 'etc', 'os-release')])
    execFileSync('find', [src, '-exec', 'touch', '-h', '-d', '@1600000000', '{}', '+']) // tar keeps whole seconds
    const t = gnuLayerTar(src)
    const gz = zlib.gzipSync(t)
    const dir = await ingestBuffer(gz, sha(t), sha(gz))
    expect(dir).toBe(path.join(store.root, 'layers', 'sha256', sha(t).slice(7)))
    expect(hashTree(dir)).toBe(hashTree(src))
    expect(fs.readlinkSync(path.join(dir, 'etc', 'localtime'))).toBe('/usr/share/zoneinfo/UTC')
    expect(execFileSync('getfattr', ['--only-values', '-n', 'user.k', path.join(dir, 'etc', 'os-release')]).toString()).toBe('v')
    expect(store.has(sha(t))).toBe(true)
    // Reused: a second ingest does not unpack again (the blob is not even read).
    fs.writeFileSync(path.join(dir, 'marker'), '')
    expect(await ingestBuffer(Buffer.from('not read'), sha(t))).toBe(dir)
    expect(fs.existsSync(path.join(dir, 'marker'))).toBe(true)
  })

  it('round-trips what commit wrote (zstd), hard links and xattrs included', async () => {
    const u = path.join(root, 'u')
    writeTree(u, { a: 'A', sub: { b: 'B' } })
    fs.linkSync(path.join(u, 'a'), path.join(u, 'sub', 'a-link'))
    execFileSync('setfattr', ['-n', 'user.x', '-v', 'y', path.join(u, 'a')])
    execFileSync('mkfifo', ['-m', '0620', path.join(u, 'sub', 'pipe')])
    const r = await commit(u, path.join(root, 'l.zst'), { compression: 'zstd' })
    const dir = await store.ingest(r, fs.createReadStream(path.join(root, 'l.zst')))
    expect(fs.statSync(path.join(dir, 'a')).ino).toBe(fs.statSync(path.join(dir, 'sub', 'a-link')).ino)
    expect(execFileSync('getfattr', ['--only-values', '-n', 'user.x', path.join(dir, 'a')]).toString()).toBe('y')
    expect(fs.readFileSync(path.join(dir, 'sub', 'b'), 'utf8')).toBe('B')
    expect(fs.lstatSync(path.join(dir, 'sub', 'pipe')).isFIFO()).toBe(true)
    expect(fs.lstatSync(path.join(dir, 'sub', 'pipe')).mode & 0o7777).toBe(0o620)
  })

  const hostile: Array<[string, Parameters<typeof rawTar>[0], RegExp]> = [
    ['../ escape', [{ path: 'ok', body: 'x' }, { path: '../../evil', body: 'x' }], /entry '\.\.\/\.\.\/evil' escapes the layer root/],
    ['.. in the middle', [{ path: 'a/../../evil', body: 'x' }], /entry 'a\/\.\.\/\.\.\/evil' escapes the layer root/],
    ['absolute path', [{ path: '/etc/evil', body: 'x' }], /entry '\/etc\/evil' has an absolute path/],
    ['write through a symlink', [{ path: 'link', type: 'SymbolicLink', linkpath: '/tmp' }, { path: 'link/evil', body: 'x' }], /entry 'link\/evil' goes through the symlink 'link'/],
    ['dir through a relative symlink', [{ path: 'up', type: 'SymbolicLink', linkpath: '..' }, { path: 'up/evil/', type: 'Directory' }], /entry 'up\/evil\/' goes through the symlink 'up'/],
    ['hard link outside', [{ path: 'h', type: 'Link', linkpath: '/etc/passwd' }], /entry 'h' has an absolute path|entry '\/etc\/passwd' has an absolute path/],
    ['hard link through a symlink', [{ path: 's', type: 'SymbolicLink', linkpath: '/etc' }, { path: 'h', type: 'Link', linkpath: 's/passwd' }], /entry 'h' goes through the symlink 's'/],
    ['device file', [{ path: 'dev/sda', type: 'BlockDevice', devmaj: 8 }], /entry 'dev\/sda' is a device file/],
    ['char device', [{ path: 'null', type: 'CharacterDevice', devmaj: 1 }], /entry 'null' is a device file/],
  ]
  for (const [what, entries, msg] of hostile) {
    it(`refuses a hostile layer: ${what}`, async () => {
      const b = rawTar(entries)
      const e = await ingestBuffer(b).then(() => undefined, (err: Error & { code: string }) => err)
      expect(e).toBeDefined()
      expect(e!.message).toMatch(msg)
      expect(e!.message).toMatch(/^layer sha256:[0-9a-f]{64}: /)
      expect(e!.message.split('\n')).toHaveLength(1)
      expectStoreEmpty()
    })
  }

  it('never writes outside the store, even partly', async () => {
    const outside = path.join(root, 'outside')
    fs.mkdirSync(outside)
    const b = rawTar([{ path: 'l', type: 'SymbolicLink', linkpath: outside }, { path: 'l/pwned', body: 'x' }])
    await expect(ingestBuffer(b)).rejects.toThrow(/goes through the symlink/)
    expect(fs.readdirSync(outside)).toEqual([])
  })

  it('refuses a DiffID mismatch and a blob digest mismatch', async () => {
    const b = rawTar([{ path: 'f', body: 'x' }])
    await expect(ingestBuffer(b, sha(Buffer.from('other')))).rejects.toMatchObject({ code: 'EBADMSG', message: expect.stringMatching(/DiffID mismatch/) })
    expectStoreEmpty()
    const gz = zlib.gzipSync(b)
    await expect(ingestBuffer(gz, sha(b), sha(Buffer.from('x')))).rejects.toMatchObject({ code: 'EBADMSG', message: expect.stringMatching(/blob digest mismatch/) })
    expectStoreEmpty()
  })

  it('refuses corrupt and truncated blobs', async () => {
    const b = rawTar([{ path: 'f', body: 'x'.repeat(3000) }])
    await expect(ingestBuffer(Buffer.from('this is not a tar at all'.repeat(40)), sha(b))).rejects.toMatchObject({ code: 'EIO' })
    const gz = zlib.gzipSync(b)
    await expect(ingestBuffer(gz.subarray(0, gz.length - 20), sha(b))).rejects.toMatchObject({ code: 'EIO' })
    await expect(ingestBuffer(b.subarray(0, 1500), sha(b))).rejects.toThrow(/layer sha256:/)
    expectStoreEmpty()
  })

  it('refuses a malformed DiffID', async () => {
    await expect(store.ingest({ diffId: '../../etc' }, Readable.from([Buffer.alloc(1024)]))).rejects.toMatchObject({ code: 'EINVAL' })
  })
})
