// Metadata read-ahead (lib/branches/read-ahead.ts, native/prefetch.c): the policy with a fake
// worker (order, bounds, once per directory, off switch), the addon's prefetchDirs on real
// directories, and the native session handing a listing's subdirectories to it.
import * as fs from 'node:fs'
import { afterEach, describe, expect, it } from 'vitest'
import { ENTRIES_PER_DIR, MAX_IN_FLIGHT, MAX_WAITING, ReadAhead, type PrefetchDirs, type ReadAheadDir } from '../../lib/branches/read-ahead.js'
import { tryNativeFuse } from '../../lib/fuse/kernel/addon.js'
import { Activity } from '../../lib/fuse/activity.js'
import { ScratchKernel, u32s, io, release } from '../../lib/fuse/kernel/scratch-kernel.js'
import { KernelSession } from '../../lib/fuse/kernel/session.js'
import { Op, u64 } from '../../lib/fuse/kernel/protocol.js'
import { UnionView } from '../../lib/union-view.js'
import { makeFixture, type Fixture } from '../helpers/fixture.js'

const addon = tryNativeFuse() as (ReturnType<typeof tryNativeFuse> & { prefetchDirs?: PrefetchDirs }) | undefined
let fx: Fixture | undefined
afterEach(() => {
  fx?.cleanup()
  fx = undefined
})

/** Branch directories to read ahead, by host path. */
const dirs = (lists: string[][]): ReadAheadDir[][] => lists.map((l) => l.map((host) => ({ host })))

/** A fake worker: records each job and finishes it when told. */
function fakeWorker(): { prefetch: PrefetchDirs; jobs: string[][]; finish: (i: number) => Promise<void> } {
  const jobs: string[][] = []
  const done: (() => void)[] = []
  const prefetch: PrefetchDirs = (dirs, max) => {
    expect(max).toBe(ENTRIES_PER_DIR)
    jobs.push(dirs)
    return new Promise((r) => done.push(() => r(dirs.length)))
  }
  return { prefetch, jobs, finish: async (i) => { done[i]!(); await new Promise((r) => setImmediate(r)) } }
}

describe('read-ahead policy', () => {
  it('reads the first listed subdirectory first, a few at once, each branch dir once', async () => {
    const w = fakeWorker()
    const ra = new ReadAhead(true, w.prefetch)
    ra.add(dirs([['/b/x', '/l/x'], ['/b/y'], ['/b/z'], ['/b/w'], ['/b/v']]))
    expect(w.jobs).toEqual([['/b/x', '/l/x'], ['/b/y'], ['/b/z']].slice(0, MAX_IN_FLIGHT))
    // A listing of x (depth first): its subdirectories go before y's siblings still waiting.
    ra.add(dirs([['/b/x/1'], ['/b/x/2']]))
    await w.finish(0)
    expect(w.jobs[MAX_IN_FLIGHT]).toEqual(['/b/x/1'])
    // Already read ahead: not again, in whole or in part.
    ra.add(dirs([['/b/y'], ['/b/x', '/m/x']]))
    for (let i = 1; i < w.jobs.length; i++) await w.finish(i) // finishing one starts the next
    const all = w.jobs.flat()
    expect(new Set(all).size).toBe(all.length)
    expect(all).toContain('/m/x')
    expect(all.sort()).toEqual(['/b/v', '/b/w', '/b/x', '/b/x/1', '/b/x/2', '/b/y', '/b/z', '/l/x', '/m/x'])
    expect(ra.pending).toBe(0)
    expect(ra.stats).toMatchObject({ dirs: 9, entries: 9, dropped: 0 })
  })

  it('drops the oldest waiting jobs beyond its bound, and does nothing when off', () => {
    const w = fakeWorker()
    const ra = new ReadAhead(true, w.prefetch)
    ra.add(dirs(Array.from({ length: MAX_WAITING + MAX_IN_FLIGHT + 10 }, (_, i) => [`/d${i}`])))
    expect(ra.pending).toBe(MAX_WAITING) // the least urgent (the last listed) dropped
    expect(ra.stats.dropped).toBe(MAX_IN_FLIGHT + 10)
    expect(w.jobs.map((j) => j[0])).toEqual(['/d0', '/d1', '/d2'].slice(0, MAX_IN_FLIGHT)) // the first listed still first
    const off = new ReadAhead(false, w.prefetch)
    off.add(dirs([['/e']]))
    expect(off.enabled).toBe(false)
    expect(off.pending).toBe(0)
  })
})

describe.skipIf(!addon?.prefetchDirs)('prefetchDirs (native)', () => {
  it('lstats the entries of each directory, at most maxEntries each, never through a symlink, changing nothing', async () => {
    fx = makeFixture({ a: { f1: '1', f2: '2', sub: { g: 'g' } }, b: { h: 'h' } })
    fs.symlinkSync(fx.dir('a'), `${fx.root}/link`)
    const before = fs.statSync(fx.dir('a')).mtimeMs
    expect(await addon!.prefetchDirs!([fx.dir('a'), fx.dir('b'), `${fx.root}/missing`], 100)).toBe(4)
    expect(await addon!.prefetchDirs!([fx.dir('a')], 2)).toBe(2)
    expect(await addon!.prefetchDirs!([`${fx.root}/link`], 100)).toBe(0) // O_NOFOLLOW
    expect(fs.statSync(fx.dir('a')).mtimeMs).toBe(before)
    expect(() => addon!.prefetchDirs!('nope' as unknown as string[], 1)).toThrow(/prefetchDirs/)
  })
})

describe.skipIf(!addon?.prefetchDirs)('prefetchDirs (native) keeping what it read', () => {
  it('hands back the names in readdir order and lstats of the directories asked, by index, or null', async () => {
    fx = makeFixture({ a: { f1: 'one', f2: 'two!', sub: { g: 'g' } }, b: { h: 'h' }, e: {} })
    const long = `${fx.root}/${'x'.repeat(5000)}`
    const r = await addon!.prefetchDirs!([fx.dir('a'), long, fx.dir('b'), `${fx.root}/missing`, fx.dir('e')], 100, [true, true, false, true, true])
    expect(typeof r).toBe('object')
    const { statted, dirs } = r as Exclude<typeof r, number>
    expect(statted).toBe(4)
    expect(dirs.length).toBe(5)
    expect([dirs[1], dirs[2], dirs[3]]).toEqual([null, null, null]) // too long, not asked, missing
    const [joined, stats] = dirs[0]!
    expect(joined.split('/')).toEqual(fs.readdirSync(fx.dir('a'))) // readdir order
    joined.split('/').forEach((name, i) => {
      const st = fs.lstatSync(`${fx!.dir('a')}/${name}`)
      expect([...stats.subarray(i * 13, i * 13 + 10)]).toEqual([st.mode, st.nlink, st.uid, st.gid, st.rdev, st.size, st.blksize, st.blocks, st.ino, st.dev])
      expect(stats[i * 13 + 11]).toBeCloseTo(st.mtimeMs, 3)
    })
    expect(dirs[4]).toEqual(['', new Float64Array(0)])
  })
  it('keeps nothing of a directory it could not read whole: more entries than it may lstat, a name that is not UTF-8', async () => {
    fx = makeFixture({ a: { f1: '1', f2: '2', f3: '3' }, n: { ok: '' } })
    fs.writeFileSync(Buffer.concat([Buffer.from(`${fx.dir('n')}/`), Buffer.from([0x66, 0xff, 0x66])]), 'bad name')
    const r = await addon!.prefetchDirs!([fx.dir('a'), fx.dir('n')], 2, [true, true]) as Exclude<Awaited<ReturnType<PrefetchDirs>>, number>
    expect(r.dirs).toEqual([null, null])
    expect(r.statted).toBe(4)
    expect(() => addon!.prefetchDirs!([fx!.dir('a')], 2, 'yes' as unknown as boolean[])).toThrow(/prefetchDirs/)
  })
})

describe('read-ahead policy: keeping', () => {
  it('hands what was read whole to the directory\'s adopt, asks to keep only those that can adopt, and counts them', async () => {
    const asked: boolean[][] = []
    const prefetch = ((dirs: string[], _max: number, keep?: boolean[]) => {
      asked.push(keep ?? [])
      return Promise.resolve({ statted: 2, dirs: [null, ['x/y', new Float64Array(26)], ['z', new Float64Array(13)]] })
    }) as PrefetchDirs
    const got: string[][] = []
    const ra = new ReadAhead(true, prefetch)
    ra.add([[{ host: '/u/d' }, { host: '/l/d', adopt: (d) => { got.push([...d.names]); return true } }, { host: '/m/d', adopt: () => false }]])
    await new Promise((r) => setImmediate(r))
    expect(asked).toEqual([[false, true, true]])
    expect(got).toEqual([['x', 'y']])
    expect(ra.stats).toMatchObject({ dirs: 3, entries: 2, kept: 1 })
  })
  it('asks nothing kept when no directory can adopt, or with LAYERFS_READ_AHEAD_KEEP=0', async () => {
    const calls: unknown[][] = []
    const prefetch = ((...args: unknown[]) => { calls.push(args); return Promise.resolve(1) }) as PrefetchDirs
    new ReadAhead(true, prefetch).add(dirs([['/a']]))
    process.env.LAYERFS_READ_AHEAD_KEEP = '0'
    try {
      new ReadAhead(true, prefetch).add([[{ host: '/b', adopt: () => true }]])
    } finally {
      delete process.env.LAYERFS_READ_AHEAD_KEEP
    }
    expect(calls).toEqual([[['/a'], ENTRIES_PER_DIR], [['/b'], ENTRIES_PER_DIR]])
  })
})

describe.skipIf(!addon?.prefetchDirs)('the native session reads a listing\'s subdirectories ahead', () => {
  it('hands every branch directory of each listed subdirectory to the worker', async () => {
    fx = makeFixture({ U: { d: { s1: { x: 'x' } } }, L: { d: { s1: { y: 'y' }, s2: { z: 'z' }, f: 'f' } } })
    const core = new UnionView(`${fx.dir('U')}=rw:${fx.dir('L')}=ro`).core
    const fd = fs.openSync(`${fx.root}/replies`, 'w+')
    try {
      const opts = { entryTimeout: 1, attrTimeout: 1, negativeTimeout: 1, keepCache: false, passthrough: false, maxIo: 1 << 20, pollMicros: 0 }
      const session = new KernelSession(core, new Activity(), addon!, fd, opts)
      const k = new ScratchKernel(session, fd)
      const d = await k.lookup(1, 'd')
      const dh = u64(await k.send(Op.OPENDIR, d, u32s(fs.constants.O_RDONLY, 0)), 0)
      await k.send(Op.READDIRPLUS, d, io(dh, 0, 65536))
      await k.send(Op.RELEASEDIR, d, release(dh))
      expect(session.readAhead.stats.dirs).toBe(3) // s1 in both branches, s2 in the lower one
      while (session.readAhead.pending > 0) await new Promise((r) => setTimeout(r, 5))
      expect(session.readAhead.stats.entries).toBe(3) // x, y, z
    } finally {
      fs.closeSync(fd)
    }
  })
})
