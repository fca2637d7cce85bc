// The native transport's warm-up (lib/fuse/kernel/warm-up.ts): a scratch session answers every
// request it sends without an unexpected error, through the real dispatcher, and leaves nothing
// behind, in the work area or in the real branches.
import * as fs from 'node:fs'
import { afterEach, describe, expect, it } from 'vitest'
import { tryNativeFuse } from '../../lib/fuse/kernel/addon.js'
import { warmUpSession } from '../../lib/fuse/kernel/warm-up.js'
import { UnionView } from '../../lib/union-view.js'
import { hashTree, makeFixture, upperSnapshot, type Fixture } from '../helpers/fixture.js'

const addon = tryNativeFuse()
const OPTS = { entryTimeout: 60, attrTimeout: 60, negativeTimeout: 60, keepCache: true, passthrough: false, maxIo: 1 << 20 }

let fx: Fixture | undefined
afterEach(() => {
  fx?.cleanup()
  delete process.env.LAYERFS_WARM_UP
})

describe.skipIf(!addon)('native transport warm-up', () => {
  it('answers every request of its scratch kernel and removes the scratch stack', async () => {
    fx = makeFixture({ U: { mine: 'm' }, L: { d: { f: 'x' } } })
    const core = new UnionView(`${fx.dir('U')}=rw:${fx.dir('L')}=ro`).core
    const state = (): unknown => [upperSnapshot(fx!.dir('U'), { withMode: true }), fs.statSync(fx!.dir('U')).mtimeMs, hashTree(fx!.dir('L'))]
    const before = state()
    const dir = core.work!.tempPath('warm-up')
    expect(await warmUpSession(addon!, dir, OPTS)).toBe(true)
    expect(fs.existsSync(dir)).toBe(false)
    expect(fs.readdirSync(core.work!.dir)).toEqual([])
    expect(state()).toEqual(before)
  })
  it('is skipped with LAYERFS_WARM_UP=0', async () => {
    fx = makeFixture({})
    process.env.LAYERFS_WARM_UP = '0'
    expect(await warmUpSession(addon!, `${fx.root}/w`, OPTS)).toBe(false)
    expect(fs.existsSync(`${fx.root}/w`)).toBe(false)
  })
})
