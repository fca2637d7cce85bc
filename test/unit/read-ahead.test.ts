// Metadata read-ahead (lib/branches/read-ahead.ts, native/prefetch.c): the policy with a fake
// worker (order, bounds, once per directory, off switch), the addon's prefetchDirs on real
// directories, and the native session handing a listing's subdirectories to it.
import * as fs from 'node:fs'
import { afterEach, describe, expect, it } from 'vitest'
import { ENTRIES_PER_DIR, MAX_IN_FLIGHT, MAX_WAITING, ReadAhead, type PrefetchDirs } from '../../lib/branches/read-ahead.js'
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
    ra.add([['/b/x', '/l/x'], ['/b/y'], ['/b/z'], ['/b/w'], ['/b/v']])
    expect(w.jobs).toEqual([['/b/x', '/l/x'], ['/b/y'], ['/b/z']].slice(0, MAX_IN_FLIGHT))
    // A listing of x (depth first): its subdirectories go before y's siblings still waiting.
    ra.add([['/b/x/1'], ['/b/x/2']])
    await w.finish(0)
    expect(w.jobs[MAX_IN_FLIGHT]).toEqual(['/b/x/1'])
    // Already read ahead: not again, in whole or in part.
    ra.add([['/b/y'], ['/b/x', '/m/x']])
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
    ra.add(Array.from({ length: MAX_WAITING + MAX_IN_FLIGHT + 10 }, (_, i) => [`/d${i}`]))
    expect(ra.pending).toBe(MAX_WAITING) // the least urgent (the last listed) dropped
    expect(ra.stats.dropped).toBe(MAX_IN_FLIGHT + 10)
    expect(w.jobs.map((j) => j[0])).toEqual(['/d0', '/d1', '/d2'].slice(0, MAX_IN_FLIGHT)) // the first listed still first
    const off = new ReadAhead(false, w.prefetch)
    off.add([['/e']])
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
