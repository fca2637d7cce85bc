// The core's operations against real temp-dir branches (no FUSE): the merged view and the
// exact content of every branch on disk after each operation.
import * as fs from 'node:fs'
import { afterEach, describe, expect, it } from 'vitest'
import { LayerFs } from '../../lib/layerfs.js'
import { UnionView } from '../../lib/union-view.js'
import { file, hashTree, makeFixture, snapshot, symlink, upperSnapshot, type Fixture, type Tree } from '../helpers/fixture.js'

let fx: Fixture | undefined
afterEach(() => fx?.cleanup())

function setup(upper: Tree, ...lowers: Tree[]): { view: UnionView; core: LayerFs; up: string; low: (i: number) => string } {
  fx = makeFixture({ U: upper, ...Object.fromEntries(lowers.map((t, i) => [`L${i}`, t])) })
  const spec = ['U=rw', ...lowers.map((_, i) => `L${i}=ro`)].map((s) => fx!.dir(s.split('=')[0]!) + '=' + s.split('=')[1]).join(':')
  const view = new UnionView(spec)
  return { view, core: view.core, up: fx.dir('U'), low: (i) => fx!.dir(`L${i}`) }
}

describe('LayerFs: reads', () => {
  it('stats, lists and reads the merged view', async () => {
    const { view } = setup({ a: 'A' }, { a: 'low', b: 'B', d: { x: 'X' } })
    expect((await view.readdir('/')).sort()).toEqual(['a', 'b', 'd'])
    expect(await view.readFile('/a', 'utf8')).toBe('A')
    expect(await view.readFile('/d/x', 'utf8')).toBe('X')
    expect((await view.lstat('/d')).isDirectory()).toBe(true)
    await expect(view.lstat('/nope')).rejects.toMatchObject({ code: 'ENOENT' })
    await expect(view.lstat('/a/below')).rejects.toMatchObject({ code: 'ENOTDIR' })
  })
  it('never copies up on a read-only open', async () => {
    const { view, up } = setup({}, { f: 'low' })
    await view.readFile('/f')
    expect(upperSnapshot(up)).toEqual([])
  })
  it('follows symlinks inside the union for stat, never outside it', async () => {
    const { view } = setup({}, { l: symlink('/d/t'), d: { t: 'T' }, up: symlink('../../../../etc/passwd') })
    expect(await view.readFile('/l', 'utf8')).toBe('T')
    await expect(view.readFile('/up')).rejects.toMatchObject({ code: 'ENOENT' }) // clamped at the union root
  })
})

describe('LayerFs: copy-up (union-contract.md "Writes")', () => {
  it('copies data, mode, times and xattrs; parents get the merged attrs', async () => {
    const { view, up, low } = setup({}, { d: { e: { f: file('data', 0o640, 1_000_000) } } })
    fs.chmodSync(low(0) + '/d/e', 0o750)
    fs.utimesSync(low(0) + '/d/e', 2_000_000, 2_000_000)
    const before = hashTree(low(0))
    await view.setxattr('/d/e/f', 'user.k', 'v')
    expect(hashTree(low(0))).toBe(before)
    const st = fs.lstatSync(up + '/d/e/f')
    expect(st.mode & 0o7777).toBe(0o640)
    expect(Math.round(st.mtimeMs / 1000)).toBe(1_000_000)
    expect(fs.readFileSync(up + '/d/e/f', 'utf8')).toBe('data')
    expect((await view.getxattr('/d/e/f', 'user.k')).toString()).toBe('v')
    expect(fs.lstatSync(up + '/d/e').mode & 0o7777).toBe(0o750)
    expect(Math.round(fs.lstatSync(up + '/d/e').mtimeMs / 1000)).toBe(2_000_000) // restored after linking f in
    expect(fs.readdirSync(up + '/.wh..wh.layerfs.work')).toEqual([]) // nothing left in the work area
  })
  it.skipIf(process.getuid?.() !== 0)('keeps owner and setid bits, whoever the daemon is and whatever group the work area gives', async () => {
    fx = makeFixture({ U: {}, L0: { mine: file('m', 0o4755), theirs: file('t', 0o2750), d: { f: 'x' } } })
    const low = fx.dir('L0')
    fs.chownSync(`${low}/theirs`, 1234, 5678)
    fs.chmodSync(`${low}/theirs`, 0o2750) // chown cleared it
    fs.chownSync(`${low}/d`, 1234, 5678)
    // A setgid upper: the work area inherits it, so what is made there gets group 4321.
    fs.chownSync(fx.dir('U'), 0, 4321)
    fs.chmodSync(fx.dir('U'), 0o2775)
    const core = new UnionView(`${fx.dir('U')}=rw:${low}=ro`).core
    for (const p of ['/mine', '/theirs', '/d/f']) core.release(await core.open(p, fs.constants.O_WRONLY))
    const own = (p: string): [number, number, number] => { const st = fs.lstatSync(fx!.dir('U') + p); return [st.uid, st.gid, st.mode & 0o7777] }
    expect(own('/mine')).toEqual([0, 0, 0o4755])
    expect(own('/theirs')).toEqual([1234, 5678, 0o2750])
    expect(own('/d')).toEqual([1234, 5678, 0o755])
    expect(own('/d/f')).toEqual([0, 0, 0o644])
  })
  it('after a copy-up, the cached resolution is the one a fresh lookup finds', async () => {
    const { core, up, low } = setup({}, { d: { f: 'x', e: { g: 'y' } } }, { d: { h: 'z' } })
    await core.chmod('/d/e/g', 0o600) // copies up /d, /d/e and /d/e/g
    const fresh = new UnionView(`${up}=rw:${low(0)}=ro:${low(1)}=ro`).core.resolver
    for (const p of ['/d', '/d/e', '/d/e/g']) {
      const shape = (r: ReturnType<typeof fresh.resolve>): unknown => r && { hits: r.hits.map((h) => [h.branch.index, h.host, h.stats.ino]), opaque: r.opaque }
      expect(shape(core.resolver.resolve(p))).toEqual(shape(fresh.resolve(p)))
    }
  })
  it('after a create, the cached resolution is the one a fresh lookup finds (also over a whiteout)', async () => {
    const { core, up, low } = setup({}, { d: { gone: 'x', f: 'y' } })
    await core.unlink('/d/gone') // a whiteout in the rw branch
    for (const p of ['/d/new', '/d/gone']) {
      expect(core.resolver.resolve(p)).toBeUndefined() // the lookup before the create, cached
      core.release(await core.create(p, 0o640, fs.constants.O_RDWR))
    }
    const fresh = new UnionView(`${up}=rw:${low(0)}=ro`).core.resolver
    for (const p of ['/d/new', '/d/gone']) {
      const shape = (r: ReturnType<typeof fresh.resolve>): unknown => r && { hits: r.hits.map((h) => [h.branch.index, h.host, h.stats.ino, h.stats.mode, h.stats.size]), opaque: r.opaque }
      expect(shape(core.resolver.resolve(p))).toEqual(shape(fresh.resolve(p)))
      const ino = core.getattr(p).ino
      core.resolver.cache.invalidate(p)
      expect(core.getattr(p).ino).toBe(ino) // the same identity as a lookup from scratch
    }
    expect(fs.existsSync(up + '/d/.wh.gone')).toBe(false)
  })
  it('utimens sets both times, or one and keeps the other; on a lower file and then on its copy', async () => {
    const { core, up } = setup({}, { d: { f: file('x', 0o644, 1_000_000) } })
    await core.utimens('/d/f', 2_000_000_000, 3_000_000_000) // copies up
    const t = (): [number, number] => { const st = fs.lstatSync(up + '/d/f'); return [st.atimeMs, st.mtimeMs] }
    expect(t()).toEqual([2_000_000_000, 3_000_000_000])
    await core.utimens('/d/f', undefined, 4_000_000_000) // already up: no copy-up walk
    expect(t()).toEqual([2_000_000_000, 4_000_000_000])
    await core.utimens('/d/f', 5_000_000_000, undefined)
    expect(t()).toEqual([5_000_000_000, 4_000_000_000])
  })
  it('keeps the inode number across copy-up', async () => {
    const { core } = setup({}, { f: 'x' })
    const ino = core.getattr('/f').ino
    await core.chmod('/f', 0o600)
    expect(core.getattr('/f').ino).toBe(ino)
  })
  it('O_TRUNC copy-up skips the data; racing writers copy once', async () => {
    const { core, up } = setup({}, { f: 'lower content' })
    const fhs = await Promise.all([core.open('/f', fs.constants.O_WRONLY), core.open('/f', fs.constants.O_RDWR)])
    for (const fh of fhs) core.release(fh)
    expect(fs.readFileSync(up + '/f', 'utf8')).toBe('lower content')
    const { core: c2, up: up2 } = setup({}, { g: 'lower content' })
    c2.release(await c2.open('/g', fs.constants.O_WRONLY | fs.constants.O_TRUNC))
    expect(fs.readFileSync(up2 + '/g', 'utf8')).toBe('')
  })
  it('copies symlinks as symlinks', async () => {
    const { core, up } = setup({}, { l: symlink('target/elsewhere') })
    await core.chown('/l', 0, 0)
    expect(fs.readlinkSync(up + '/l')).toBe('target/elsewhere')
  })
  it('refuses every write on a read-only stack with EROFS', async () => {
    fx = makeFixture({ A: { f: 'x' } })
    const view = new UnionView(fx.dir('A') + '=ro')
    for (const op of [() => view.writeFile('/f', 'y'), () => view.unlink('/f'), () => view.mkdir('/d'), () => view.chmod('/f', 0o600), () => view.rename('/f', '/g')]) {
      await expect(op()).rejects.toMatchObject({ code: 'EROFS' })
    }
  })
})

describe('LayerFs: create and delete', () => {
  it('unlink of a lower file writes a whiteout; of an rw-only file none', async () => {
    const { view, up, low } = setup({ mine: 'm' }, { f: 'low' })
    const before = hashTree(low(0))
    await view.unlink('/f')
    await view.unlink('/mine')
    expect(upperSnapshot(up)).toEqual(['.wh.f = ""'])
    expect(await view.readdir('/')).toEqual([])
    expect(hashTree(low(0))).toBe(before)
  })
  it('unlink of a copied-up file removes the copy and whites out the lower one', async () => {
    const { view, up } = setup({}, { f: 'low' })
    await view.writeFile('/f', 'new')
    await view.unlink('/f')
    expect(upperSnapshot(up)).toEqual(['.wh.f = ""'])
  })
  it('creating over a whiteout removes it; a dir created there is opaque', async () => {
    const { view, up } = setup({}, { f: 'low', d: { old: 'x' } })
    await view.unlink('/f')
    await view.rm('/d', { recursive: true })
    expect(upperSnapshot(up)).toEqual(['.wh.d = ""', '.wh.f = ""'])
    await view.writeFile('/f', 'again')
    await view.mkdir('/d')
    expect(upperSnapshot(up)).toEqual(['d/', 'd/.wh..wh..opq = ""', 'f = "again"'])
    expect(await view.readdir('/d')).toEqual([])
  })
  it('rmdir: ENOTEMPTY while a visible entry is left, succeeds over whited-out entries', async () => {
    const { view, up } = setup({}, { d: { a: '1', b: '2' } })
    await expect(view.rmdir('/d')).rejects.toMatchObject({ code: 'ENOTEMPTY' })
    await view.unlink('/d/a')
    await view.unlink('/d/b')
    await view.rmdir('/d')
    expect(upperSnapshot(up)).toEqual(['.wh.d = ""'])
    await expect(view.lstat('/d/a')).rejects.toMatchObject({ code: 'ENOENT' })
  })
  it('reserves .wh. names: EINVAL to create or rename to, ENOENT to look up', async () => {
    const { view, up } = setup({}, { '.wh.x': '', f: 'x' })
    await expect(view.writeFile('/.wh.y', 'z')).rejects.toMatchObject({ code: 'EINVAL' })
    await expect(view.mkdir('/.wh.d')).rejects.toMatchObject({ code: 'EINVAL' })
    await expect(view.rename('/f', '/.wh.f')).rejects.toMatchObject({ code: 'EINVAL' })
    await expect(view.lstat('/.wh.x')).rejects.toMatchObject({ code: 'ENOENT' })
    expect(upperSnapshot(up)).toEqual([])
  })
  it('EEXIST, ENOENT parent, ENOTDIR parent', async () => {
    const { view } = setup({}, { f: 'x' })
    await expect(view.mkdir('/f')).rejects.toMatchObject({ code: 'EEXIST' })
    await expect(view.mkdir('/no/such')).rejects.toMatchObject({ code: 'ENOENT' })
    await expect(view.mkdir('/f/sub')).rejects.toMatchObject({ code: 'ENOTDIR' })
  })
  it('hard links a lower file by copying it up once', async () => {
    const { core, view, up } = setup({}, { f: 'x' })
    await view.link('/f', '/g')
    expect(fs.lstatSync(up + '/f').ino).toBe(fs.lstatSync(up + '/g').ino)
    expect(core.getattr('/f').ino).toBe(core.getattr('/g').ino)
    expect(core.getattr('/g').nlink).toBe(2)
  })
})

describe('LayerFs: rename', () => {
  it('renames a lower file: copy-up, rename, whiteout for the old name', async () => {
    const { view, up, low } = setup({}, { f: 'data' })
    const before = hashTree(low(0))
    await view.rename('/f', '/g')
    expect(upperSnapshot(up)).toEqual(['.wh.f = ""', 'g = "data"'])
    expect(await view.readdir('/')).toEqual(['g'])
    expect(hashTree(low(0))).toBe(before)
  })
  it('renames over an existing lower file and an rw file', async () => {
    const { view, up } = setup({ mine: 'm' }, { a: 'A', b: 'B' })
    await view.rename('/a', '/b')
    await view.rename('/b', '/mine')
    expect(upperSnapshot(up)).toEqual(['.wh.a = ""', '.wh.b = ""', 'mine = "A"'])
  })
  it('renames a directory with lower content: full merged content, old name gone, opaque new name', async () => {
    const { view, up, low } = setup({ d: { top: 't', '.wh.gone': '' } }, { d: { low: 'l', gone: 'g', sub: { deep: 'x' } } })
    const before = hashTree(low(0))
    await view.rename('/d', '/e')
    expect((await view.readdir('/e')).sort()).toEqual(['low', 'sub', 'top'])
    expect(await view.readFile('/e/sub/deep', 'utf8')).toBe('x')
    await expect(view.lstat('/d')).rejects.toMatchObject({ code: 'ENOENT' })
    expect(upperSnapshot(up)).toEqual(['.wh.d = ""', 'e/', 'e/.wh..wh..opq = ""', 'e/low = "l"', 'e/sub/', 'e/sub/deep = "x"', 'e/top = "t"'])
    expect(hashTree(low(0))).toBe(before)
  })
  it('renames an rw-only directory in place, opaque when it lands on a lower name', async () => {
    const { view, up } = setup({ d: { f: '1' } }, { e: { stale: 's' } })
    await view.rm('/e', { recursive: true })
    await view.rename('/d', '/e')
    expect(await view.readdir('/e')).toEqual(['f'])
    expect(upperSnapshot(up)).toEqual(['e/', 'e/.wh..wh..opq = ""', 'e/f = "1"'])
  })
  it('refuses dir over non-empty dir, dir into itself, file over dir', async () => {
    const { view } = setup({}, { d: { x: '1' }, e: { y: '2' }, f: 'x' })
    await expect(view.rename('/d', '/e')).rejects.toMatchObject({ code: 'ENOTEMPTY' })
    await expect(view.rename('/d', '/d/in')).rejects.toMatchObject({ code: 'EINVAL' })
    await expect(view.rename('/f', '/d')).rejects.toMatchObject({ code: 'EISDIR' })
    await expect(view.rename('/d', '/f')).rejects.toMatchObject({ code: 'ENOTDIR' })
  })
})

describe('LayerFs: work area', () => {
  it('is cleaned at start-up and never listed', () => {
    fx = makeFixture({ U: { '.wh..wh.layerfs.work': { 'copyup-1-1': 'half' } }, L: {} })
    const view = new UnionView(`${fx.dir('U')}:${fx.dir('L')}`)
    expect(fs.readdirSync(fx.dir('U') + '/.wh..wh.layerfs.work')).toEqual([])
    expect(view.core.readdir('/')).toEqual(['.', '..'])
    expect(snapshot(fx.dir('U'))).toEqual(['.wh..wh.layerfs.work/'])
  })
})

describe.skipIf(process.getuid?.() !== 0)('LayerFs: owners (the native transport passes the caller)', () => {
  it('new files, dirs, symlinks and nodes belong to the caller; setid bits asked for are kept', async () => {
    const { core, up } = setup({}, { d: {} })
    const who = { uid: 1234, gid: 5678 }
    core.release(await core.create('/f', 0o104755, fs.constants.O_RDWR, who))
    await core.mkdir('/d/sub', 0o755, who)
    await core.symlink('f', '/l', who)
    await core.mknod('/p', 0o10644, 0, who)
    const own = (p: string): [number, number, number] => { const st = fs.lstatSync(up + p); return [st.uid, st.gid, st.mode & 0o7777] }
    expect(own('/f')).toEqual([1234, 5678, 0o4755])
    expect(own('/d/sub')).toEqual([1234, 5678, 0o755])
    expect(own('/l').slice(0, 2)).toEqual([1234, 5678])
    expect(own('/p')).toEqual([1234, 5678, 0o644])
    // Without an owner (fuse-native) the daemon keeps them, and setid bits are dropped.
    core.release(await core.create('/g', 0o106755))
    expect(own('/g')).toEqual([0, 0, 0o755])
  })
  it('in a setgid directory the group comes from the directory, as on any file system', async () => {
    const { core, up } = setup({ s: {} })
    fs.chownSync(up + '/s', 0, 4321)
    fs.chmodSync(up + '/s', 0o2777)
    core.release(await core.create('/s/f', 0o100644, fs.constants.O_RDWR, { uid: 1234, gid: 5678 }))
    const st = fs.statSync(up + '/s/f')
    expect([st.uid, st.gid]).toEqual([1234, 4321])
    // Another user of the daemon's group, and the daemon's own user: the directory's group too.
    core.release(await core.create('/s/g', 0o100644, fs.constants.O_RDWR, { uid: 1234, gid: 0 }))
    core.release(await core.create('/s/h', 0o102755, fs.constants.O_RDWR, { uid: 0, gid: 0 }))
    await core.mkdir('/s/d', 0o755, { uid: 0, gid: 0 })
    const own = (p: string): [number, number, number] => { const x = fs.lstatSync(up + p); return [x.uid, x.gid, x.mode & 0o7777] }
    expect([own('/s/g'), own('/s/h'), own('/s/d')]).toEqual([[1234, 4321, 0o644], [0, 4321, 0o2755], [0, 4321, 0o2755]])
  })
})
