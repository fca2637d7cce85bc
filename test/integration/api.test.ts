// The npm API (issue 2 §4) from the built package: mount() through a daemon process and
// in-process, whose unmount() resolves when the mount is gone; UnionView gives the same
// semantics in-process as the mount gives to programs (same delta on disk, same merged view).
import * as fs from 'node:fs'
import * as path from 'node:path'
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { hashTree, makeFixture, upperSnapshot, type Fixture, type Tree } from '../helpers/fixture.js'
import { cleanupMount, cli, fuseUnavailable, isMounted, sh, transportUnderTest } from '../helpers/mount.js'

type Api = typeof import('../../dist/lib/index.js')
let api: Api

const TREES: Record<string, Tree> = {
  A: { a: 'a\n', x: 'xA\n' },
  B: { b: 'b\n', x: 'xB\n', l1: 'moved\n', c: 'c\n', e: 'e\n', d: { old: 'o\n', sub: { s: 's\n' } } },
}

describe.skipIf(fuseUnavailable())('API', () => {
  const fixtures: Fixture[] = []
  beforeAll(async () => {
    api = await import('../../dist/lib/index.js')
  })
  afterEach(async () => {
    for (const fx of fixtures.splice(0)) {
      await cleanupMount(fx.mnt)
      fx.cleanup()
    }
  })
  function fixture(trees: Record<string, Tree> = TREES): Fixture {
    const fx = makeFixture(trees)
    fixtures.push(fx)
    return fx
  }

  it('mount() serves from a daemon process; unmount() resolves once the mount and daemon are gone', async () => {
    const fx = fixture()
    const lower = hashTree(fx.dir('B'))
    const m = await api.mount(`${fx.dir('A')}:${fx.dir('B')}`, fx.mnt)
    expect(m.mountpoint).toBe(fx.mnt)
    expect(m.pid).not.toBe(process.pid)
    expect(isMounted(fx.mnt)).toBe(true)
    expect((await fs.promises.readdir(fx.mnt)).sort()).toEqual(['a', 'b', 'c', 'd', 'e', 'l1', 'x'])
    await fs.promises.writeFile(path.join(fx.mnt, 'b'), 'new\n')
    await fs.promises.rm(path.join(fx.mnt, 'x'))
    expect(await fs.promises.readFile(path.join(fx.mnt, 'b'), 'utf8')).toBe('new\n')
    await m.unmount()
    expect(isMounted(fx.mnt)).toBe(false)
    expect(() => process.kill(m.pid, 0)).toThrow(/ESRCH/)
    expect(upperSnapshot(fx.dir('A'))).toEqual(['.wh.x = ""', 'a = "a\\n"', 'b = "new\\n"'])
    expect(hashTree(fx.dir('B'))).toBe(lower)
  })

  it('mount() takes parsed branches and an upper; the handle is async-disposable', async () => {
    const fx = fixture()
    const upper = path.join(fx.root, 'U')
    const m = await api.mount([{ path: fx.dir('A'), mode: 'ro' }, { path: fx.dir('B'), mode: 'ro' }], fx.mnt, { upper })
    await fs.promises.appendFile(path.join(fx.mnt, 'a'), 'more\n')
    await m[Symbol.asyncDispose]()
    expect(isMounted(fx.mnt)).toBe(false)
    expect(upperSnapshot(upper)).toEqual(['a = "a\\nmore\\n"'])
    expect(fs.readFileSync(path.join(fx.dir('A'), 'a'), 'utf8')).toBe('a\n')
  })

  it.skipIf(transportUnderTest() !== 'native')('mount() passes the native transport\'s options to the daemon: passthrough off, busy polling bound or off', async () => {
    const fx = fixture()
    const status = async (): Promise<{ protocol: { passthrough: boolean; busyPoll: { maxMicros: number } } }> =>
      JSON.parse((await cli(['status', fx.mnt, '--json'])).stdout)
    let m = await api.mount(`${fx.dir('A')}:${fx.dir('B')}`, fx.mnt, { passthrough: false, busyPoll: 0 })
    expect((await status()).protocol).toMatchObject({ passthrough: false, busyPoll: { maxMicros: 0 } })
    await m.unmount()
    m = await api.mount(`${fx.dir('A')}:${fx.dir('B')}`, fx.mnt, { busyPoll: 200 })
    expect((await status()).protocol).toMatchObject({ passthrough: true, busyPoll: { maxMicros: 200 } })
    await m.unmount()
    await expect(api.mount(`${fx.dir('A')}:${fx.dir('B')}`, fx.mnt, { busyPoll: -1 })).rejects.toThrow(/busy poll '-1' is not a whole number of microseconds/)
    expect(isMounted(fx.mnt)).toBe(false)
  })

  it('mount() rejects a bad stack with a ConfigError and mounts nothing', async () => {
    const fx = fixture()
    const err = await api.mount(`${fx.dir('A')}:${fx.dir('A')}`, fx.mnt).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(api.ConfigError)
    expect((err as Error).message).toMatch(/given twice/)
    expect(isMounted(fx.mnt)).toBe(false)
    await expect(api.mount(`${fx.dir('A')}:${fx.dir('B')}`, path.join(fx.root, 'nope'))).rejects.toThrow(/does not exist/)
  })

  it('an in-process mount serves programs and unmounts', async () => {
    const fx = fixture()
    const m = await api.mount(`${fx.dir('A')}=rw:${fx.dir('B')}=ro`, fx.mnt, { inProcess: true })
    expect(m.pid).toBe(process.pid)
    // Only child programs and async fs touch it: this process serves the mount (style guide §4.4).
    expect((await sh('ls mnt && cat mnt/x && echo n > mnt/n', { cwd: fx.root })).stdout).toBe('a\nb\nc\nd\ne\nl1\nx\nxA\n')
    expect(await fs.promises.readFile(path.join(fx.mnt, 'n'), 'utf8')).toBe('n\n')
    await m.unmount()
    expect(isMounted(fx.mnt)).toBe(false)
    expect(upperSnapshot(fx.dir('A'))).toEqual(['a = "a\\n"', 'n = "n\\n"', 'x = "xA\\n"'])
  })

  it('parseBranches reads specs, modes and escaped colons', () => {
    expect(api.parseBranches('A=rw:B=ro:C')).toEqual([{ path: 'A', mode: 'rw' }, { path: 'B', mode: 'ro' }, { path: 'C' }])
    expect(api.parseBranches('a\\:b:c')).toEqual([{ path: 'a:b' }, { path: 'c' }])
    expect(() => api.parseBranches('A::B')).toThrow(api.ConfigError)
  })

  it('UnionView in-process leaves the same delta on disk and shows the same view as the mount', async () => {
    const viaView = fixture()
    const viaMount = fixture()
    const view = new api.UnionView(`${viaView.dir('A')}=rw:${viaView.dir('B')}=ro`)
    await view.writeFile('/b', 'new\n')
    await view.unlink('/x')
    await view.rename('/l1', '/l2')
    await view.rm('/d', { recursive: true })
    await view.mkdir('/d')
    await view.symlink('b', '/s')
    await view.chmod('/c', 0o600)
    await view.appendFile('/e', 'more\n')
    await view.mkdir('/n')
    await view.writeFile('/n/f', 'f\n')

    await api.mount(`${viaMount.dir('A')}=rw:${viaMount.dir('B')}=ro`, viaMount.mnt)
    const r = await sh([
      "printf 'new\\n' > mnt/b", 'rm mnt/x', 'mv mnt/l1 mnt/l2', 'rm -r mnt/d', 'mkdir mnt/d', 'ln -s b mnt/s',
      'chmod 600 mnt/c', "printf 'more\\n' >> mnt/e", 'mkdir mnt/n', "printf 'f\\n' > mnt/n/f",
    ].join(' && '), { cwd: viaMount.root })
    expect(r.stderr).toBe('')
    expect(upperSnapshot(viaView.dir('A'), { withMode: true })).toEqual(upperSnapshot(viaMount.dir('A'), { withMode: true }))
    expect(upperSnapshot(viaView.dir('A'))).toEqual([
      '.wh.l1 = ""', '.wh.x = ""', 'a = "a\\n"', 'b = "new\\n"', 'c = "c\\n"', 'd/', 'd/.wh..wh..opq = ""',
      'e = "e\\nmore\\n"', 'l2 = "moved\\n"', 'n/', 'n/f = "f\\n"', 's -> b',
    ])
    const names = (await view.readdir('/')).sort()
    expect(names.join('\n') + '\n').toBe((await sh('ls -A mnt', { cwd: viaMount.root })).stdout)
    for (const f of ['b', 'e', 'l2', 'n/f', 'a']) {
      expect(await view.readFile(f, 'utf8')).toBe(await fs.promises.readFile(path.join(viaMount.mnt, f), 'utf8'))
    }
    expect(await view.readlink('/s')).toBe(await fs.promises.readlink(path.join(viaMount.mnt, 's')))
    expect((await view.stat('/c')).mode & 0o7777).toBe(0o600)
  })

  it('UnionView reports errors with the errno codes of the mount', async () => {
    const fx = fixture()
    const view = new api.UnionView(`${fx.dir('A')}=rw:${fx.dir('B')}=ro`)
    const ro = new api.UnionView(`${fx.dir('A')}=ro:${fx.dir('B')}=ro`)
    const code = (p: Promise<unknown>) => p.then(() => 'OK', (e: { code?: string }) => e.code)
    expect(await code(view.readFile('/missing'))).toBe('ENOENT')
    expect(await code(view.writeFile('/.wh.x', 'x'))).toBe('EINVAL')
    expect(await code(view.readFile('/.wh.x'))).toBe('ENOENT')
    expect(await code(view.rmdir('/d'))).toBe('ENOTEMPTY')
    expect(await code(view.mkdir('/b'))).toBe('EEXIST')
    expect(await code(view.unlink('/d'))).toBe('EISDIR')
    expect(await code(ro.writeFile('/b', 'x'))).toBe('EROFS')
    expect(await code(ro.unlink('/b'))).toBe('EROFS')
    expect(await code(view.readFile('b', 'utf8'))).toBe('OK')
    expect(upperSnapshot(fx.dir('A'))).toEqual(['a = "a\\n"', 'x = "xA\\n"'])
  })
})
