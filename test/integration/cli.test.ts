// The CLI (issue 2 §1 and §5): bad input gets one clear line on stderr, a non-zero exit, nothing
// mounted and nothing written; -f serves in the foreground until SIGTERM; the background daemon
// keeps serving after the CLI returns; `layerfs umount` of a busy mount says so.
import { spawn } from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { hashTree, makeFixture, type Fixture } from '../helpers/fixture.js'
import { cleanupMount, cli, fuseUnavailable, isMounted, mountCli, sh, spawnForeground } from '../helpers/mount.js'

const BAD: [string, string[], RegExp][] = [
  ['an empty branch in the spec', ['A::B', 'mnt'], /branch 2 is empty/],
  ['a mode that is not rw/ro', ['A=rx:B', 'mnt'], /mode 'rx'.*'rw' or 'ro'/],
  ['a mode without a directory', ['=rw:B', 'mnt'], /has no directory/],
  ['a missing branch', ['A:missing', 'mnt'], /branch 'missing' does not exist/],
  ['a branch that is a file', ['A:F', 'mnt'], /branch 'F' is not a directory/],
  ['the same branch twice', ['A:B:./A', 'mnt'], /is given twice/],
  ['nested branches', ['A:A/sub', 'mnt'], /overlapping branches/],
  ['a branch inside the mount point', ['A:full/inner', 'full'], /branch '.*full\/inner' is inside the mount point/],
  ['the mount point inside a branch', ['A:B', 'A/sub'], /mount point '.*A\/sub' is inside branch/],
  ['two rw branches', ['A=rw:B=rw', 'mnt'], /two rw branches/],
  ['a rw branch below the top', ['A=ro:B=rw', 'mnt'], /must be the top/],
  ['a non-empty mount point', ['A:B', 'full'], /not an empty directory/],
  ['a missing mount point', ['A:B', 'nowhere'], /mount point 'nowhere' does not exist/],
  ['a mount point that is a file', ['A:B', 'F'], /not a directory/],
  ['no branches at all', ['mnt'], /no branches given/],
  ['--upper over a stack that has a rw branch', ['--upper', 'U', 'A=rw:B=ro', 'mnt'], /rw too/],
  ['--upper with a bad mount point', ['--upper', 'U/new', 'A=ro:B=ro', 'full'], /not an empty directory/],
  ['an empty lowerdir=', ['-o', 'lowerdir=', 'none', 'mnt'], /lowerdir' needs a directory/],
  ['an unknown -o option', ['-o', 'bogus', 'A:B', 'mnt'], /unknown mount option 'bogus'/],
]

describe.skipIf(fuseUnavailable())('layerfs CLI', () => {
  let fx: Fixture
  afterEach(async () => {
    for (const m of ['mnt', 'full', 'A/sub']) await cleanupMount(path.join(fx.root, m))
    fx.cleanup()
  })

  function fixture(): Fixture {
    fx = makeFixture({ A: { a: 'a\n', sub: {} }, B: { b: 'b\n' }, full: { inner: { x: 'x' } } })
    fs.writeFileSync(fx.dir('F'), 'a file')
    return fx
  }

  it.each(BAD)('refuses %s: one line on stderr, exit != 0, nothing mounted or written', async (_what, args, message) => {
    fixture()
    const before = hashTree(fx.root)
    const r = await cli(['mount', ...args], { cwd: fx.root })
    expect(r.code).not.toBe(0)
    expect(r.stderr).toMatch(message)
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1)
    expect(r.stderr).toMatch(/^layerfs: /)
    for (const m of ['mnt', 'full', 'A/sub', 'nowhere']) expect(isMounted(path.join(fx.root, m))).toBe(false)
    expect(hashTree(fx.root)).toBe(before)
  })

  it('refuses a mount point that is already mounted on', async () => {
    fixture()
    await mountCli(['A:B', './mnt'], { cwd: fx.root })
    const r = await cli(['mount', 'A:B', './mnt'], { cwd: fx.root })
    expect(r.code).not.toBe(0)
    expect(r.stderr.trimEnd().split('\n')).toEqual([expect.stringMatching(/^layerfs: mount point '.*' is already mounted on$/)])
    expect((await sh('cat mnt/a', { cwd: fx.root })).stdout).toBe('a\n')
  })

  it('-f serves in the foreground until SIGTERM, then unmounts and exits 0', async () => {
    fixture()
    const child = spawnForeground([`${fx.dir('A')}:${fx.dir('B')}`, fx.mnt])
    let stderr = ''
    child.stderr.on('data', (d) => (stderr += d))
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)))
    for (let i = 0; i < 200 && !isMounted(fx.mnt); i++) await new Promise((r) => setTimeout(r, 50))
    expect(isMounted(fx.mnt)).toBe(true)
    expect(child.exitCode).toBe(null)
    expect((await sh('cat mnt/a mnt/b && echo c > mnt/c', { cwd: fx.root })).stdout).toBe('a\nb\n')
    child.kill('SIGTERM')
    expect(await exited).toBe(0)
    expect(isMounted(fx.mnt)).toBe(false)
    expect(stderr).toBe('')
    expect(fs.readFileSync(path.join(fx.dir('A'), 'c'), 'utf8')).toBe('c\n')
  })

  it('-f also ends cleanly with `layerfs umount`', async () => {
    fixture()
    const child = spawnForeground([`${fx.dir('A')}:${fx.dir('B')}`, fx.mnt])
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)))
    for (let i = 0; i < 200 && !isMounted(fx.mnt); i++) await new Promise((r) => setTimeout(r, 50))
    expect((await cli(['umount', fx.mnt])).code).toBe(0)
    expect(await exited).toBe(0)
    expect(isMounted(fx.mnt)).toBe(false)
  })

  it('in the background the daemon keeps serving after the CLI returned, until umount', async () => {
    fixture()
    const r = await cli(['mount', 'A:B', './mnt'], { cwd: fx.root })
    expect(r).toMatchObject({ code: 0, stderr: '' })
    const { readRecord, isAlive } = await import('../../dist/lib/daemon/registry.js')
    const pid = readRecord(fx.mnt)!.pid
    expect(isAlive(pid)).toBe(true)
    for (let i = 0; i < 3; i++) {
      expect((await sh(`echo ${i} >> mnt/log && cat mnt/b`, { cwd: fx.root })).stdout).toBe('b\n')
    }
    expect(fs.readFileSync(path.join(fx.dir('A'), 'log'), 'utf8')).toBe('0\n1\n2\n')
    const um = await cli(['umount', './mnt'], { cwd: fx.root })
    expect(um).toMatchObject({ code: 0, stderr: '' })
    expect(isMounted(fx.mnt)).toBe(false)
    expect(isAlive(pid)).toBe(false) // umount returns once the daemon is gone
  })

  it('`layerfs umount` of a busy mount says it is busy and leaves it mounted', async () => {
    fixture()
    await mountCli(['A:B', './mnt'], { cwd: fx.root })
    const busy = spawn('sleep', ['120'], { cwd: fx.mnt, stdio: 'ignore' })
    try {
      const r = await cli(['umount', './mnt'], { cwd: fx.root })
      expect(r.code).not.toBe(0)
      expect(r.stderr.trimEnd().split('\n')).toEqual([expect.stringMatching(/^layerfs: .* is busy/)])
      expect(isMounted(fx.mnt)).toBe(true)
      expect((await sh('cat mnt/a', { cwd: fx.root })).stdout).toBe('a\n')
    } finally {
      busy.kill('SIGKILL')
      await new Promise((r) => (busy.exitCode !== null || busy.signalCode !== null ? r(null) : busy.once('exit', r)))
    }
    expect((await cli(['umount', './mnt'], { cwd: fx.root })).code).toBe(0)
    expect(isMounted(fx.mnt)).toBe(false)
  })

  it('`layerfs umount` of something not mounted fails with one line', async () => {
    fixture()
    const r = await cli(['umount', './mnt'], { cwd: fx.root })
    expect(r.code).not.toBe(0)
    expect(r.stderr.trimEnd().split('\n')).toEqual([expect.stringMatching(/^layerfs: '.*mnt' is not mounted$/)])
  })
})
