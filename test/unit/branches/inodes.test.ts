// The inode table stays bounded under churn (issue 7 §5): a file whose last name is deleted
// gives its number back, so creating and deleting files forever does not grow the table.
import { afterEach, expect, it } from 'vitest'
import { LayerFs } from '../../../lib/layerfs.js'
import { makeFixture, type Fixture } from '../../helpers/fixture.js'

let fx: Fixture | undefined
afterEach(() => fx?.cleanup())

it('forgets the number of a file when its last name is unlinked', async () => {
  fx = makeFixture({ U: {}, L: { keep: 'k' } })
  const core = new LayerFs([{ path: fx.dir('U'), mode: 'rw' }, { path: fx.dir('L'), mode: 'ro' }])
  core.getattr('/keep')
  const base = core.inodes.size
  for (let round = 0; round < 5; round++) {
    for (let i = 0; i < 200; i++) {
      core.release(await core.create(`/f${i}`, 0o644))
      core.getattr(`/f${i}`)
    }
    expect(core.inodes.size).toBe(base + 200)
    for (let i = 0; i < 200; i++) await core.unlink(`/f${i}`)
    expect(core.inodes.size).toBe(base)
  }
  // A hard-linked file keeps its number while another name is left.
  core.release(await core.create('/a', 0o644))
  await core.link('/a', '/b')
  const ino = core.getattr('/a').ino
  await core.unlink('/a')
  expect(core.getattr('/b').ino).toBe(ino)
})
