// Issue 7 §4 in the core (no FUSE): names that arrived undecodable are refused with EILSEQ and
// not listed; files created through the union never carry setuid/setgid bits.
import * as fs from 'node:fs'
import { afterEach, describe, expect, it } from 'vitest'
import { LayerFs } from '../../lib/layerfs.js'
import { makeFixture, type Fixture } from '../helpers/fixture.js'

let fx: Fixture | undefined
afterEach(() => fx?.cleanup())

function setup(): { core: LayerFs; up: string; low: string } {
  fx = makeFixture({ U: {}, L: { f: 'low\n' } })
  const core = new LayerFs([{ path: fx.dir('U'), mode: 'rw' }, { path: fx.dir('L'), mode: 'ro' }])
  return { core, up: fx.dir('U'), low: fx.dir('L') }
}

describe('hostile names and modes', () => {
  it('refuses to create or rename to a name with U+FFFD (bytes that were not UTF-8): EILSEQ', async () => {
    const { core, up } = setup()
    await expect(core.create('/a\uFFFD', 0o644)).rejects.toMatchObject({ code: 'EILSEQ' })
    await expect(core.mkdir('/d\uFFFD', 0o755)).rejects.toMatchObject({ code: 'EILSEQ' })
    await expect(core.rename('/f', '/g\uFFFD')).rejects.toMatchObject({ code: 'EILSEQ' })
    await expect(core.link('/f', '/h\uFFFD')).rejects.toMatchObject({ code: 'EILSEQ' })
    expect(fs.readdirSync(up).filter((n) => !n.startsWith('.wh..wh.'))).toEqual([])
  })

  it('does not list a lower name that is not UTF-8 (it could never be looked up), keeps a real U+FFFD name', () => {
    const { core, low } = setup()
    fs.writeFileSync(Buffer.from(`${low}/bad\xff`, 'latin1'), 'x')
    fs.writeFileSync(`${low}/real\uFFFD`, 'x')
    expect(core.readdir('/').sort()).toEqual(['.', '..', 'f', 'real\uFFFD'])
  })

  it('drops setuid/setgid bits from files created through the union (they would be root-owned)', async () => {
    const { core, up } = setup()
    core.release(await core.create('/s', 0o6755))
    await core.mknod('/p', fs.constants.S_IFIFO | 0o4644, 0)
    expect(fs.statSync(`${up}/s`).mode & 0o7777).toBe(0o755)
    expect(fs.lstatSync(`${up}/p`).mode & 0o7777).toBe(0o644)
    // chmod (root only, as the owner) still sets them.
    await core.chmod('/s', 0o4755)
    expect(fs.statSync(`${up}/s`).mode & 0o7777).toBe(0o4755)
  })
})
