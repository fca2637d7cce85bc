// LayerFs.restack as a checkpoint does it (lib/control/service.ts), without FUSE: open handles
// into the sealed branch re-open in the new upper on their next write; nothing lands in the sealed one.
import * as fs from 'node:fs'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { getXattr, setXattr } from '../../../lib/fs.js'
import { LayerFs, ORIGIN_XATTR } from '../../../lib/layerfs.js'
import { makeFixture, type Fixture } from '../../helpers/fixture.js'

let fx: Fixture | undefined
afterEach(() => fx?.cleanup())
const { O_RDWR, O_RDONLY, O_WRONLY, O_APPEND } = fs.constants

describe('restack (checkpoint, branch add/remove)', () => {
  it('a checkpoint seals the upper: writes through old handles go to the new upper, reads follow', async () => {
    fx = makeFixture({ A: { f: 'v1' }, B: { low: 'l' } })
    const A = fx.dir('A'), B = fx.dir('B'), L1 = fx.root + '/L1'
    const core = new LayerFs([{ path: A, mode: 'rw' }, { path: B, mode: 'ro' }])
    const w = await core.open('/f', O_WRONLY | O_APPEND)
    const r = await core.open('/f', O_RDONLY)
    const w2 = await core.open('/low', O_RDWR) // copied up into A before the checkpoint
    fs.renameSync(A, L1)
    fs.mkdirSync(A)
    core.restack([{ path: A, mode: 'rw' }, { path: L1, mode: 'ro' }, { path: B, mode: 'ro' }], { from: A, to: L1 })
    expect(core.openFilesIn(L1)).toBe(3)
    expect(core.getxattr('/f', ORIGIN_XATTR).toString()).toBe(`1:ro:${L1}`)
    expect(await core.write(w, Buffer.from('+v2'), 3, 2)).toBe(3)
    expect(fs.readFileSync(L1 + '/f', 'utf8')).toBe('v1')
    expect(fs.readFileSync(A + '/f', 'utf8')).toBe('v1+v2')
    const buf = Buffer.alloc(10)
    expect(buf.subarray(0, core.read(r, buf, 10, 0)).toString()).toBe('v1+v2')
    expect(core.openFilesIn(A)).toBe(2)
    await core.write(w2, Buffer.from('L'), 1, 0)
    expect(fs.readFileSync(L1 + '/low', 'utf8')).toBe('l')
    expect(fs.readFileSync(A + '/low', 'utf8')).toBe('L')
    for (const h of [w, r, w2]) core.release(h)
    expect(core.openFiles).toBe(0)
    expect(fs.existsSync(A + '/.wh..wh.layerfs.work')).toBe(true)
    core.close()
  })

  it('an added branch shows at once; the origin xattr is read-only', async () => {
    fx = makeFixture({ A: {}, B: {}, C: { c: 'c' } })
    const core = new LayerFs([{ path: fx.dir('A'), mode: 'rw' }, { path: fx.dir('B'), mode: 'ro' }])
    expect(core.tryGetattr('/c')).toBeUndefined()
    core.restack([...core.stack.specs(), { path: fx.dir('C'), mode: 'ro' }])
    expect(core.tryGetattr('/c')).toBeDefined()
    await expect(core.setxattr('/c', ORIGIN_XATTR, Buffer.from('x'))).rejects.toMatchObject({ code: 'EPERM' })
    await expect(core.removexattr('/c', ORIGIN_XATTR)).rejects.toMatchObject({ code: 'EPERM' })
    expect(core.listxattr('/c')).not.toContain(ORIGIN_XATTR)
    core.close()
  })

  it('a file the kernel writes itself (passthrough) is carried over: the sealed layer keeps a copy as it was, the handles write to the new upper', async () => {
    fx = makeFixture({ A: { d: { f: 'v1', other: 'o' } }, B: { low: 'l' } })
    const A = fx.dir('A'), B = fx.dir('B'), L1 = fx.root + '/L1'
    fs.chmodSync(A + '/d/f', 0o640)
    setXattr(A + '/d/f', 'user.tag', Buffer.from('t'))
    fs.utimesSync(A + '/d', 1_000_000, 2_000_000)
    const core = new LayerFs([{ path: A, mode: 'rw' }, { path: B, mode: 'ro' }])
    const w = await core.open('/d/f', O_WRONLY | O_APPEND)
    const r = await core.open('/d/f', O_RDONLY)
    const plain = await core.open('/d/other', O_RDWR) // not passed through: re-opens on its next write
    expect(core.mayPassThrough(w)).toBe(true)
    core.passedThrough(w)
    core.passedThrough(r)
    const before = fs.statSync(A + '/d/f')
    fs.renameSync(A, L1)
    fs.mkdirSync(A)
    core.restack([{ path: A, mode: 'rw' }, { path: L1, mode: 'ro' }, { path: B, mode: 'ro' }], { from: A, to: L1 })
    // The inode the handles (and the kernel) write to is in the new upper now, under the same name.
    expect(fs.statSync(A + '/d/f').ino).toBe(before.ino)
    expect(core.openFilesIn(L1)).toBe(1) // only `plain` is still sealed
    fs.writeSync(core.hostFd(w), '+v2') // as the kernel would, without layerfs
    expect(fs.readFileSync(A + '/d/f', 'utf8')).toBe('v1+v2')
    const buf = Buffer.alloc(10)
    expect(buf.subarray(0, core.read(r, buf, 10, 0)).toString()).toBe('v1+v2')
    // The sealed layer has a copy as it was, with its mode, xattrs and times; its dir keeps its times.
    const sealed = fs.statSync(L1 + '/d/f')
    expect(fs.readFileSync(L1 + '/d/f', 'utf8')).toBe('v1')
    expect(sealed.ino).not.toBe(before.ino)
    expect(sealed.mode & 0o7777).toBe(0o640)
    expect(getXattr(L1 + '/d/f', 'user.tag')?.toString()).toBe('t')
    expect(Math.round(sealed.mtimeMs)).toBe(Math.round(before.mtimeMs))
    expect(fs.statSync(L1 + '/d').mtimeMs).toBe(2_000_000_000)
    expect(fs.statSync(A + '/d').mtimeMs).toBe(2_000_000_000)
    // Nothing else moved; the ordinary handle still re-opens on write.
    expect(fs.existsSync(A + '/d/other')).toBe(false)
    await core.write(plain, Buffer.from('O'), 1, 0)
    expect(fs.readFileSync(L1 + '/d/other', 'utf8')).toBe('o')
    expect(fs.readFileSync(A + '/d/other', 'utf8')).toBe('O')
    expect((await core.getattr('/d/f')).size).toBe(5)
    for (const h of [w, r, plain]) core.release(h)
    // A passed-through file removed while open: nothing to carry over, nothing shows anywhere.
    const gone = await core.create('/d/gone', 0o644, O_WRONLY)
    core.passedThrough(gone)
    await core.unlink('/d/gone')
    const L2 = fx.root + '/L2'
    fs.renameSync(A, L2)
    fs.mkdirSync(A)
    const warned = vi.spyOn(process.stderr, 'write')
    try {
      core.restack([{ path: A, mode: 'rw' }, { path: L2, mode: 'ro' }, { path: L1, mode: 'ro' }, { path: B, mode: 'ro' }], { from: A, to: L2 })
      expect(warned).not.toHaveBeenCalled() // not a failed carry-over: nothing to carry
    } finally {
      warned.mockRestore()
    }
    fs.writeSync(core.hostFd(gone), 'x')
    expect(fs.existsSync(A + '/d/gone') || fs.existsSync(L2 + '/d/gone')).toBe(false)
    expect(core.tryGetattr('/d/gone')).toBeUndefined()
    core.release(gone)
    core.close()
  })

  it('only a plain, single-linked, unprivileged file of the rw branch may be written by the kernel itself', async () => {
    fx = makeFixture({ A: { plain: 'p', suid: 's', linked: 'l', caps: 'c' }, B: { low: 'l' } })
    const A = fx.dir('A')
    fs.chmodSync(A + '/suid', 0o4755)
    fs.linkSync(A + '/linked', A + '/linked2')
    setXattr(A + '/caps', 'security.capability', Buffer.from('0100000200040000000000000000000000000000', 'hex'))
    const core = new LayerFs([{ path: A, mode: 'rw' }, { path: fx.dir('B'), mode: 'ro' }])
    const may = async (p: string, flags: number): Promise<boolean> => {
      const fh = await core.open(p, flags)
      try { return core.mayPassThrough(fh) } finally { core.release(fh) }
    }
    expect(await may('/plain', O_WRONLY)).toBe(true)
    expect(await may('/plain', O_RDONLY)).toBe(true) // a reader of a rw-branch file may join
    expect(await may('/suid', O_WRONLY)).toBe(false)
    expect(await may('/linked', O_WRONLY)).toBe(false)
    expect(await may('/caps', O_WRONLY)).toBe(false)
    expect(await may('/low', O_RDONLY)).toBe(false) // a lower file: not the rw branch's
    expect(await may('/low', O_WRONLY)).toBe(true) // its copy-up is
    core.close()
  })
})
