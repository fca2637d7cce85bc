// Ordinary tools on a real mount (issue 2 "Integration tests"): cp -a, tar x/c, find, rm -rf
// and git init/add/commit, with the merged view and the rw branch checked against an OCI apply
// of the branches (the rw branch is a valid layer diff) and the ro branch unchanged.
import * as fs from 'node:fs'
import * as path from 'node:path'
import { describe, expect, it } from 'vitest'
import { snapshot, upperSnapshot, writeTree, type Tree } from '../helpers/fixture.js'
import { fuseUnavailable } from '../helpers/mount.js'
import { ociApply, useMount, type Mounted } from '../helpers/union.js'

const PROJECT: Tree = {
  'README.md': '# project\n',
  src: { 'main.c': 'int main(void) { return 0; }\n', 'util.c': 'int util;\n', 'util.o': 'OBJ', lib: { 'x.c': 'x\n', 'x.o': 'OBJ' } },
  bin: { run: { kind: 'file', content: '#!/bin/sh\necho run\n', mode: 0o755 } },
  link: { kind: 'symlink', target: 'src/main.c' },
}

/** The merged view equals an OCI apply of the rw branch over the lower ones. */
async function expectValidLayer(m: Mounted, layers: readonly string[] = ['A', 'B']): Promise<string[]> {
  const merged = await m.merged()
  const applied = ociApply(m.dir(`applied-${Math.random().toString(36).slice(2)}`), layers.map((l) => m.dir(l)))
  expect(merged).toEqual(snapshot(applied, { withMode: true }))
  return merged
}

describe.skipIf(fuseUnavailable())('tools on the mount', () => {
  const mount = useMount()

  it('cp -a into the mount, within it, and out of it', async () => {
    const m = await mount({ A: {}, B: { proj: PROJECT } }, { prepare: (fx) => writeTree(fx.dir('src'), PROJECT) })
    await m.ok('cp -a src/. mnt/imported/ && cp -a mnt/proj mnt/copy')
    expect(snapshot(path.join(m.dir('A'), 'imported'), { withMode: true })).toEqual(snapshot(m.dir('src'), { withMode: true }))
    expect(snapshot(path.join(m.dir('A'), 'copy'), { withMode: true })).toEqual(snapshot(path.join(m.dir('B'), 'proj'), { withMode: true }))
    expect(upperSnapshot(m.dir('A')).filter((l) => !l.startsWith('imported') && !l.startsWith('copy'))).toEqual([])
    expect(await m.ok('./mnt/copy/bin/run && readlink mnt/imported/link')).toBe('run\nsrc/main.c\n')
    await expectValidLayer(m)
  })

  it('tar -x over lower content, then tar -c of the merged view', async () => {
    const m = await mount({ A: {}, B: { proj: PROJECT } }, {
      prepare: (fx) => {
        writeTree(path.join(fx.root, 'patch'), { proj: { 'README.md': '# patched\n', src: { 'new.c': 'new\n', lib: { 'x.c': 'x2\n' } }, docs: { 'a.md': 'a\n' } } })
      },
    })
    await m.ok('tar -cf patch.tar -C patch . && tar -xf patch.tar -C mnt')
    expect(await m.ok('cat mnt/proj/README.md mnt/proj/src/lib/x.c mnt/proj/src/main.c')).toBe('# patched\nx2\nint main(void) { return 0; }\n')
    const merged = await expectValidLayer(m)
    // Only what the archive holds landed in the rw branch (directories on the way included).
    expect(upperSnapshot(m.dir('A')).filter((l) => !l.endsWith('/'))).toEqual([
      'proj/README.md = "# patched\\n"', 'proj/docs/a.md = "a\\n"', 'proj/src/lib/x.c = "x2\\n"', 'proj/src/new.c = "new\\n"',
    ])
    await m.ok('tar -cf out.tar -C mnt . && mkdir out && tar -xf out.tar -C out')
    expect(snapshot(m.dir('out'), { withMode: true })).toEqual(merged)
  })

  it('find lists the merged tree, and find -delete whites out lower files', async () => {
    const m = await mount({ A: { proj: { src: { 'mine.o': 'OBJ', 'mine.c': 'm\n' } } }, B: { proj: PROJECT } })
    expect(await m.ok('cd mnt && find . -name "*.o" | sort')).toBe('./proj/src/lib/x.o\n./proj/src/mine.o\n./proj/src/util.o\n')
    expect(await m.ok('cd mnt && find . -type f | wc -l')).toBe('9\n')
    expect(await m.ok('cd mnt && find . -type l')).toBe('./proj/link\n')
    await m.ok('find mnt -name "*.o" -delete')
    expect(await m.ok('cd mnt && find . -name "*.o"')).toBe('')
    expect(upperSnapshot(m.dir('A'))).toEqual([
      'proj/', 'proj/src/', 'proj/src/.wh.util.o = ""', 'proj/src/lib/', 'proj/src/lib/.wh.x.o = ""', 'proj/src/mine.c = "m\\n"',
    ])
    await expectValidLayer(m)
  })

  it('rm -rf of everything leaves an empty view and only whiteouts', async () => {
    const m = await mount({ A: { mine: { f: 'f' }, top: 't' }, B: { proj: PROJECT, other: 'o' } })
    await m.ok('rm -rf mnt/* mnt/.[!.]* 2>/dev/null; true')
    expect(await m.ok('ls -A mnt')).toBe('')
    expect(upperSnapshot(m.dir('A'))).toEqual(['.wh.other = ""', '.wh.proj = ""'])
    await expectValidLayer(m)
  })

  it('git init, add and commit on a lower project, twice', async () => {
    const m = await mount({ A: {}, B: { proj: PROJECT } })
    const git = 'git -c user.name=t -c user.email=t@example.com -c init.defaultBranch=main -c core.fsync=all'
    await m.ok(`cd mnt/proj && ${git} init -q && ${git} add -A && ${git} commit -qm first`)
    expect(await m.ok('cd mnt/proj && git status --porcelain && git ls-files | wc -l')).toBe('8\n')
    await m.ok(`cd mnt/proj && echo more >> src/main.c && rm src/util.o && mv README.md README && ${git} add -A && ${git} commit -qm second`)
    expect(await m.ok('cd mnt/proj && git status --porcelain && git log --format=%s')).toBe('second\nfirst\n')
    expect(await m.ok('cd mnt/proj && git fsck --strict 2>&1 && git diff --stat HEAD~1 | tail -1')).toMatch(/3 files changed/)
    expect(await m.ok('cd mnt/proj && git show HEAD:src/main.c')).toBe('int main(void) { return 0; }\nmore\n')
    const upper = upperSnapshot(m.dir('A')).filter((l) => !l.startsWith('proj/.git'))
    expect(upper).toEqual([
      'proj/', 'proj/.wh.README.md = ""', 'proj/README = "# project\\n"', 'proj/src/', 'proj/src/.wh.util.o = ""',
      'proj/src/main.c = "int main(void) { return 0; }\\nmore\\n"',
    ])
    expect(fs.existsSync(path.join(m.dir('A'), 'proj/.git/HEAD'))).toBe(true)
    await expectValidLayer(m)
  })
})
