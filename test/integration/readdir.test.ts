// Merged listings through a real mount (union-contract.md "Listing"): each visible name once,
// from its top-most layer, with '.' and '..'; whiteouts, opaque markers and the work area
// applied, never listed; overlayfs-style lower markers (0/0 char device, trusted.overlay.opaque)
// read with the same meaning.
import { execFileSync } from 'node:child_process'
import * as path from 'node:path'
import { describe, expect, it } from 'vitest'
import { upperSnapshot, type Fixture, type Tree } from '../helpers/fixture.js'
import { cli, fuseUnavailable, transportUnderTest } from '../helpers/mount.js'
import { useMount } from '../helpers/union.js'

/** Raw getdents order (ls -f: unsorted, all entries, '.' and '..' included). */
const RAW = 'ls -f'

describe.skipIf(fuseUnavailable())('readdir', () => {
  const mount = useMount()

  it('lists each name once, with . and .., from three branches', async () => {
    const m = await mount({
      A: { x: 'A', a: 'a', d: { one: '1' } },
      B: { x: 'B', b: 'b', d: { one: 'B1', two: '2' } },
      C: { x: 'C', c: 'c', d: { three: '3', two: 'C2' } },
    }, { spec: 'A=rw:B=ro:C=ro' })
    const raw = (await m.ok(`${RAW} mnt`)).split('\n').filter(Boolean)
    expect([...raw].sort()).toEqual(['.', '..', 'a', 'b', 'c', 'd', 'x'])
    const sub = (await m.ok(`${RAW} mnt/d`)).split('\n').filter(Boolean)
    expect([...sub].sort()).toEqual(['.', '..', 'one', 'three', 'two'])
    expect(await m.ok('cat mnt/x mnt/d/one mnt/d/two')).toBe('A12')
    expect(await m.errno("assert sorted(os.listdir('mnt/d')) == ['one', 'three', 'two']")).toBe('OK')
  })

  it('the top-most layer decides the type of a name', async () => {
    const m = await mount({
      A: {},
      B: { n: 'a file in B', m: { inB: 'x' } },
      C: { n: { inC: 'hidden' }, m: 'a file in C' },
    }, { spec: 'A=rw:B=ro:C=ro' })
    expect(await m.ok('stat -c %F mnt/n mnt/m')).toBe('regular file\ndirectory\n')
    expect(await m.ok('ls -A mnt/m')).toBe('inB\n')
    expect(await m.errno("os.listdir('mnt/n')")).toBe('ENOTDIR')
  })

  it('never lists whiteouts, opaque markers or the work area', async () => {
    const m = await mount({
      A: { '.wh.gone': '', d: { '.wh..wh..opq': '', kept: 'k' }, '.wh..wh.aufs.meta': { x: 'x' } },
      B: { gone: 'g', '.wh.lowgone': '', d: { hidden: 'h' }, shown: 's' },
      C: { lowgone: 'l' },
    }, { spec: 'A=rw:B=ro:C=ro' })
    await m.ok('rm mnt/shown') // a whiteout written by the mount itself
    expect(await m.ok('ls -A mnt && ls -A mnt/d')).toBe('d\nkept\n')
    expect(await m.ok('find mnt -name ".wh.*"')).toBe('')
    expect(await m.ok(`${RAW} mnt | grep -c '^\\.wh\\.' || true`)).toBe('0\n')
    expect(upperSnapshot(m.dir('A')).filter((l) => l.startsWith('.wh.'))).toContain('.wh.shown = ""')
  })

  it('sees overlayfs whiteouts (a 0/0 character device) in ro branches', async () => {
    const m = await mount({ A: {}, B: { keep: 'k' }, C: { x: 'x from C', d: { y: 'y' }, keep: 'kc' } }, {
      spec: 'A=rw:B=ro:C=ro',
      prepare: (fx: Fixture) => {
        execFileSync('mknod', [path.join(fx.dir('B'), 'x'), 'c', '0', '0'])
        execFileSync('mknod', [path.join(fx.dir('B'), 'd'), 'c', '0', '0'])
      },
    })
    expect(await m.ok('ls -A mnt')).toBe('keep\n')
    expect(await m.errnos(["os.stat('mnt/x')", "os.stat('mnt/d/y')"])).toEqual(['ENOENT', 'ENOENT'])
    // A name deleted that way can be created again through the mount, in the '.wh.' form.
    await m.ok('echo new > mnt/x && mkdir mnt/d')
    expect(await m.ok('cat mnt/x && ls -A mnt/d')).toBe('new\n')
    expect(upperSnapshot(m.dir('A'))).toEqual(['d/', 'x = "new\\n"'])
  })

  it('sees overlayfs opaque directories (trusted.overlay.opaque=y) in ro branches, and hides the xattr', async () => {
    const m = await mount({ A: {}, B: { d: { mine: 'B' } }, C: { d: { hidden: 'C', mine: 'C' } } }, {
      spec: 'A=rw:B=ro:C=ro',
      prepare: (fx: Fixture) => execFileSync('setfattr', ['-n', 'trusted.overlay.opaque', '-v', 'y', path.join(fx.dir('B'), 'd')]),
    })
    expect(await m.ok('ls -A mnt/d && cat mnt/d/mine')).toBe('mine\nB')
    expect(await m.errno("os.stat('mnt/d/hidden')")).toBe('ENOENT')
    expect(await m.ok('getfattr -m - -d mnt/d 2>&1 | grep -c overlay || true')).toBe('0\n')
    // The copy-up of the directory carries no overlay bookkeeping into the rw branch.
    await m.ok('touch mnt/d/new')
    expect(upperSnapshot(m.dir('A'))).toEqual(['d/', 'd/new = ""'])
    expect(await m.ok('ls -A mnt/d')).toBe('mine\nnew\n')
  })

  it('a large merged directory lists every name exactly once', async () => {
    const a: Tree = {}
    const b: Tree = {}
    for (let i = 0; i < 1500; i++) {
      if (i % 3 !== 0) a[`n${i}`] = 'A'
      if (i % 2 === 0) b[`n${i}`] = 'B'
    }
    const expected = Object.keys({ ...a, ...b }).length
    const m = await mount({ A: a, B: b })
    expect(await m.ok('ls -f mnt | grep -v "^\\.\\.\\?$" | wc -l')).toBe(`${expected}\n`)
    expect(await m.ok('ls -f mnt | sort | uniq -d')).toBe('')
    expect(await m.ok('cat mnt/n0 mnt/n1 mnt/n2 mnt/n4 mnt/n6')).toBe('BAAAB')
    expect(await m.errno("os.stat('mnt/n3')")).toBe('ENOENT')
  })

  it('listings follow changes made through the mount', async () => {
    const m = await mount({ A: { a: 'a' }, B: { b: 'b', d: { x: 'x' } } })
    expect(await m.ok('ls mnt')).toBe('a\nb\nd\n')
    await m.ok('touch mnt/c && rm mnt/b && mv mnt/a mnt/z && rm -r mnt/d')
    expect(await m.ok('ls mnt')).toBe('c\nz\n')
    await m.ok('mkdir mnt/d')
    expect(await m.ok('ls mnt && ls -A mnt/d')).toBe('c\nd\nz\n')
  })

  it.skipIf(transportUnderTest() !== 'native')('the kernel keeps a listing until the directory changes through the mount or the stack changes', async () => {
    const m = await mount({ A: { d: { a: 'a' } }, B: { d: { b: 'b', c: 'c' } }, C: { d: { n: 'new branch' } } })
    /** READDIR and READDIRPLUS requests the daemon has answered so far. */
    const reads = async (): Promise<number> => {
      const ops = JSON.parse((await cli(['status', 'mnt', '--json'], { cwd: m.root })).stdout).operations
      return (ops.readdir ?? 0) + (ops.readdirplus ?? 0)
    }
    const ls = (): Promise<string> => m.ok('ls mnt/d')
    expect(await ls()).toBe('a\nb\nc\n')
    let before = await reads()
    expect(await ls()).toBe('a\nb\nc\n')
    expect(await ls()).toBe('a\nb\nc\n')
    expect(await reads()).toBe(before) // served from the kernel's copy
    // Every kind of change through the mount drops it: the next listing is read again.
    for (const [change, want] of [
      ['touch mnt/d/new', 'a\nb\nc\nnew\n'], ['rm mnt/d/b', 'a\nc\nnew\n'], ['mv mnt/d/c mnt/d/c2', 'a\nc2\nnew\n'],
      ['mkdir mnt/d/sub', 'a\nc2\nnew\nsub\n'], ['rmdir mnt/d/sub', 'a\nc2\nnew\n'], ['mv mnt/d/a mnt/a2', 'c2\nnew\n'],
      ['ln -s x mnt/d/l', 'c2\nl\nnew\n'], ['ln mnt/d/new mnt/d/h', 'c2\nh\nl\nnew\n'],
    ] as const) {
      before = await reads()
      await m.ok(change)
      expect([change, await ls()]).toEqual([change, want])
      expect(await reads()).toBeGreaterThan(before)
    }
    // A stack change invalidates every node: the new bottom branch's name shows at once.
    const r = await cli(['branch', 'add', 'mnt', 'C'], { cwd: m.root })
    expect(r.code, r.stderr).toBe(0)
    expect(await ls()).toBe('c2\nh\nl\nn\nnew\n')
  })

  it('. and .. of a subdirectory are the directory and its parent', async () => {
    const m = await mount({ A: {}, B: { d: { sub: {} } } })
    expect(await m.ok('cd mnt/d/sub && stat -c %i . .. ../.. | tr "\\n" " "'))
      .toBe(await m.ok('stat -c %i mnt/d/sub mnt/d mnt | tr "\\n" " "'))
  })
})
