// Hard-link groups across copy-up (issue "hard cases" §2) and inode identity (§3), on the core.
import * as fs from 'node:fs'
import { afterEach, describe, expect, it } from 'vitest'
import { UnionView } from '../../../lib/union-view.js'
import { makeFixture, upperSnapshot, type Fixture } from '../../helpers/fixture.js'

let fx: Fixture | undefined
afterEach(() => fx?.cleanup())

function setup(): { view: UnionView; up: string; low: string } {
  fx = makeFixture({ U: {}, L: { a: 'shared', d: { x: 'x' }, other: { deep: 'y' } } })
  const low = fx.dir('L')
  fs.linkSync(low + '/a', low + '/d/b') // one inode, two names, in different dirs
  fs.linkSync(low + '/a', low + '/other/c')
  return { view: new UnionView(`${fx.dir("U")}=rw:${low}=ro`), up: fx.dir('U'), low }
}

describe('hard links in a lower branch', () => {
  it('share one inode number and the lower link count before copy-up', async () => {
    const { view } = setup()
    const [a, b] = [await view.lstat('/a'), await view.lstat('/d/b')]
    expect(a.ino).toBe(b.ino)
    expect(a.nlink).toBe(3)
  })
  it('stay one inode after one name is copied up: every name sees the write', async () => {
    const { view, up, low } = setup()
    const ino = (await view.lstat('/a')).ino
    await view.writeFile('/d/b', 'changed')
    for (const p of ['/a', '/d/b', '/other/c']) {
      expect(await view.readFile(p, 'utf8')).toBe('changed')
      expect((await view.lstat(p)).ino).toBe(ino)
      expect((await view.lstat(p)).nlink).toBe(3)
    }
    expect(fs.lstatSync(up + '/a').ino).toBe(fs.lstatSync(up + '/d/b').ino)
    expect(fs.readFileSync(low + '/a', 'utf8')).toBe('shared') // the lower branch is untouched
  })
  it('leaves whited-out names of the group alone', async () => {
    const { view, up } = setup()
    await view.unlink('/other/c')
    await view.chmod('/a', 0o600)
    expect(upperSnapshot(up)).toEqual(['a = "shared"', 'd/', 'd/b = "shared"', 'other/', 'other/.wh.c = ""'])
    expect((await view.lstat('/a')).nlink).toBe(2)
  })
  it('link(2) of a lower file copies it up once and links in the rw branch', async () => {
    const { view, up } = setup()
    await view.link('/d/x', '/d/y')
    expect(fs.lstatSync(up + '/d/x').ino).toBe(fs.lstatSync(up + '/d/y').ino)
    expect((await view.lstat('/d/y')).nlink).toBe(2)
  })
})

describe('inode identity', () => {
  it('a directory keeps its number while its children change and across its rename', async () => {
    const { view } = setup()
    const ino = (await view.lstat('/d')).ino
    await view.writeFile('/d/new', 'n')
    await view.unlink('/d/x')
    expect((await view.lstat('/d')).ino).toBe(ino)
    await view.rename('/d', '/e')
    expect((await view.lstat('/e')).ino).toBe(ino)
  })
  it('numbers are unique among visible entries', async () => {
    const { view } = setup()
    await view.writeFile('/n1', '1')
    await view.writeFile('/n2', '2')
    const inos = await Promise.all(['/', '/a', '/d', '/d/x', '/other', '/n1', '/n2'].map(async (p) => (await view.lstat(p)).ino))
    expect(new Set(inos).size).toBe(inos.length)
  })
})
