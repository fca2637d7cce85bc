// Whiteouts through a real mount: deleting lower names writes '.wh.N' in the rw branch, deleted
// names stay gone, recreated names drop their whiteout, and '.wh.' markers in ro branches hide
// only the branches below their own (OCI layer.md, union-contract.md "Lookup" and "Delete").
import { describe, expect, it } from 'vitest'
import { snapshot, upperSnapshot } from '../helpers/fixture.js'
import { fuseUnavailable } from '../helpers/mount.js'
import { ociApply, useMount } from '../helpers/union.js'

describe.skipIf(fuseUnavailable())('whiteouts', () => {
  const mount = useMount()

  it('rm of a lower-only file writes .wh.N in the rw branch and hides the name', async () => {
    const m = await mount({ A: {}, B: { f: 'lower\n', g: 'keep\n' } })
    await m.ok('rm mnt/f')
    expect(await m.ok('ls -A mnt')).toBe('g\n')
    expect(await m.errno("os.stat('mnt/f')")).toBe('ENOENT')
    expect(upperSnapshot(m.dir('A'))).toEqual(['.wh.f = ""'])
  })

  it('rm of a name in both branches removes the rw copy and whites out the lower one', async () => {
    const m = await mount({ A: { x: 'xA\n' }, B: { x: 'xB\n' } })
    await m.ok('rm mnt/x')
    expect(await m.ok('ls -A mnt')).toBe('')
    expect(await m.errno("open('mnt/x')")).toBe('ENOENT')
    expect(upperSnapshot(m.dir('A'))).toEqual(['.wh.x = ""'])
  })

  it('rm of a rw-only file leaves no whiteout', async () => {
    const m = await mount({ A: { mine: '1' }, B: { other: '2' } })
    await m.ok('rm mnt/mine')
    expect(await m.ok('ls -A mnt')).toBe('other\n')
    expect(upperSnapshot(m.dir('A'))).toEqual([])
  })

  it('recreating a deleted name replaces its whiteout, and the lower content never comes back', async () => {
    const m = await mount({ A: {}, B: { f: 'lower\n' } })
    await m.ok('rm mnt/f')
    await m.ok('echo again > mnt/f')
    expect(await m.ok('cat mnt/f')).toBe('again\n')
    expect(upperSnapshot(m.dir('A'))).toEqual(['f = "again\\n"'])
    await m.ok('rm mnt/f && ln -s elsewhere mnt/f')
    expect(await m.ok('readlink mnt/f')).toBe('elsewhere\n')
    expect(upperSnapshot(m.dir('A'))).toEqual(['f -> elsewhere'])
  })

  it('rmdir of a lower directory that looks empty succeeds though the lower has whited-out entries', async () => {
    const m = await mount({ A: {}, B: { d: { a: '1', b: '2' }, keep: 'k' } })
    await m.ok('rm mnt/d/a mnt/d/b')
    expect(upperSnapshot(m.dir('A'))).toEqual(['d/', 'd/.wh.a = ""', 'd/.wh.b = ""'])
    await m.ok('rmdir mnt/d')
    expect(await m.ok('ls -A mnt')).toBe('keep\n')
    expect(upperSnapshot(m.dir('A'))).toEqual(['.wh.d = ""'])
  })

  it('rm -rf of a tree spread over both branches leaves exactly one whiteout', async () => {
    const m = await mount({
      A: { d: { mine: 'm', sub: { deep: 'x' } } },
      B: { d: { a: '1', sub: { s: 's', t: { u: 'u' } }, lnk: { kind: 'symlink', target: 'a' } } },
    })
    expect(await m.ok('find mnt/d | sort')).toBe(
      ['mnt/d', 'mnt/d/a', 'mnt/d/lnk', 'mnt/d/mine', 'mnt/d/sub', 'mnt/d/sub/deep', 'mnt/d/sub/s', 'mnt/d/sub/t', 'mnt/d/sub/t/u', ''].join('\n'))
    await m.ok('rm -rf mnt/d')
    expect(await m.errno("os.lstat('mnt/d')")).toBe('ENOENT')
    expect(await m.ok('ls -A mnt')).toBe('')
    expect(upperSnapshot(m.dir('A'))).toEqual(['.wh.d = ""'])
  })

  it('deleting in a lower-only subdirectory creates the parents in the rw branch', async () => {
    const m = await mount({ A: {}, B: { p: { q: { f: 'f', g: 'g' } } } })
    await m.ok('rm mnt/p/q/f')
    expect(await m.ok('ls mnt/p/q')).toBe('g\n')
    expect(upperSnapshot(m.dir('A'))).toEqual(['p/', 'p/q/', 'p/q/.wh.f = ""'])
  })

  it('a whiteout in a ro branch hides the branches below it, never its own entry', async () => {
    const m = await mount({
      A: {},
      B: { '.wh.x': '', '.wh.y': '', y: 'yB\n', '.wh.d': '' },
      C: { x: 'xC\n', y: 'yC\n', d: { inner: 'i' }, z: 'zC\n' },
    }, { spec: 'A=rw:B=ro:C=ro' })
    expect(await m.ok('ls -A mnt')).toBe('y\nz\n')
    expect(await m.ok('cat mnt/y')).toBe('yB\n')
    expect(await m.errnos(["os.stat('mnt/x')", "os.stat('mnt/d')", "os.stat('mnt/d/inner')"])).toEqual(['ENOENT', 'ENOENT', 'ENOENT'])
    expect(upperSnapshot(m.dir('A'))).toEqual([])
  })

  it('a deleted directory hides everything under it, and mkdir -p brings back none of it', async () => {
    const m = await mount({ A: {}, B: { d: { sub: { f: 'f' } } } })
    await m.ok('rm -r mnt/d')
    await m.ok('mkdir -p mnt/d/sub')
    expect(await m.ok('ls -A mnt/d/sub')).toBe('')
    expect(await m.errno("os.stat('mnt/d/sub/f')")).toBe('ENOENT')
    // Only the top directory needs the marker: below it, nothing of B can show through.
    expect(upperSnapshot(m.dir('A'))).toEqual(['d/', 'd/.wh..wh..opq = ""', 'd/sub/'])
  })

  it('the rw branch after deletions is a layer that reproduces the merged view', async () => {
    const m = await mount({ A: { top: 't' }, B: { a: '1', b: '2', d: { x: 'x', y: 'y' } } })
    await m.ok('rm mnt/a mnt/d/x && rm -r mnt/top')
    const merged = await m.merged()
    expect(merged).toEqual(snapshot(ociApply(m.dir('applied'), [m.dir('A'), m.dir('B')]), { withMode: true }))
    expect(merged).toEqual(['b = "2" 644', 'd/ 755', 'd/y = "y" 644'])
  })
})
