// rename(2) through a real mount (union-contract.md "Rename"): files and symlinks are copied up
// and renamed in the rw branch with a whiteout for a lower old name; directories with lower
// content move whole (no EXDEV): the new name is opaque with the merged content, the old one
// whited out, and the rw branch stays a valid layer.
import * as fs from 'node:fs'
import * as path from 'node:path'
import { describe, expect, it } from 'vitest'
import { snapshot, upperSnapshot, type Tree } from '../helpers/fixture.js'
import { cli, fuseUnavailable, mountCli } from '../helpers/mount.js'
import { ociApply, useMount, type Mounted } from '../helpers/union.js'

/** The merged view equals the branches applied as OCI layers (the rw branch is a valid layer). */
async function expectValidLayer(m: Mounted, layers: readonly string[] = ['A', 'B']): Promise<string[]> {
  const merged = await m.merged()
  expect(merged).toEqual(snapshot(ociApply(m.dir(`applied-${Math.random().toString(36).slice(2)}`), layers.map((l) => m.dir(l))), { withMode: true }))
  return merged
}

describe.skipIf(fuseUnavailable())('rename', () => {
  const mount = useMount()

  it('mv of a lower file: copy in the rw branch under the new name, whiteout for the old', async () => {
    const m = await mount({ A: {}, B: { f: 'content\n', other: 'o' } })
    const ino = await m.ok('stat -c %i mnt/f')
    await m.ok('mv mnt/f mnt/g')
    expect(await m.ok('ls -A mnt && cat mnt/g')).toBe('g\nother\ncontent\n')
    expect(await m.ok('stat -c %i mnt/g')).toBe(ino)
    expect(await m.errno("os.stat('mnt/f')")).toBe('ENOENT')
    expect(upperSnapshot(m.dir('A'))).toEqual(['.wh.f = ""', 'g = "content\\n"'])
  })

  it('mv of a rw-only file needs no whiteout', async () => {
    const m = await mount({ A: { mine: 'm' }, B: { other: 'o' } })
    await m.ok('mv mnt/mine mnt/yours')
    expect(upperSnapshot(m.dir('A'))).toEqual(['yours = "m"'])
  })

  it('mv of a file present in both branches removes the rw copy and whites out the lower', async () => {
    const m = await mount({ A: { x: 'xA' }, B: { x: 'xB' } })
    await m.ok('mv mnt/x mnt/y')
    expect(await m.ok('ls -A mnt && cat mnt/y')).toBe('y\nxA')
    expect(upperSnapshot(m.dir('A'))).toEqual(['.wh.x = ""', 'y = "xA"'])
  })

  it('mv over an existing lower file replaces it; no whiteout for the new name', async () => {
    const m = await mount({ A: {}, B: { f: 'from f', g: 'old g' } })
    await m.ok('mv mnt/f mnt/g')
    expect(await m.ok('ls -A mnt && cat mnt/g')).toBe('g\nfrom f')
    expect(upperSnapshot(m.dir('A'))).toEqual(['.wh.f = ""', 'g = "from f"'])
  })

  it('os.rename onto a deleted name drops that name\'s whiteout', async () => {
    const m = await mount({ A: {}, B: { f: 'f', g: 'g' } })
    await m.ok('rm mnt/g')
    expect(await m.errno("os.rename('mnt/f', 'mnt/g')")).toBe('OK')
    expect(await m.ok('ls -A mnt && cat mnt/g')).toBe('g\nf')
    expect(upperSnapshot(m.dir('A'))).toEqual(['.wh.f = ""', 'g = "f"'])
  })

  it('mv of a symlink keeps its target', async () => {
    const m = await mount({ A: {}, B: { lnk: { kind: 'symlink', target: 'dir/target' }, abs: { kind: 'symlink', target: '/etc/hostname' } } })
    await m.ok('mv mnt/lnk mnt/lnk2 && mv mnt/abs mnt/abs2')
    expect(await m.ok('readlink mnt/lnk2 mnt/abs2')).toBe('dir/target\n/etc/hostname\n')
    expect(upperSnapshot(m.dir('A'))).toEqual(['.wh.abs = ""', '.wh.lnk = ""', 'abs2 -> /etc/hostname', 'lnk2 -> dir/target'])
  })

  it('mv into a lower-only directory creates the parent chain in the rw branch', async () => {
    const m = await mount({ A: {}, B: { f: 'f', d: { sub: { keep: 'k' } } } })
    await m.ok('mv mnt/f mnt/d/sub/f')
    expect(await m.ok('ls -A mnt mnt/d/sub')).toBe('mnt:\nd\n\nmnt/d/sub:\nf\nkeep\n')
    expect(upperSnapshot(m.dir('A'))).toEqual(['.wh.f = ""', 'd/', 'd/sub/', 'd/sub/f = "f"'])
    await expectValidLayer(m)
  })

  it('mv of a directory with lower content moves the whole merged tree', async () => {
    const trees: Record<string, Tree> = {
      A: { d: { own: 'A', sub: { up: 'u' } } },
      B: { d: { f: 'f\n', lnk: { kind: 'symlink', target: 'f' }, sub: { s: 's', deep: { z: 'z' } }, gone: 'g' }, other: 'o' },
    }
    const m = await mount(trees)
    await m.ok('rm mnt/d/gone')
    await m.ok('mv mnt/d mnt/e')
    expect(await m.errno("os.lstat('mnt/d')")).toBe('ENOENT')
    expect(await m.ok('cd mnt && find . | sort')).toBe(
      ['.', './e', './e/f', './e/lnk', './e/own', './e/sub', './e/sub/deep', './e/sub/deep/z', './e/sub/s', './e/sub/up', './other', ''].join('\n'))
    expect(await m.ok('cat mnt/e/lnk mnt/e/sub/deep/z')).toBe('f\nz')
    // On disk: the old name whited out, the new one opaque with the full merged content.
    expect(upperSnapshot(m.dir('A'))).toEqual([
      '.wh.d = ""', 'e/', 'e/.wh..wh..opq = ""', 'e/f = "f\\n"', 'e/lnk -> f', 'e/own = "A"',
      'e/sub/', 'e/sub/deep/', 'e/sub/deep/z = "z"', 'e/sub/s = "s"', 'e/sub/up = "u"',
    ])
    const merged = await expectValidLayer(m)
    // It survives a remount: nothing of it lived only in the daemon.
    await m.unmount()
    await mountCli(['A=rw:B=ro', './mnt'], { cwd: m.root })
    expect(await m.merged()).toEqual(merged)
  })

  it('rename(2) of a lower-only directory keeps modes, times and owners of the tree', async () => {
    const m = await mount({ A: {}, B: { d: { x: { kind: 'file', content: 'x', mode: 0o600, mtime: 1_000_000_000 }, sub: { kind: 'dir', mode: 0o700, entries: { y: 'y' } } } } }, {
      prepare: (fx) => {
        fs.chownSync(path.join(fx.dir('B'), 'd', 'x'), 1234, 5678)
        fs.utimesSync(path.join(fx.dir('B'), 'd'), 1_000_000_000, 1_000_000_000)
      },
    })
    const before = await m.ok('cd mnt/d && stat -c "%n %a %u %g %Y" x sub sub/y . && stat -c "%a %Y" ../d')
    expect(await m.errno("os.rename('mnt/d', 'mnt/n')")).toBe('OK')
    expect(await m.ok('cd mnt/n && stat -c "%n %a %u %g %Y" x sub sub/y . && stat -c "%a %Y" ../n')).toBe(before)
    expect(upperSnapshot(m.dir('A'), { withMode: true })).toEqual([
      '.wh.d = "" 600', 'n/ 755', 'n/.wh..wh..opq = "" 600', 'n/sub/ 700', 'n/sub/y = "y" 644', 'n/x = "x" 600',
    ])
    await expectValidLayer(m)
  })

  it('mv of a rw-only directory is a plain rename: no marker, no whiteout', async () => {
    const m = await mount({ A: {}, B: { other: 'o' } })
    await m.ok('mkdir -p mnt/n/sub && echo x > mnt/n/sub/x && mv mnt/n mnt/m')
    expect(await m.ok('cat mnt/m/sub/x')).toBe('x\n')
    expect(upperSnapshot(m.dir('A'))).toEqual(['m/', 'm/sub/', 'm/sub/x = "x\\n"'])
  })

  it('a directory moved onto a deleted lower name is opaque, so the old content stays hidden', async () => {
    const m = await mount({ A: {}, B: { d: { old: 'o' } } })
    await m.ok('rm -r mnt/d && mkdir mnt/n && touch mnt/n/new && mv mnt/n mnt/d')
    expect(await m.ok('ls -A mnt/d')).toBe('new\n')
    expect(upperSnapshot(m.dir('A'))).toEqual(['d/', 'd/.wh..wh..opq = ""', 'd/new = ""'])
    await expectValidLayer(m)
  })

  it('a directory moved over an empty lower directory replaces it', async () => {
    const m = await mount({ A: {}, B: { src: { a: 'a' }, dst: {} } })
    expect(await m.errno("os.rename('mnt/src', 'mnt/dst')")).toBe('OK')
    expect(await m.ok('ls -A mnt && ls -A mnt/dst')).toBe('dst\na\n')
    await expectValidLayer(m)
  })

  it('moving a directory into a subdirectory of a lower tree works at depth', async () => {
    const m = await mount({ A: {}, B: { a: { b: { c: 'c' } }, t: { u: {} } } })
    await m.ok('mv mnt/a mnt/t/u/a')
    expect(await m.ok('cd mnt && find . | sort')).toBe(['.', './t', './t/u', './t/u/a', './t/u/a/b', './t/u/a/b/c', ''].join('\n'))
    await expectValidLayer(m)
  })

  it('the daemon is still consistent after many renames back and forth', async () => {
    const m = await mount({ A: {}, B: { f: 'f', d: { x: 'x' } } })
    await m.ok('for i in 1 2 3 4 5; do mv mnt/f mnt/g && mv mnt/g mnt/f && mv mnt/d mnt/e && mv mnt/e mnt/d; done')
    expect(await m.ok('cd mnt && find . | sort && cat f d/x')).toBe('.\n./d\n./d/x\n./f\nfx')
    await expectValidLayer(m)
    expect((await cli(['umount', './mnt'], { cwd: m.root })).code).toBe(0)
  })
})
