// commit(): determinism, OCI order of markers, what a layer keeps and what it leaves out.
import { execFileSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import * as tar from 'tar'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { commit } from '../../../lib/image/commit.js'
import { paxRecord } from '../../../lib/image/layer-tar.js'
import { file, writeTree } from '../../helpers/fixture.js'

let root: string
beforeEach(() => { root = fs.mkdtempSync(path.join(os.tmpdir(), 'layerfs-commit-')) })
afterEach(() => { fs.rmSync(root, { recursive: true, force: true }) })

/** A rw branch with a bit of everything a layer must carry. */
function makeUpper(dir: string): void {
  writeTree(dir, {
    'b.txt': file('bee\n', 0o640, 1_600_000_000),
    a: { 'z.txt': 'z', '.wh.gone': '', 'new.txt': 'n' },
    op: { '.wh..wh..opq': '', 'kept.txt': 'k', '.wh.x': '' },
    '.wh.deleted': '',
    '.wh..wh.layerfs.work': { 'half-copied': 'partial' },
  })
  fs.symlinkSync('/etc/passwd', path.join(dir, 'abs-link'))
  fs.linkSync(path.join(dir, 'b.txt'), path.join(dir, 'hard.txt'))
  fs.chownSync(path.join(dir, 'a', 'z.txt'), 1234, 5678)
  fs.chmodSync(path.join(dir, 'a'), 0o2750)
  execFileSync('setfattr', ['-n', 'user.layer', '-v', 'yes', path.join(dir, 'b.txt')])
  for (const p of ['a', 'op', '']) fs.utimesSync(path.join(dir, p), 1_500_000_000, 1_500_000_000)
}

async function list(file: string): Promise<tar.ReadEntry[]> {
  const out: tar.ReadEntry[] = []
  await tar.t({ file, onReadEntry: (e) => { out.push(e) } })
  return out
}

describe('commit', () => {
  it('writes byte-identical tars for the same branch, and for a copy of it', async () => {
    const u = path.join(root, 'u')
    makeUpper(u)
    const r1 = await commit(u, path.join(root, '1.tar'))
    const r2 = await commit(u, path.join(root, '2.tar'))
    expect(fs.readFileSync(path.join(root, '1.tar')).equals(fs.readFileSync(path.join(root, '2.tar')))).toBe(true)
    expect(r1.diffId).toBe(r2.diffId)
    expect(r1.diffId).toMatch(/^sha256:[0-9a-f]{64}$/)
    // A copy made elsewhere (other inodes, other readdir order, other atimes/ctimes) is the same layer.
    execFileSync('cp', ['-a', u, path.join(root, 'copy')])
    const r3 = await commit(path.join(root, 'copy'), path.join(root, '3.tar'))
    expect(r3.diffId).toBe(r1.diffId)
  })

  it('puts opaque markers first, then whiteouts, then entries; dirs before their contents', async () => {
    const u = path.join(root, 'u')
    makeUpper(u)
    const names = (await list(await commitTo(u))).map((e) => e.path)
    expect(names).toEqual([
      '.wh.deleted', 'a/', 'a/.wh.gone', 'a/new.txt', 'a/z.txt', 'abs-link', 'b.txt', 'hard.txt',
      'op/', 'op/.wh..wh..opq', 'op/.wh.x', 'op/kept.txt',
    ])
    expect(new Set(names).size).toBe(names.length) // no duplicates
  })

  it('keeps modes, owners, mtimes, symlinks, hard links and xattrs; no atime/ctime/uname', async () => {
    const u = path.join(root, 'u')
    makeUpper(u)
    const out = await commitTo(u)
    const byName = new Map((await list(out)).map((e) => [e.path, e]))
    expect(byName.get('a/z.txt')!.uid).toBe(1234)
    expect(byName.get('a/z.txt')!.gid).toBe(5678)
    expect(byName.get('a/')!.mode).toBe(0o2750)
    expect(byName.get('b.txt')!.mode).toBe(0o640)
    expect(byName.get('b.txt')!.mtime!.getTime()).toBe(1_600_000_000_000)
    expect(byName.get('abs-link')!.linkpath).toBe('/etc/passwd')
    expect(byName.get('hard.txt')!.type).toBe('Link')
    expect(byName.get('hard.txt')!.linkpath).toBe('b.txt')
    for (const e of byName.values()) {
      expect(e.atime).toBeUndefined()
      expect(e.ctime).toBeUndefined()
      expect(e.uname ?? '').toBe('')
    }
    // GNU tar reads the xattr from the PAX record.
    const x = path.join(root, 'x')
    fs.mkdirSync(x)
    execFileSync('tar', ['--xattrs', '--xattrs-include=*', '-xpf', out, '-C', x])
    expect(execFileSync('getfattr', ['--only-values', '-n', 'user.layer', path.join(x, 'b.txt')]).toString()).toBe('yes')
    expect(fs.statSync(path.join(x, 'hard.txt')).ino).toBe(fs.statSync(path.join(x, 'b.txt')).ino)
  })

  it('leaves out the work area, meta entries and init-layer paths', async () => {
    const u = path.join(root, 'u')
    makeUpper(u)
    writeTree(u, { etc: { hosts: '127.0.0.1 me\n', '.wh.resolv.conf': '', passwd: 'root:x:0:0\n' } })
    const init = path.join(root, 'init')
    writeTree(init, { etc: { hosts: '', hostname: '', 'resolv.conf': '' } })
    const out = path.join(root, 'i.tar')
    await commit(u, out, { initLayer: init })
    const names = (await list(out)).map((e) => e.path)
    expect(names.some((n) => n.includes('layerfs.work') || n.includes('half-copied'))).toBe(false)
    expect(names).toContain('etc/passwd')
    expect(names).not.toContain('etc/hosts')
    expect(names).not.toContain('etc/.wh.resolv.conf')
  })

  it('gives the same DiffID compressed or not, deterministically', async () => {
    const u = path.join(root, 'u')
    makeUpper(u)
    const plain = await commit(u, path.join(root, 'p.tar'))
    for (const compression of ['gzip', 'zstd'] as const) {
      const a = await commit(u, path.join(root, `a.${compression}`), { compression })
      const b = await commit(u, path.join(root, `b.${compression}`), { compression })
      expect(a.diffId).toBe(plain.diffId)
      expect(a.digest).toBe(b.digest)
      expect(a.digest).not.toBe(plain.diffId)
      expect(a.mediaType).toBe(`application/vnd.oci.image.layer.v1.tar+${compression}`)
    }
  })

  it('carries long and non-ASCII names in PAX records', async () => {
    const u = path.join(root, 'u')
    const long = 'd'.repeat(120)
    writeTree(u, { [long]: { ['ü'.repeat(60)]: 'x' } })
    const names = (await list(await commitTo(u))).map((e) => e.path)
    expect(names).toEqual([`${long}/`, `${long}/${'ü'.repeat(60)}`])
  })

  it('refuses a missing upper with one clear line', async () => {
    await expect(commit(path.join(root, 'nope'), path.join(root, 'o.tar'))).rejects.toThrow(/upper '.*nope' does not exist/)
  })

  it('encodes PAX record lengths including their own digits', () => {
    expect(paxRecord('path', 'abc').toString()).toBe('12 path=abc\n')
    const r = paxRecord('k', 'v'.repeat(94)).toString() // 99 bytes without the length → 101 with it
    expect(r.startsWith('101 ')).toBe(true)
    expect(Buffer.byteLength(r)).toBe(101)
  })

  async function commitTo(u: string): Promise<string> {
    const out = path.join(root, `out-${Math.random().toString(36).slice(2)}.tar`)
    await commit(u, out)
    return out
  }
})
