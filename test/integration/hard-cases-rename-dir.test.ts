// Issue "hard cases" §1: rename(2) of a directory with lower content succeeds (no EXDEV), through
// mv, Python, Node and git, and the rw branch stays a valid OCI layer diff.
import * as fs from 'node:fs'
import * as path from 'node:path'
import { describe, expect, it } from 'vitest'
import { snapshot, upperSnapshot } from '../helpers/fixture.js'
import { fuseUnavailable } from '../helpers/mount.js'
import { ociApply, useMount } from '../helpers/union.js'

const trees = {
  A: { d: { top: 't\n', '.wh.gone': '' } },
  B: { d: { mid: 'm\n', sub: { deep: 'x\n' } } },
  C: { d: { gone: 'g\n', bottom: 'b\n', sub: { low: 'l\n' } } },
}

describe.skipIf(fuseUnavailable())('rename of a directory with lower content', () => {
  const mountIt = useMount()

  it.each([
    ['mv', 'mv mnt/d mnt/e'],
    ['python os.rename', `python3 -c "import os; os.rename('mnt/d', 'mnt/e')"`],
    ['node fs.rename', `node -e "require('fs').rename('mnt/d', 'mnt/e', (e) => { if (e) throw e })"`],
  ])('%s: full merged content at the new name, old name gone, upper a valid layer', async (_name, script) => {
    const m = await mountIt(trees, { spec: 'A=rw:B=ro:C=ro' })
    const before = (await m.ok('cd mnt/d && find . | sort')).split('\n')
    await m.ok(script)
    expect((await m.ok('cd mnt/e && find . | sort')).split('\n')).toEqual(before)
    expect(await m.ok('cat mnt/e/sub/deep mnt/e/sub/low mnt/e/bottom')).toBe('x\nl\nb\n')
    expect((await m.sh('ls mnt/d')).code).not.toBe(0)
    const view = await m.merged()
    await m.unmount()
    const up = upperSnapshot(m.dir('A'))
    expect(up).toContain('.wh.d = ""')
    expect(up).toContain('e/.wh..wh..opq = ""')
    expect(up.filter((l) => l.startsWith('e/') && l.includes('.wh.') && !l.includes('.wh..wh..opq'))).toEqual([])
    // Applying the rw branch as an OCI layer over the lowers reproduces the merged view.
    const applied = ociApply(path.join(m.root, 'applied'), [m.dir('A'), m.dir('B'), m.dir('C')].map((d) => d))
    fs.rmSync(path.join(applied, '.wh..wh.layerfs.work'), { recursive: true, force: true })
    expect(snapshot(applied, { withMode: true })).toEqual(view)
  })

  it('git mv of a tracked lower directory works', async () => {
    const m = await mountIt({ A: {}, B: {} }, {
      spec: 'A=rw:B=ro',
      prepare: (fx) => {
        const b = fx.dir('B')
        fs.mkdirSync(b + '/src/lib', { recursive: true })
        fs.writeFileSync(b + '/src/lib/a.txt', 'a\n')
        fs.writeFileSync(b + '/src/main.txt', 'main\n')
      },
    })
    await m.ok('cd mnt && git init -q && git add . && git -c user.name=t -c user.email=t@t commit -qm init')
    await m.ok('cd mnt && git mv src code && git -c user.name=t -c user.email=t@t commit -qm move')
    expect(await m.ok('cd mnt && git status --porcelain && ls code code/lib')).toBe('code:\nlib\nmain.txt\n\ncode/lib:\na.txt\n')
    expect(await m.ok('cd mnt && git log --oneline | wc -l')).toBe('2\n')
  })

  it('a staging directory renamed into place, as npm install does', async () => {
    const m = await mountIt({ A: {}, B: { node_modules: { old: { 'index.js': 'old\n' } } } })
    await m.ok('mkdir -p mnt/node_modules/.staging/pkg && echo new > mnt/node_modules/.staging/pkg/index.js')
    await m.ok('mv mnt/node_modules/old mnt/node_modules/.old-gone && mv mnt/node_modules/.staging/pkg mnt/node_modules/old')
    expect(await m.ok('cat mnt/node_modules/old/index.js mnt/node_modules/.old-gone/index.js')).toBe('new\nold\n')
  })

  it('renaming a 2000-file lower tree keeps every file (data copied by the kernel)', async () => {
    const m = await mountIt({ A: {}, B: {} }, {
      prepare: (fx) => {
        for (let i = 0; i < 2000; i++) {
          const d = `${fx.dir('B')}/big/d${i % 20}`
          fs.mkdirSync(d, { recursive: true })
          fs.writeFileSync(`${d}/f${i}`, `content ${i}\n`)
        }
      },
    })
    await m.ok('mv mnt/big mnt/moved')
    expect(await m.ok('find mnt/moved -type f | wc -l')).toBe('2000\n')
    expect(await m.ok('cat mnt/moved/d7/f1987')).toBe('content 1987\n')
  })
})
