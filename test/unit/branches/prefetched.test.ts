// What the read-ahead keeps of a read-only branch directory (lib/branches/prefetched.ts) and how
// the resolver and the merged listing use it (Resolver.adoptPrefetched, listMerged): each lstat
// handed out once, the names as the name index and the listing, nothing kept for the rw branch.
import * as fs from 'node:fs'
import { mknod } from '../../../lib/fs.js'
import { afterEach, describe, expect, it } from 'vitest'
import { PrefetchBudget, PrefetchedDir } from '../../../lib/branches/prefetched.js'
import { listMerged } from '../../../lib/branches/readdir.js'
import { Resolver } from '../../../lib/branches/resolve.js'
import { BranchStack } from '../../../lib/branches/stack.js'
import { makeFixture, type Fixture, type Tree } from '../../helpers/fixture.js'

let fx: Fixture | undefined
afterEach(() => {
  fx?.cleanup()
  fx = undefined
})

/** 13 doubles per entry, as the addon hands them: mode, nlink, uid, gid, rdev, size, …, ino, dev, times. */
function statsOf(entries: { mode: number; size?: number; ino?: number }[]): Float64Array {
  const a = new Float64Array(entries.length * 13)
  entries.forEach((e, i) => {
    a.set([e.mode, 1, 0, 0, 0, e.size ?? 0, 4096, 0, e.ino ?? 100 + i, 1, 1000, 2000, 3000], i * 13)
  })
  return a
}
const FILE = 0o100644
const DIR = 0o040755
const CHR = 0o020000

/** A resolver over branches named top first; the first is rw. */
function stackOf(trees: Tree[]): Resolver {
  fx = makeFixture(Object.fromEntries(trees.map((t, i) => [`b${i}`, t])))
  return new Resolver(new BranchStack(trees.map((_, i) => ({ path: fx!.dir(`b${i}`), mode: i === 0 ? 'rw' as const : 'ro' as const }))))
}

describe('PrefetchedDir', () => {
  it('keeps the names in readdir order as an index, and hands each lstat out once', () => {
    const d = new PrefetchedDir('b/a/c', statsOf([{ mode: FILE, size: 7 }, { mode: DIR }, { mode: -1 }]))
    expect(d.names).toEqual(['b', 'a', 'c'])
    expect(d.size).toBe(3)
    expect([d.has('a'), d.has('c'), d.has('z')]).toEqual([true, true, false])
    const b = d.take('b')!
    expect([b.size, b.isFile(), b.ino, b.mtimeMs]).toEqual([7, true, 100, 2000])
    expect(d.take('b')).toBeUndefined() // once: a later resolution looks again
    expect(d.take('a')!.isDirectory()).toBe(true)
    expect(d.take('c')).toBeUndefined() // its lstat failed on the worker
    expect(d.take('z')).toBeUndefined()
    expect(d.has('b')).toBe(true) // the index stays
  })
  it('knows its character devices (overlayfs whiteouts) even after the lstats went', () => {
    const d = new PrefetchedDir('w/f', statsOf([{ mode: CHR }, { mode: FILE }]))
    d.dropStats()
    expect([d.isCharDevAt(0), d.isCharDevAt(1)]).toEqual([true, false])
    expect(d.take('f')).toBeUndefined()
  })
  it('an empty directory, and an answer whose names and stats disagree', () => {
    expect(new PrefetchedDir('', new Float64Array(0)).names).toEqual([])
    expect(() => new PrefetchedDir('a/b', statsOf([{ mode: FILE }]))).toThrow(/disagree/)
  })
})

describe('PrefetchBudget', () => {
  it('gives back the oldest lstats beyond its limit, keeping their names', () => {
    const budget = new PrefetchBudget(4)
    const old = new PrefetchedDir('a/b/c', statsOf([{ mode: FILE }, { mode: FILE }, { mode: FILE }]))
    const young = new PrefetchedDir('x/y', statsOf([{ mode: FILE }, { mode: FILE }]))
    expect(budget.admit(old)).toBe(true)
    expect(budget.admit(young)).toBe(true)
    expect(budget.entries).toBe(2)
    expect(old.take('a')).toBeUndefined()
    expect(old.has('a')).toBe(true)
    expect(young.take('x')).toBeDefined()
    const huge = new PrefetchedDir('1/2/3/4/5', statsOf(Array.from({ length: 5 }, () => ({ mode: FILE }))))
    expect(budget.admit(huge)).toBe(false)
    expect(huge.take('1')).toBeUndefined()
    expect(budget.entries).toBe(2)
  })
})

describe('the resolver and the listing take what was read ahead', () => {
  it('resolves entries of an adopted read-only directory from its lstats, once, then from the disk', () => {
    const r = stackOf([{ d: {} }, { d: { f: 'four' } }])
    const [up, low] = r.resolve('/d')!.hits
    // Stats that differ from the disk's, to see which one a resolution used.
    const read = new PrefetchedDir('f', statsOf([{ mode: FILE, size: 99, ino: 4242 }]))
    expect(r.adoptPrefetched(up!, read)).toBe(false) // the rw branch changes: never kept
    expect(r.adoptPrefetched(low!, read)).toBe(true)
    expect(low!.names).toBe(read)
    expect(r.resolve('/d/f')!.hits[0]!.stats.size).toBe(99)
    r.cache.invalidate('/d/f')
    expect(r.resolve('/d/f')!.hits[0]!.stats.size).toBe(4) // looked up again
    expect(r.adoptPrefetched(low!, new PrefetchedDir('f', statsOf([{ mode: FILE }])))).toBe(false) // kept already
  })
  it('keeps the read of a directory a lookup has indexed, not of one a listing has read', () => {
    const r = stackOf([{}, { d: { f: 'four', g: 'x' } }, { e: { h: 'h' } }])
    const d = r.resolve('/d')!.hits[0]!
    r.resolve('/d/g') // a lookup: the directory's names are read (the name index)
    expect(d.names).toBeDefined()
    expect(r.adoptPrefetched(d, new PrefetchedDir('f/g', statsOf([{ mode: FILE, size: 77 }, { mode: FILE }])))).toBe(true)
    expect(r.resolve('/d/f')!.hits[0]!.stats.size).toBe(77)
    const e = r.resolve('/e')!
    listMerged(e, (hit, names) => r.seedNames(hit, names))
    expect(e.hits[0]!.listed).toBe(true)
    expect(r.adoptPrefetched(e.hits[0]!, new PrefetchedDir('h', statsOf([{ mode: FILE }])))).toBe(false)
  })
  it('a name the adopted index lacks is a miss without a system call; a whiteout in it hides the branches below', () => {
    const r = stackOf([{}, { d: { '.wh.g': '' } }, { d: { f: 'x', g: 'y' } }])
    const mid = r.resolve('/d')!.hits[0]!
    fs.writeFileSync(`${fx!.dir('b1')}/d/f`, 'appeared') // not in what was read: the index says no
    r.adoptPrefetched(mid, new PrefetchedDir('.wh.g', statsOf([{ mode: FILE }])))
    expect(r.resolve('/d/f')!.hits[0]!.branch.index).toBe(2)
    expect(r.resolve('/d/g')).toBeUndefined()
  })
  it('lists an adopted directory from its names (no readdir), applying the whiteouts of the branches above', () => {
    const r = stackOf([{ d: { '.wh.gone': '', mine: 'u' } }, { d: { old: 'x' } }])
    const dir = r.resolve('/d')!
    // What was read ahead; the disk has only `old` now: the listing shows what was read.
    r.adoptPrefetched(dir.hits[1]!, new PrefetchedDir('gone/old/.wh.x/new', statsOf([{ mode: FILE }, { mode: FILE }, { mode: FILE }, { mode: FILE }])))
    expect(listMerged(dir).sort()).toEqual(['mine', 'new', 'old'])
  })
  it('an overlayfs whiteout (a 0/0 character device) in an adopted directory hides the branches below', async () => {
    const r = stackOf([{ d: {} }, { d: {} }, { d: { ovl: 'low', keep: 'k' } }])
    await mknod(`${fx!.dir('b1')}/d/ovl`, CHR, 0)
    const dir = r.resolve('/d')!
    r.adoptPrefetched(dir.hits[1]!, new PrefetchedDir('ovl', statsOf([{ mode: CHR }])))
    expect(listMerged(dir).sort()).toEqual(['keep'])
  })
})
