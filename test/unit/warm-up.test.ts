// The warm-up before a mount serves (lib/warm-up.ts): every operation it runs succeeds on its
// scratch stack, and it leaves nothing behind, in the work area or in the real branches.
import * as fs from 'node:fs'
import { afterEach, describe, expect, it } from 'vitest'
import { UnionView } from '../../lib/union-view.js'
import { warmUp } from '../../lib/warm-up.js'
import { hashTree, makeFixture, upperSnapshot, type Fixture } from '../helpers/fixture.js'

let fx: Fixture | undefined
afterEach(() => {
  fx?.cleanup()
  delete process.env.LAYERFS_WARM_UP
})

describe('warm-up', () => {
  it('runs every operation on a scratch stack in the work area and removes it', async () => {
    fx = makeFixture({ U: { mine: 'm' }, L: { d: { f: 'x' } } })
    const core = new UnionView(`${fx.dir('U')}=rw:${fx.dir('L')}=ro`).core
    const state = (): unknown => [upperSnapshot(fx!.dir('U'), { withMode: true }), fs.statSync(fx!.dir('U')).mtimeMs, hashTree(fx!.dir('L'))]
    const before = state()
    const dir = core.work!.tempPath('warm-up')
    expect(await warmUp(dir)).toBe(true)
    expect(fs.existsSync(dir)).toBe(false)
    expect(fs.readdirSync(core.work!.dir)).toEqual([])
    expect(state()).toEqual(before)
    expect(core.readdir('/').filter((n) => !n.startsWith('.')).sort()).toEqual(['d', 'mine'])
  })
  it('is skipped with LAYERFS_WARM_UP=0, and a failure only ends it early', async () => {
    fx = makeFixture({})
    process.env.LAYERFS_WARM_UP = '0'
    expect(await warmUp(`${fx.root}/w`)).toBe(false)
    expect(fs.existsSync(`${fx.root}/w`)).toBe(false)
    delete process.env.LAYERFS_WARM_UP
    fs.writeFileSync(`${fx.root}/file`, '')
    expect(await warmUp(`${fx.root}/file/w`)).toBe(false) // ENOTDIR: cannot even start
  })
})
