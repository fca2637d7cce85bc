// A regular file's copy-up in one addon call (native/copy_up.c) against the step-by-step Node
// path (LAYERFS_JS_COPYUP=1): both run on the same lower files here, and must leave the same
// rw branch (data, owner, mode, times, xattrs, the parents' times), nothing in the work area,
// and nothing half-copied on failure.
import { execFileSync } from 'node:child_process'
import * as crypto from 'node:crypto'
import * as fs from 'node:fs'
import * as path from 'node:path'
import * as xattr from '@napi-rs/xattr'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { nativeAddon } from '../../../lib/native.js'
import type { LayerFs } from '../../../lib/layerfs.js'
import { file, makeFixture, type Fixture, type Tree } from '../../helpers/fixture.js'

const built = !(nativeAddon() instanceof Error)
const root = process.getuid?.() === 0
const { O_WRONLY, O_TRUNC } = fs.constants

let fixtures: Fixture[] = []
const mounted: string[] = []
afterEach(() => {
  for (const m of mounted.splice(0)) execFileSync('umount', [m])
  for (const f of fixtures.splice(0)) f.cleanup()
  delete process.env.LAYERFS_JS_COPYUP
})

/** A fresh module graph whose lib/fs.ts reads LAYERFS_JS_COPYUP as set here. */
async function coreOn(spec: string, jsPath: boolean): Promise<LayerFs> {
  vi.resetModules()
  if (jsPath) process.env.LAYERFS_JS_COPYUP = '1'
  else delete process.env.LAYERFS_JS_COPYUP
  const { canCopyUpInOneCall } = await import('../../../lib/fs.js')
  expect(canCopyUpInOneCall).toBe(!jsPath)
  const { UnionView } = await import('../../../lib/union-view.js')
  return new UnionView(spec).core
}

const LOWER: Tree = {
  d: {
    plain: file('data', 0o644, 1_000_000),
    exec: file('#!/bin/sh\n', 0o755, 1_000_001),
    setuid: file('s', 0o4755, 1_000_002),
    private: file('p', 0o600, 1_000_003),
    empty: file('', 0o644, 1_000_004),
    trunc: file('will be cut', 0o640, 1_000_005),
    xattrs: file('x', 0o644, 1_000_006),
    now: 'times with nanoseconds',
    e: { deep: file('deep', 0o444, 1_000_007) },
  },
}
const FILES = ['/d/plain', '/d/exec', '/d/setuid', '/d/private', '/d/empty', '/d/trunc', '/d/xattrs', '/d/now', '/d/e/deep', '/d/big']

function makeLower(fx: Fixture): string {
  const low = fx.dir('L')
  fs.writeFileSync(`${low}/d/big`, crypto.createHash('sha512').update('seed').digest().toString('hex').repeat(4000)) // 512 KB: off the JS thread
  fs.utimesSync(`${low}/d/big`, 1_000_008, 1_000_008)
  xattr.setAttributeSync(`${low}/d/xattrs`, 'user.small', Buffer.from('v'))
  xattr.setAttributeSync(`${low}/d/xattrs`, 'user.large', Buffer.alloc(3000, 7))
  if (root) {
    xattr.setAttributeSync(`${low}/d/xattrs`, 'trusted.overlay.origin', Buffer.from('private')) // never travels up
    fs.chownSync(`${low}/d/private`, 1234, 5678)
    fs.chmodSync(`${low}/d/private`, 0o2750) // chown cleared it
  }
  fs.chmodSync(`${low}/d`, 0o750)
  xattr.setAttributeSync(`${low}/d/e`, 'user.dir', Buffer.from('on a directory'))
  if (root) fs.chownSync(`${low}/d/e`, 4321, 8765)
  fs.chmodSync(`${low}/d/e`, 0o2771)
  fs.utimesSync(`${low}/d`, 2_000_000, 2_000_000)
  fs.utimesSync(`${low}/d/e`, 2_000_001, 2_000_001)
  return low
}

/** What the rw branch holds for each path: attributes, a hash of the data, xattrs, ns times. */
function describeUpper(up: string, paths: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const p of [...paths, '/d', '/d/e']) {
    const st = fs.lstatSync(up + p, { bigint: true })
    const names = xattr.listAttributesSync(up + p).sort()
    out[p] = {
      mode: Number(st.mode & 0o7777n), uid: st.uid, gid: st.gid, size: st.size, atimeNs: st.atimeNs, mtimeNs: st.mtimeNs,
      data: st.isFile() ? crypto.createHash('sha256').update(fs.readFileSync(up + p)).digest('hex') : 'dir',
      xattrs: names.map((n) => `${n}=${crypto.createHash('sha256').update(xattr.getAttributeSync(up + p, n)!).digest('hex').slice(0, 8)}`),
    }
  }
  return out
}

async function copyUpAll(jsPath: boolean): Promise<{ up: string; low: string; lowNow: fs.BigIntStats }> {
  const fx = makeFixture({ U: {}, L: LOWER }, 'layerfs-onecall-')
  fixtures.push(fx)
  const low = makeLower(fx)
  const lowNow = fs.lstatSync(`${low}/d/now`, { bigint: true }) // before the copy reads it (atime)
  const core = await coreOn(`${fx.dir('U')}=rw:${low}=ro`, jsPath)
  for (const p of FILES) core.release(await core.open(p, p === '/d/trunc' ? O_WRONLY | O_TRUNC : O_WRONLY))
  expect(fs.readdirSync(`${fx.dir('U')}/.wh..wh.layerfs.work`)).toEqual([])
  return { up: fx.dir('U'), low, lowNow }
}

describe.skipIf(!built)('copy-up in one addon call', () => {
  it('leaves the rw branch exactly as the step-by-step path does', async () => {
    const native = await copyUpAll(false)
    const js = await copyUpAll(true)
    // The step-by-step path sets times through a double of milliseconds: a file with
    // nanoseconds gets them rounded there; the one call copies them exactly.
    const nativeView = describeUpper(native.up, FILES)
    const jsView = describeUpper(js.up, FILES)
    const { lowNow } = native
    expect((nativeView['/d/now'] as { mtimeNs: bigint }).mtimeNs).toBe(lowNow.mtimeNs)
    expect((nativeView['/d/now'] as { atimeNs: bigint }).atimeNs).toBe(lowNow.atimeNs)
    // Not the copy-up's doing: the lookups read the lower dirs (their atime moves, and is
    // copied with them), and the O_TRUNC open sets the truncated file's mtime.
    for (const v of [nativeView, jsView] as Record<string, Record<string, unknown>>[]) {
      delete v['/d/now']
      delete v['/d']!.atimeNs
      delete v['/d/e']!.atimeNs
      delete v['/d/trunc']!.mtimeNs
    }
    expect(nativeView).toEqual(jsView)

    // And what both must be, so that the same mistake in both does not pass.
    const up = native.up
    const st = (p: string): fs.Stats => fs.lstatSync(up + p)
    expect([st('/d/plain').mode & 0o7777, st('/d/plain').mtimeMs]).toEqual([0o644, 1_000_000_000])
    expect(st('/d/setuid').mode & 0o7777).toBe(0o4755)
    expect(st('/d/e/deep').mode & 0o7777).toBe(0o444)
    expect(fs.readFileSync(up + '/d/trunc', 'utf8')).toBe('')
    expect(fs.readFileSync(up + '/d/big')).toEqual(fs.readFileSync(native.low + '/d/big'))
    expect(fs.readFileSync(up + '/d/plain', 'utf8')).toBe('data')
    expect(xattr.listAttributesSync(up + '/d/xattrs').sort()).toEqual(['user.large', 'user.small'])
    expect(xattr.getAttributeSync(up + '/d/xattrs', 'user.large')).toEqual(Buffer.alloc(3000, 7))
    expect([st('/d').mode & 0o7777, st('/d').mtimeMs]).toEqual([0o750, 2_000_000_000]) // restored after linking the copies in
    expect(st('/d/e').mtimeMs).toBe(2_000_001_000)
    expect([st('/d/e').mode & 0o7777, xattr.getAttributeSync(up + '/d/e', 'user.dir')?.toString()]).toEqual([0o2771, 'on a directory'])
    if (root) expect([st('/d/e').uid, st('/d/e').gid]).toEqual([4321, 8765])
    if (root) expect([st('/d/private').uid, st('/d/private').gid, st('/d/private').mode & 0o7777]).toEqual([1234, 5678, 0o2750])
  })

  it.each([false, true])('rename of a lower file: the copy under the new name, a whiteout for the old one (step by step: %s)', async (jsPath) => {
    const fx = makeFixture({ U: { u: { f: 'upper only' } }, L: { d: { plain: file('data', 0o640, 1_000_000), e: {} } } }, 'layerfs-onecall-')
    fixtures.push(fx)
    fs.utimesSync(`${fx.dir('L')}/d`, 2_000_000, 2_000_000)
    fs.utimesSync(`${fx.dir('L')}/d/e`, 2_000_000, 2_000_000)
    const core = await coreOn(`${fx.dir('U')}=rw:${fx.dir('L')}=ro`, jsPath)
    const before = Date.now() - 1000
    await core.rename('/d/plain', '/d/e/moved')
    const up = fx.dir('U')
    expect(fs.readFileSync(`${up}/d/e/moved`, 'utf8')).toBe('data')
    expect([fs.lstatSync(`${up}/d/e/moved`).mode & 0o7777, fs.lstatSync(`${up}/d/e/moved`).mtimeMs]).toEqual([0o640, 1_000_000_000])
    expect(fs.readdirSync(`${up}/d`).sort()).toEqual(['.wh.plain', 'e'])
    expect(fs.readFileSync(`${fx.dir('L')}/d/plain`, 'utf8')).toBe('data')
    expect(fs.readdirSync(`${up}/.wh..wh.layerfs.work`)).toEqual([])
    // Both dirs changed: the whiteout and the move out of one, the move into the other.
    expect(fs.lstatSync(`${up}/d`).mtimeMs).toBeGreaterThan(before)
    expect(fs.lstatSync(`${up}/d/e`).mtimeMs).toBeGreaterThan(before)
    expect(core.tryGetattr('/d/plain')).toBeUndefined()
    expect(core.getattr('/d/e/moved').size).toBe(4)
    // An rw-only file moves without a whiteout: nothing below it to hide.
    await core.rename('/u/f', '/u/g')
    expect(fs.readdirSync(`${up}/u`)).toEqual(['g'])
  })

  it.each([false, true])('a source that vanished fails with ENOENT and leaves nothing behind (step by step: %s)', async (jsPath) => {
    const fx = makeFixture({ U: {}, L: { d: { f: 'x', g: 'y' } } }, 'layerfs-onecall-')
    fixtures.push(fx)
    const core = await coreOn(`${fx.dir('U')}=rw:${fx.dir('L')}=ro`, jsPath)
    core.getattr('/d/f') // resolved and cached while it exists
    fs.rmSync(`${fx.dir('L')}/d/f`)
    // Thrown at once or a rejection, as the copy-up ran at once or waited (open returns either).
    await expect((async () => core.open('/d/f', O_WRONLY))()).rejects.toMatchObject({ code: 'ENOENT' })
    expect(fs.readdirSync(`${fx.dir('U')}/d`)).toEqual([]) // the parent was copied up; no f, no temp
    expect(fs.readdirSync(`${fx.dir('U')}/.wh..wh.layerfs.work`)).toEqual([])
  })

  it.skipIf(!fs.existsSync('/dev/shm')).each([false, true])('copies data from a lower on another file system (tmpfs) (step by step: %s)', async (jsPath) => {
    const fx = makeFixture({ U: {} }, 'layerfs-onecall-')
    fixtures.push(fx)
    const low = fs.mkdtempSync('/dev/shm/layerfs-onecall-') // copy_file_range says EXDEV across these: read/write
    fixtures.push({ root: low, mnt: '', dir: () => low, cleanup: () => fs.rmSync(low, { recursive: true, force: true }) })
    const big = crypto.randomBytes(700_000)
    fs.writeFileSync(`${low}/big`, big)
    fs.writeFileSync(`${low}/small`, 'small')
    const core = await coreOn(`${fx.dir('U')}=rw:${low}=ro`, jsPath)
    for (const p of ['/big', '/small']) core.release(await core.open(p, O_WRONLY))
    expect(fs.readFileSync(`${fx.dir('U')}/big`)).toEqual(big)
    expect(fs.readFileSync(`${fx.dir('U')}/small`, 'utf8')).toBe('small')
  })

  it.skipIf(!root).each([false, true])('an rw branch that refuses xattrs keeps the copy without them (step by step: %s)', async (jsPath) => {
    const fx = makeFixture({ L: { f: file('data', 0o640, 1_000_000) } }, 'layerfs-onecall-')
    fixtures.push(fx)
    xattr.setAttributeSync(`${fx.dir('L')}/f`, 'user.k', Buffer.from('v'))
    const up = fx.dir('U')
    fs.mkdirSync(up)
    execFileSync('mount', ['-t', 'ramfs', 'none', up]) // ramfs has no user.* xattrs
    mounted.push(up)
    const core = await coreOn(`${up}=rw:${fx.dir('L')}=ro`, jsPath)
    core.release(await core.open('/f', O_WRONLY))
    expect(fs.readFileSync(`${up}/f`, 'utf8')).toBe('data')
    expect([fs.lstatSync(`${up}/f`).mode & 0o7777, fs.lstatSync(`${up}/f`).mtimeMs]).toEqual([0o640, 1_000_000_000])
    let value: Buffer | null | undefined
    try {
      value = xattr.getAttributeSync(`${up}/f`, 'user.k')
    } catch {
      value = undefined // ENOTSUP
    }
    expect(value ?? undefined).toBeUndefined()
  })
})

/** The open flags of descriptor `fd` of this process, from /proc (octal there). */
function fdFlags(fd: number): number {
  return parseInt(/^flags:\s*(\d+)$/m.exec(fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))![1]!, 8)
}

describe.skipIf(!built)('the common copy-up, at once (copyUpSingle)', () => {
  const { O_APPEND, O_RDWR, O_ACCMODE = 3 } = fs.constants as typeof fs.constants & { O_ACCMODE?: number }
  const big = 'b'.repeat(300 * 1024) // over SYNC_COPY_MAX_BYTES: copied off the JS thread

  async function stack(): Promise<{ core: LayerFs; up: string; low: string }> {
    const fx = makeFixture({ U: { d: {} }, L: { d: { f: 'data', g: 'gggg', h: 'hhhh', big, e: { f: 'deep' } } } }, 'layerfs-onecall-')
    fixtures.push(fx)
    fs.linkSync(`${fx.dir('L')}/d/h`, `${fx.dir('L')}/d/h2`)
    return { core: await coreOn(`${fx.dir('U')}=rw:${fx.dir('L')}=ro`, false), up: fx.dir('U'), low: fx.dir('L') }
  }

  it('answers an open for writing of a small lower file at once, on the copy\'s own descriptor', async () => {
    const { core, up, low } = await stack()
    const ino = core.getattr('/d/f').ino
    const fh = core.open('/d/f', O_WRONLY)
    expect(typeof fh).toBe('number') // no promise: nothing waited
    const fd = core.hostFd(fh as number)
    expect(fs.fstatSync(fd).ino).toBe(fs.lstatSync(`${up}/d/f`).ino) // the copy, in place
    expect(fdFlags(fd) & O_ACCMODE).toBe(O_RDWR) // the copy-up's own descriptor, not a second open
    expect(await core.write(fh as number, Buffer.from('DA'), 2, 0)).toBe(2)
    core.release(fh as number)
    expect(fs.readFileSync(`${up}/d/f`, 'utf8')).toBe('DAta')
    expect(fs.readFileSync(`${low}/d/f`, 'utf8')).toBe('data')
    expect(core.getattr('/d/f')).toMatchObject({ ino, size: 4 }) // its inode number kept, the cache told
    expect(fs.readdirSync(`${up}/.wh..wh.layerfs.work`)).toEqual([])
    // O_TRUNC: the copy is made empty, and is the handle.
    const t = core.open('/d/g', O_WRONLY | O_TRUNC)
    expect(typeof t).toBe('number')
    core.release(t as number)
    expect(fs.readFileSync(`${up}/d/g`, 'utf8')).toBe('')
  })

  it('opens the copy again for flags the copy-up\'s descriptor lacks (O_APPEND)', async () => {
    const { core, up } = await stack()
    const fh = core.open('/d/f', O_WRONLY | O_APPEND) as number
    expect(typeof fh).toBe('number')
    expect(fdFlags(core.hostFd(fh)) & O_APPEND).toBe(O_APPEND)
    await core.write(fh, Buffer.from('X'), 1, 0) // an O_APPEND descriptor appends wherever it is told to write
    core.release(fh)
    expect(fs.readFileSync(`${up}/d/f`, 'utf8')).toBe('dataX')
  })

  it('leaves a large file and a hard-linked one to a worker and copyUp; copies a parent not up yet at once', async () => {
    const { core, up, low } = await stack()
    for (const [p, data] of [['/d/big', big], ['/d/h', 'hhhh']] as const) {
      const fh = core.open(p, O_WRONLY)
      expect(fh).toBeInstanceOf(Promise)
      core.release(await fh)
      expect(fs.readFileSync(up + p, 'utf8')).toBe(data)
    }
    fs.chmodSync(`${low}/d/e`, 0o751)
    fs.utimesSync(`${low}/d/e`, 1_000_000, 1_000_100)
    core.resolver.cache.invalidate('/d/e')
    const upperD = fs.lstatSync(`${up}/d`)
    const fh = core.open('/d/e/f', O_WRONLY)
    expect(typeof fh).toBe('number') // its parent copied up too, without a promise
    core.release(fh as number)
    expect(fs.readFileSync(`${up}/d/e/f`, 'utf8')).toBe('deep')
    const e = fs.lstatSync(`${up}/d/e`)
    expect([e.mode & 0o7777, e.mtimeMs]).toEqual([0o751, 1_000_100_000]) // with the lower dir's mode and times
    // Its parent's times given back (to the microsecond: Node sets times as float seconds).
    expect(Math.abs(fs.lstatSync(`${up}/d`).mtimeMs - upperD.mtimeMs)).toBeLessThan(0.001)
    expect(core.copyUps).toMatchObject({ dirs: 1 })
    // The hard link's other name went up with it, as one inode.
    expect(fs.lstatSync(`${up}/d/h2`).ino).toBe(fs.lstatSync(`${up}/d/h`).ino)
    expect(fs.readFileSync(`${low}/d/big`, 'utf8')).toBe(big)
  })
})

describe.skipIf(!built)('a larger file copied at once when no request waits (copyUpSingle, ctx.idle)', () => {
  const MiB = 1024 * 1024
  const TMPFS_MAGIC = 0x01021994

  /** A lower dir of files of `size` bytes each (data the content can be checked against). */
  async function stack(names: string[], size: number): Promise<{ core: LayerFs; up: string; low: string; data: Map<string, Buffer> }> {
    const fx = makeFixture({ U: { d: {} }, L: { d: {} } }, 'layerfs-idlecopy-')
    fixtures.push(fx)
    const low = fx.dir('L')
    const data = new Map<string, Buffer>()
    for (const n of names) {
      const b = crypto.randomBytes(size)
      fs.mkdirSync(path.dirname(`${low}/d/${n}`), { recursive: true })
      fs.writeFileSync(`${low}/d/${n}`, b)
      data.set(n, b)
    }
    return { core: await coreOn(`${fx.dir('U')}=rw:${low}=ro`, false), up: fx.dir('U'), low, data }
  }

  /** Opens `p` for writing, writes 'W' at 0, closes; resolves with whether the open answered at once. */
  async function writeOne(core: LayerFs, p: string): Promise<boolean> {
    const fh = core.open(p, O_WRONLY)
    const atOnce = typeof fh === 'number'
    const h = await fh
    expect(await core.write(h, Buffer.from('W'), 1, 0)).toBe(1)
    core.release(h)
    return atOnce
  }

  function expectCopied(up: string, low: string, name: string, data: Buffer): void {
    const want = Buffer.from(data)
    want[0] = 0x57
    expect(fs.readFileSync(`${up}/d/${name}`).equals(want)).toBe(true)
    expect(fs.readFileSync(`${low}/d/${name}`).equals(data)).toBe(true)
  }

  it('copies a cached 1 MiB file on the JS thread only while no other request waits', async () => {
    const { core, up, low, data } = await stack(['a', 'b', 'c', 's/x', 't/y'], MiB)
    let waiting = false
    core.setIdleCheck(() => !waiting)
    expect(await writeOne(core, '/d/a')).toBe(true) // just written: in the page cache
    expect(core.copyUps).toEqual({ files: 1, filesOffThread: 0, dirs: 0, others: 0 })
    // Its parent not up yet: copied up at once too (no copy-up in its chain is under way).
    expect(await writeOne(core, '/d/s/x')).toBe(true)
    expect(core.copyUps).toEqual({ files: 2, filesOffThread: 0, dirs: 1, others: 0 })
    waiting = true
    expect(await writeOne(core, '/d/b')).toBe(false) // a request waits: the worker copies
    expect(await writeOne(core, '/d/t/y')).toBe(false)
    expect(core.copyUps).toEqual({ files: 4, filesOffThread: 2, dirs: 2, others: 0 })
    core.setIdleCheck(undefined)
    expect(await writeOne(core, '/d/c')).toBe(false) // no transport to ask: never assumed idle
    for (const n of ['a', 'b', 'c', 's/x', 't/y']) expectCopied(up, low, n, data.get(n)!)
    expect(core.copyUps).toEqual({ files: 5, filesOffThread: 3, dirs: 2, others: 0 })
    expect(fs.readdirSync(`${up}/.wh..wh.layerfs.work`)).toEqual([])
  })

  it('copies a single file on a worker without the locked walk: the copy\'s own descriptor is the handle, a second open waits for it', async () => {
    const { core, up, low, data } = await stack(['a'], MiB)
    core.setIdleCheck(() => false) // a request waits: on a worker
    const first = core.open('/d/a', O_WRONLY)
    const second = core.open('/d/a', O_WRONLY) // while the first copy is under way
    expect(first).toBeInstanceOf(Promise)
    expect(second).toBeInstanceOf(Promise)
    const [h1, h2] = await Promise.all([first, second])
    const { O_RDWR, O_ACCMODE = 3 } = fs.constants as typeof fs.constants & { O_ACCMODE?: number }
    expect(fdFlags(core.hostFd(h1)) & O_ACCMODE).toBe(O_RDWR) // the copy-up's descriptor, not a second open
    expect(fdFlags(core.hostFd(h2)) & O_ACCMODE).toBe(fs.constants.O_WRONLY) // opened after the copy
    expect(fs.fstatSync(core.hostFd(h1)).ino).toBe(fs.lstatSync(`${up}/d/a`).ino)
    expect(fs.fstatSync(core.hostFd(h2)).ino).toBe(fs.lstatSync(`${up}/d/a`).ino)
    expect(await core.write(h1, Buffer.from('W'), 1, 0)).toBe(1)
    core.release(h1)
    core.release(h2)
    expectCopied(up, low, 'a', data.get('a')!)
    expect(core.copyUps).toEqual({ files: 1, filesOffThread: 1, dirs: 0, others: 0 }) // copied once
    expect(fs.readdirSync(`${up}/.wh..wh.layerfs.work`)).toEqual([])
  })

  it('leaves a file over IDLE_COPY_MAX_BYTES to the worker, idle or not', async () => {
    const { IDLE_COPY_MAX_BYTES } = await import('../../../lib/fs.js')
    const { core, up, low, data } = await stack(['huge'], IDLE_COPY_MAX_BYTES + 4096)
    core.setIdleCheck(() => true)
    expect(await writeOne(core, '/d/huge')).toBe(false)
    expectCopied(up, low, 'huge', data.get('huge')!)
  })

  it('leaves a file whose data is not in the page cache to the worker, and starts nothing', async (ctx) => {
    const { core, up, low, data } = await stack(['cold', 'warm'], 2 * MiB)
    if (fs.statfsSync(low).type === TMPFS_MAGIC) ctx.skip() // tmpfs pages cannot leave the cache
    // Written back, then dropped from the page cache (GNU dd: posix_fadvise DONTNEED on the whole file).
    const fd = fs.openSync(`${low}/d/cold`, 'r')
    fs.fsyncSync(fd)
    fs.closeSync(fd)
    execFileSync('dd', [`if=${low}/d/cold`, 'iflag=nocache', 'count=0', 'status=none'])
    core.setIdleCheck(() => true)
    const work = `${up}/.wh..wh.layerfs.work`
    const fh = core.open('/d/cold', O_WRONLY)
    expect(fh).toBeInstanceOf(Promise)
    const h = await fh
    core.release(h)
    expect(fs.readFileSync(`${up}/d/cold`).equals(data.get('cold')!)).toBe(true)
    expect(await writeOne(core, '/d/warm')).toBe(true) // the same size, cached: at once
    expectCopied(up, low, 'warm', data.get('warm')!)
    expect(fs.readdirSync(work)).toEqual([])
  })

  it('with the request queue watched, copies a file whose data is on disk at once, in slices; a waiting request sends the rest to a worker', async (ctx) => {
    const { core, up, low, data } = await stack(['cold1', 'cold2', 'cold3', 'warm'], 4 * MiB)
    if (fs.statfsSync(low).type === TMPFS_MAGIC) ctx.skip()
    for (const n of ['cold1', 'cold2', 'cold3']) {
      const fd = fs.openSync(`${low}/d/${n}`, 'r')
      fs.fsyncSync(fd)
      fs.closeSync(fd)
      execFileSync('dd', [`if=${low}/d/${n}`, 'iflag=nocache', 'count=0', 'status=none'])
    }
    const work = `${up}/.wh..wh.layerfs.work`
    // A FIFO stands for /dev/fuse: readable while a request waits.
    const fifo = `${path.dirname(up)}/queue`
    execFileSync('mkfifo', [fifo])
    const queue = fs.openSync(fifo, fs.constants.O_RDWR | fs.constants.O_NONBLOCK)
    try {
      // No descriptor to watch: data on disk goes to the worker (the eviction worked).
      core.setIdleCheck(() => true)
      expect(await writeOne(core, '/d/cold1')).toBe(false)
      // Watched, nothing waiting: copied on the JS thread, the handle at once.
      core.setIdleCheck(() => true, queue)
      expect(await writeOne(core, '/d/cold2')).toBe(true)
      expect(core.copyUps).toEqual({ files: 2, filesOffThread: 1, dirs: 0, others: 0 })
      // A request waits (it came after the idle check): the first slice is copied here, the rest
      // on a worker; the open's answer waits for it.
      fs.writeSync(queue, 'r')
      const fh = core.open('/d/cold3', O_WRONLY)
      expect(fh).toBeInstanceOf(Promise)
      const begun = fs.readdirSync(work)
      expect(begun).toHaveLength(1)
      expect(fs.statSync(`${work}/${begun[0]}`).size).toBeGreaterThanOrEqual(512 * 1024) // one slice at least
      const h = await fh
      expect(await core.write(h, Buffer.from('W'), 1, 0)).toBe(1)
      core.release(h)
      expect(core.copyUps).toEqual({ files: 3, filesOffThread: 2, dirs: 0, others: 0 })
      // Cached data is copied whole at once, whatever waits (memory time, no look at the queue).
      expect(await writeOne(core, '/d/warm')).toBe(true)
      expect(core.copyUps).toEqual({ files: 4, filesOffThread: 2, dirs: 0, others: 0 })
    } finally {
      fs.closeSync(queue)
    }
    for (const n of ['cold1', 'cold2', 'cold3', 'warm']) expectCopied(up, low, n, data.get(n)!)
    expect(fs.readdirSync(work)).toEqual([])
  })
})
