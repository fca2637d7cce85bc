// LayerFs.restack as a checkpoint does it (lib/control/service.ts), without FUSE: open handles
// into the sealed branch re-open in the new upper on their next write; nothing lands in the sealed one.
import * as fs from 'node:fs'
import { afterEach, describe, expect, it } from 'vitest'
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
})
