// Branch modes and stack shapes through the CLI (union-contract.md "Branches"): explicit
// A=rw:B=ro, the aufs default, --upper over an all-ro stack, deep ro stacks, read-only mounts
// (EROFS for every write) and overlayfs-style -o lowerdir=,upperdir= options.
import * as fs from 'node:fs'
import * as path from 'node:path'
import { describe, expect, it } from 'vitest'
import { upperSnapshot } from '../helpers/fixture.js'
import { fuseUnavailable } from '../helpers/mount.js'
import { useMount, type Mounted } from '../helpers/union.js'

/** Every kind of write a program can do, as python3 statements on paths in the mount. */
const WRITES = [
  "os.open('mnt/f', os.O_WRONLY)",
  "os.open('mnt/f', os.O_RDONLY | os.O_TRUNC)",
  "os.open('mnt/new', os.O_CREAT | os.O_WRONLY, 0o644)",
  "os.mkdir('mnt/newdir')",
  "os.rmdir('mnt/d/empty')",
  "os.unlink('mnt/f')",
  "os.rename('mnt/f', 'mnt/g')",
  "os.rename('mnt/d', 'mnt/e')",
  "os.chmod('mnt/f', 0o600)",
  "os.chown('mnt/f', 1, 1)",
  "os.utime('mnt/f', (1, 1))",
  "os.truncate('mnt/f', 0)",
  "os.symlink('f', 'mnt/sl')",
  "os.link('mnt/f', 'mnt/hl')",
  "os.mkfifo('mnt/fifo')",
  "os.mknod('mnt/node', stat.S_IFREG | 0o644)",
  "os.setxattr('mnt/f', 'user.x', b'1')",
  "os.removexattr('mnt/f', 'user.k')",
]

async function expectReadOnly(m: Mounted): Promise<void> {
  expect(await m.errnos(WRITES)).toEqual(WRITES.map(() => 'EROFS'))
  expect(await m.errno("assert not os.access('mnt/f', os.W_OK) and os.access('mnt/f', os.R_OK)")).toBe('OK')
  // Reads still work.
  expect(await m.ok('cat mnt/f && ls mnt/d')).toBe('f\nempty\n')
  const opts = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').find((l) => l.split(' ')[4] === m.mnt)!.split(' ')[5]!
  expect(opts.split(',')).toContain('ro')
}

describe.skipIf(fuseUnavailable())('branch modes', () => {
  const mount = useMount()

  it('A=rw:B=ro: every write lands in A', async () => {
    const m = await mount({ A: {}, B: { f: 'f\n', d: {} } }, { spec: 'A=rw:B=ro' })
    await m.ok('echo n > mnt/new && echo more >> mnt/f && mkdir mnt/d/sub && ln -s f mnt/l')
    expect(upperSnapshot(m.dir('A'))).toEqual(['d/', 'd/sub/', 'f = "f\\nmore\\n"', 'l -> f', 'new = "n\\n"'])
    const type = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').find((l) => l.split(' ')[4] === m.mnt)!
    expect(type.split(' - ')[1]!.split(' ')[0]).toBe('fuse.layerfs')
  })

  it('without modes the first (writable) branch is rw and every other is ro', async () => {
    const m = await mount({ A: {}, B: { b: 'b' }, C: { c: 'c' } }, { spec: 'A:B:C' })
    await m.ok('echo x >> mnt/b && echo y >> mnt/c && rm mnt/c')
    expect(upperSnapshot(m.dir('A'))).toEqual(['.wh.c = ""', 'b = "bx\\n"'])
  })

  it('with some modes given, unmarked branches are ro', async () => {
    const m = await mount({ A: {}, B: { b: 'b' } }, { spec: 'A=rw:B', ro: ['B'] })
    await m.ok('echo x >> mnt/b')
    expect(upperSnapshot(m.dir('A'))).toEqual(['b = "bx\\n"'])
  })

  it('--upper DIR puts a fresh rw branch on top of an all-ro stack (created when missing)', async () => {
    const m = await mount({ A: { a: 'a', x: 'xA' }, B: { b: 'b', x: 'xB' } }, { spec: 'A:B', args: ['--upper', 'U/layer'], ro: ['A', 'B'] })
    expect(await m.ok('ls mnt && cat mnt/x')).toBe('a\nb\nx\nxA')
    await m.ok('echo new > mnt/n && echo more >> mnt/a && rm mnt/x && mkdir mnt/d')
    expect(upperSnapshot(path.join(m.root, 'U/layer'))).toEqual(['.wh.x = ""', 'a = "amore\\n"', 'd/', 'n = "new\\n"'])
  })

  it('a deep stack of ro branches: precedence, whiteouts and opaque dirs at every level', async () => {
    const m = await mount({
      A: {},
      B: { d: { b: 'b' } },
      C: { g: 'g from C', '.wh.h': '', d: { '.wh..wh..opq': '', c: 'c' }, e: 'file in C' },
      D: { h: 'h from D', d: { dd: 'hidden by C' }, g: 'g from D' },
      E: { f: 'f from E', g: 'g from E', h: 'h from E', e: { inE: 'hidden by C' } },
    }, { spec: 'A=rw:B=ro:C=ro:D=ro:E=ro' })
    expect(await m.ok('ls mnt && ls mnt/d')).toBe('d\ne\nf\ng\nb\nc\n')
    expect(await m.ok('cat mnt/f mnt/g mnt/e')).toBe('f from Eg from Cfile in C')
    expect(await m.errnos(["os.stat('mnt/h')", "os.stat('mnt/d/dd')", "os.stat('mnt/e/inE')"])).toEqual(['ENOENT', 'ENOENT', 'ENOTDIR'])
    await m.ok('echo + >> mnt/f && touch mnt/d/n')
    expect(upperSnapshot(m.dir('A'))).toEqual(['d/', 'd/n = ""', 'f = "f from E+\\n"'])
  })

  it('no rw branch: a read-only mount where every write fails with EROFS', async () => {
    const m = await mount({ A: { f: 'f\n', d: { empty: {} } }, B: { b: 'b' } }, { spec: 'A=ro:B=ro' })
    await expectReadOnly(m)
  })

  it('-o ro makes any stack read-only, even with a writable first branch', async () => {
    const m = await mount({ A: { f: 'f\n', d: { empty: {} } }, B: { b: 'b' } }, { spec: 'A:B', args: ['-o', 'ro'], ro: ['A', 'B'] })
    await expectReadOnly(m)
  })

  it('-o lowerdir=L2:L1,upperdir=U,workdir=W: overlayfs-style options, lowerdir top first', async () => {
    const m = await mount({ L1: { x: 'x1', one: '1' }, L2: { x: 'x2', two: '2' }, U: {}, W: {} }, {
      noSpec: true, args: ['-o', 'lowerdir=L2:L1,upperdir=U,workdir=W', 'none'], ro: ['L1', 'L2'],
    })
    expect(await m.ok('ls mnt && cat mnt/x')).toBe('one\ntwo\nx\nx2')
    await m.ok('echo u >> mnt/one && rm mnt/x')
    expect(upperSnapshot(m.dir('U'))).toEqual(['.wh.x = ""', 'one = "1u\\n"'])
    expect(await m.ok('ls mnt')).toBe('one\ntwo\n')
  })

  it('-o lowerdir= alone is a read-only mount', async () => {
    const m = await mount({ L1: { f: 'f\n', d: { empty: {} } }, L2: { two: '2' } }, {
      noSpec: true, args: ['-o', 'lowerdir=L2:L1', 'none'], ro: ['L1', 'L2'],
    })
    await expectReadOnly(m)
  })
})
