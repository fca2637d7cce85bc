// Opaque directories through a real mount: a directory made where a lower one was deleted is
// marked '.wh..wh..opq' so nothing of the old one comes back; markers in ro branches hide every
// branch below their own (OCI layer.md "Opaque Whiteout", union-contract.md "Lookup").
import { describe, expect, it } from 'vitest'
import { snapshot, upperSnapshot } from '../helpers/fixture.js'
import { fuseUnavailable } from '../helpers/mount.js'
import { ociApply, useMount } from '../helpers/union.js'

describe.skipIf(fuseUnavailable())('opaque directories', () => {
  const mount = useMount()

  it('mkdir over a deleted lower directory makes an opaque directory, not a whiteout', async () => {
    const m = await mount({ A: {}, B: { d: { old: 'o', sub: { s: 's' } } } })
    await m.ok('rm -rf mnt/d && mkdir mnt/d')
    expect(await m.ok('ls -A mnt/d')).toBe('')
    expect(await m.errnos(["os.stat('mnt/d/old')", "os.stat('mnt/d/sub/s')"])).toEqual(['ENOENT', 'ENOENT'])
    expect(upperSnapshot(m.dir('A'))).toEqual(['d/', 'd/.wh..wh..opq = ""'])
    await m.ok('echo new > mnt/d/new && mkdir mnt/d/sub')
    expect(await m.ok('ls -A mnt/d')).toBe('new\nsub\n')
    expect(await m.ok('ls -A mnt/d/sub')).toBe('')
    expect(upperSnapshot(m.dir('A'))).toEqual(['d/', 'd/.wh..wh..opq = ""', 'd/new = "new\\n"', 'd/sub/'])
  })

  it('mkdir keeps the requested mode on the opaque directory', async () => {
    const m = await mount({ A: {}, B: { d: { x: 'x' } } })
    await m.ok('rm -r mnt/d && mkdir -m 710 mnt/d')
    expect(await m.ok('stat -c %a mnt/d')).toBe('710\n')
    expect(upperSnapshot(m.dir('A'), { withMode: true })).toEqual(['d/ 710', 'd/.wh..wh..opq = "" 600'])
  })

  it('a plain mkdir of a new name is not opaque', async () => {
    const m = await mount({ A: {}, B: { other: { x: 'x' } } })
    await m.ok('mkdir mnt/fresh && touch mnt/fresh/f')
    expect(upperSnapshot(m.dir('A'))).toEqual(['fresh/', 'fresh/f = ""'])
  })

  it('a file deleted and replaced by a directory hides nothing more than the file', async () => {
    const m = await mount({ A: {}, B: { n: 'was a file' } })
    await m.ok('rm mnt/n && mkdir mnt/n && touch mnt/n/x')
    expect(await m.ok('stat -c %F mnt/n && ls -A mnt/n')).toBe('directory\nx\n')
    // The lower entry was a file: an opaque marker is harmless, a leftover whiteout is not.
    expect(upperSnapshot(m.dir('A')).filter((l) => l.startsWith('.wh.'))).toEqual([])
    expect(await m.merged()).toEqual(snapshot(ociApply(m.dir('applied'), [m.dir('A'), m.dir('B')]), { withMode: true }))
  })

  it('an opaque marker in a ro branch hides the branches below, never its own entries', async () => {
    const m = await mount({
      A: {},
      B: { d: { '.wh..wh..opq': '', mine: 'B' } },
      C: { d: { hidden: 'C', mine: 'C' }, top: 't' },
    }, { spec: 'A=rw:B=ro:C=ro' })
    expect(await m.ok('ls -A mnt/d')).toBe('mine\n')
    expect(await m.ok('cat mnt/d/mine')).toBe('B')
    expect(await m.errno("os.stat('mnt/d/hidden')")).toBe('ENOENT')
    expect(await m.ok('ls -A mnt')).toBe('d\ntop\n')
  })

  it('an opaque directory in the rw branch hides the lower one', async () => {
    const m = await mount({ A: { d: { '.wh..wh..opq': '', a: 'A' } }, B: { d: { a: 'B', b: 'B' } } })
    expect(await m.ok('ls -A mnt/d')).toBe('a\n')
    expect(await m.ok('cat mnt/d/a')).toBe('A')
    // Deleting a name that only the opaque dir has needs no whiteout: nothing shows through.
    await m.ok('rm mnt/d/a')
    expect(await m.ok('ls -A mnt/d')).toBe('')
    expect(upperSnapshot(m.dir('A'))).toEqual(['d/', 'd/.wh..wh..opq = ""'])
    // And the now-empty merged directory can be removed.
    await m.ok('rmdir mnt/d')
    expect(await m.errno("os.stat('mnt/d')")).toBe('ENOENT')
    expect(upperSnapshot(m.dir('A'))).toEqual(['.wh.d = ""'])
  })

  it('a deep lower directory deleted and recreated with mkdir -p is opaque at the recreated level only', async () => {
    const m = await mount({ A: {}, B: { p: { q: { r: 'r' }, keep: 'k' } } })
    await m.ok('rm -r mnt/p/q && mkdir -p mnt/p/q/z')
    expect(await m.ok('ls -A mnt/p && ls -A mnt/p/q')).toBe('keep\nq\nz\n')
    expect(upperSnapshot(m.dir('A'))).toEqual(['p/', 'p/q/', 'p/q/.wh..wh..opq = ""', 'p/q/z/'])
    expect(await m.merged()).toEqual(snapshot(ociApply(m.dir('applied'), [m.dir('A'), m.dir('B')]), { withMode: true }))
  })
})
