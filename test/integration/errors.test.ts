// Errors through a real mount (union-contract.md "Errors and safety", "Lookup"): reserved '.wh.'
// names, ENAMETOOLONG, and the errno of every failing call as on a plain file system; a failed
// call writes nothing, and the daemon keeps serving.
import * as fs from 'node:fs'
import { describe, expect, it } from 'vitest'
import { upperSnapshot } from '../helpers/fixture.js'
import { fuseUnavailable, isMounted } from '../helpers/mount.js'
import { useMount, type Mounted } from '../helpers/union.js'

/** Runs `cases` (python statement → expected errno), and expects the rw branch unchanged. */
async function expectErrnos(m: Mounted, cases: Record<string, string>): Promise<void> {
  const before = upperSnapshot(m.dir('A'), { withMode: true })
  const got = await m.errnos(Object.keys(cases))
  expect(Object.fromEntries(Object.keys(cases).map((k, i) => [k, got[i]]))).toEqual(cases)
  expect(upperSnapshot(m.dir('A'), { withMode: true })).toEqual(before)
}

const LONG = 'n'.repeat(256)

describe.skipIf(fuseUnavailable())('errors', () => {
  const mount = useMount()

  it('.wh. names are reserved: EINVAL to create or rename to, ENOENT to look up', async () => {
    const m = await mount({ A: { '.wh.gone': '', d: { '.wh..wh..opq': '' } }, B: { f: 'f', gone: 'g', '.wh.x': '', d: {} } })
    await expectErrnos(m, {
      "os.open('mnt/.wh.new', os.O_CREAT | os.O_WRONLY, 0o644)": 'EINVAL',
      "os.mkdir('mnt/.wh.dir')": 'EINVAL',
      "os.mkdir('mnt/d/.wh..wh..opq')": 'EINVAL',
      "os.symlink('f', 'mnt/.wh.sl')": 'EINVAL',
      "os.link('mnt/f', 'mnt/.wh.hl')": 'EINVAL',
      "os.mkfifo('mnt/.wh.fifo')": 'EINVAL',
      "os.rename('mnt/f', 'mnt/.wh.f')": 'EINVAL',
      "os.rename('mnt/f', 'mnt/d/.wh.x')": 'EINVAL',
      "os.stat('mnt/.wh.gone')": 'ENOENT',
      "os.stat('mnt/.wh.x')": 'ENOENT',
      "os.stat('mnt/d/.wh..wh..opq')": 'ENOENT',
      "os.stat('mnt/.wh..wh.layerfs.work')": 'ENOENT',
      "os.rename('mnt/.wh.gone', 'mnt/back')": 'ENOENT',
      "os.unlink('mnt/.wh.gone')": 'ENOENT',
      "open('mnt/.wh.x').read()": 'ENOENT',
    })
    expect(await m.ok('ls -A mnt')).toBe('d\nf\n')
  })

  it('a 256-byte name gives ENAMETOOLONG, a 255-byte one works', async () => {
    const m = await mount({ A: {}, B: { f: 'f', d: {} } })
    await expectErrnos(m, {
      [`os.stat('mnt/${LONG}')`]: 'ENAMETOOLONG',
      [`os.stat('mnt/d/${LONG}/x')`]: 'ENAMETOOLONG',
      [`os.open('mnt/${LONG}', os.O_CREAT | os.O_WRONLY)`]: 'ENAMETOOLONG',
      [`os.mkdir('mnt/d/${LONG}')`]: 'ENAMETOOLONG',
      [`os.rename('mnt/f', 'mnt/${LONG}')`]: 'ENAMETOOLONG',
      [`os.symlink('f', 'mnt/${LONG}')`]: 'ENAMETOOLONG',
    })
    const ok = 'n'.repeat(255)
    await m.ok(`echo x > mnt/${ok} && mv mnt/f mnt/d/${ok}`)
    expect(await m.ok(`cat mnt/${ok} mnt/d/${ok}`)).toBe('x\nf')
    expect(upperSnapshot(m.dir('A'))).toEqual(['.wh.f = ""', 'd/', `d/${ok} = "f"`, `${ok} = "x\\n"`])
  })

  it('ENOTEMPTY: rmdir or rename over a directory that still shows entries', async () => {
    const m = await mount({ A: { mine: { x: 'x' } }, B: { d: { f: 'f' }, e: { g: 'g' }, mixed: { low: 'l' } } })
    await m.ok('rm mnt/e/g') // e now looks empty though B still has g: rmdir succeeds later
    await expectErrnos(m, {
      "os.rmdir('mnt/d')": 'ENOTEMPTY',
      "os.rmdir('mnt/mine')": 'ENOTEMPTY',
      "os.rename('mnt/mine', 'mnt/d')": 'ENOTEMPTY',
      "os.rename('mnt/e', 'mnt/d')": 'ENOTEMPTY',
    })
    expect(await m.errno("os.rmdir('mnt/e')")).toBe('OK')
    expect(await m.ok('ls mnt')).toBe('d\nmine\nmixed\n')
  })

  it('ENOTDIR and EISDIR as on a plain file system', async () => {
    const m = await mount({ A: {}, B: { f: 'f', d: { x: 'x' }, e: {} } })
    await expectErrnos(m, {
      "os.stat('mnt/f/x')": 'ENOTDIR',
      "os.mkdir('mnt/f/sub')": 'ENOTDIR',
      "os.open('mnt/f/new', os.O_CREAT | os.O_WRONLY)": 'ENOTDIR',
      "os.rmdir('mnt/f')": 'ENOTDIR',
      "os.listdir('mnt/f')": 'ENOTDIR',
      "os.rename('mnt/e', 'mnt/f')": 'ENOTDIR',
      "os.unlink('mnt/d')": 'EISDIR',
      "os.rename('mnt/f', 'mnt/e')": 'EISDIR',
      "os.open('mnt/d', os.O_WRONLY)": 'EISDIR',
      "os.open('mnt/d', os.O_RDWR)": 'EISDIR',
    })
  })

  it('EEXIST for every creating call on a name that exists in any branch', async () => {
    const m = await mount({ A: { up: 'u' }, B: { f: 'f', d: {} } })
    await expectErrnos(m, {
      "os.mkdir('mnt/d')": 'EEXIST',
      "os.mkdir('mnt/f')": 'EEXIST',
      "os.mkdir('mnt/up')": 'EEXIST',
      "os.open('mnt/f', os.O_CREAT | os.O_EXCL | os.O_WRONLY)": 'EEXIST',
      "os.symlink('x', 'mnt/f')": 'EEXIST',
      "os.link('mnt/up', 'mnt/f')": 'EEXIST',
      "os.mkfifo('mnt/d')": 'EEXIST',
    })
  })

  it('ENOENT and EINVAL for missing names and impossible renames', async () => {
    const m = await mount({ A: {}, B: { d: { sub: {} }, f: 'f' } })
    await expectErrnos(m, {
      "os.stat('mnt/missing')": 'ENOENT',
      "os.open('mnt/missing/x', os.O_CREAT | os.O_WRONLY)": 'ENOENT',
      "os.unlink('mnt/missing')": 'ENOENT',
      "os.rmdir('mnt/missing')": 'ENOENT',
      "os.rename('mnt/missing', 'mnt/x')": 'ENOENT',
      "os.rename('mnt/f', 'mnt/missing/x')": 'ENOENT',
      "os.readlink('mnt/f')": 'EINVAL',
      "os.rename('mnt/d', 'mnt/d/sub/inside')": 'EINVAL',
      "os.getxattr('mnt/f', 'user.none')": 'ENODATA',
      "os.setxattr('mnt/f', 'user.none', b'v', os.XATTR_REPLACE)": 'ENODATA',
    })
  })

  it('a failed call never breaks the daemon: it still serves afterwards', async () => {
    const m = await mount({ A: {}, B: { f: 'f\n' } })
    for (let i = 0; i < 3; i++) {
      await m.errnos(["os.rmdir('mnt/f')", `os.stat('mnt/${LONG}')`, "os.mkdir('mnt/.wh.x')", "os.unlink('mnt/nope')"])
    }
    expect(await m.ok('cat mnt/f')).toBe('f\n')
    expect(isMounted(m.mnt)).toBe(true)
  })

  it('a branch that disappears while mounted gives ENOENT or EIO, and the daemon survives', async () => {
    const m = await mount({ A: { a: 'a\n' }, B: { sub: { x: 'x' } }, C: { c: 'c' } }, { spec: 'A=rw:B=ro:C=ro' })
    m.forgetRo()
    fs.rmSync(m.dir('B'), { recursive: true })
    const r = await m.errnos(["os.listdir('mnt/sub')", "os.stat('mnt/sub/x')"])
    for (const code of r) expect(['ENOENT', 'EIO']).toContain(code)
    // Not an empty listing: getdents' ENOENT would read as end-of-directory.
    expect(await m.errno("os.listdir('mnt')")).toBe('EIO')
    // The stack is broken from then on (EIO), but the daemon answers and unmounts cleanly.
    const cat = await m.sh('cat mnt/a')
    expect(cat.code === 0 ? cat.stdout : cat.stderr).toMatch(/^a\n$|Input\/output error/)
    expect(isMounted(m.mnt)).toBe(true)
    await m.unmount()
  })

  it('a branch directory removed outside the mount drops out of the listing (--coherent: the kernel keeps no listing)', async () => {
    const m = await mount({ A: { d: { a: 'a' } }, B: { d: { b: 'b' } } }, { args: ['--coherent'] })
    expect(await m.ok('ls mnt/d')).toBe('a\nb\n')
    m.forgetRo()
    fs.rmSync(`${m.dir('B')}/d`, { recursive: true })
    expect(await m.ok('ls mnt/d')).toBe('a\n')
  })
})
