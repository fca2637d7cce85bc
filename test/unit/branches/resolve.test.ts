import * as fs from 'node:fs'
import { execFileSync } from 'node:child_process'
import { afterEach, describe, expect, it } from 'vitest'
import { listMerged } from '../../../lib/branches/readdir.js'
import { Resolver } from '../../../lib/branches/resolve.js'
import { BranchStack } from '../../../lib/branches/stack.js'
import { makeFixture, type Fixture, type Tree } from '../../helpers/fixture.js'

let fx: Fixture | undefined
afterEach(() => fx?.cleanup())

/** A resolver over branches named top first; the first is rw. */
function stackOf(trees: Tree[]): Resolver {
  const named = Object.fromEntries(trees.map((t, i) => [`b${i}`, t]))
  fx = makeFixture(named)
  const specs = trees.map((_, i) => ({ path: fx!.dir(`b${i}`), mode: i === 0 ? 'rw' as const : 'ro' as const }))
  return new Resolver(new BranchStack(specs))
}
const origin = (r: Resolver, p: string): number[] | undefined => r.resolve(p)?.hits.map((h) => h.branch.index)

describe('resolve (union-contract.md "Lookup")', () => {
  it('takes a non-directory from the top-most branch that has it', () => {
    const r = stackOf([{ x: 'top' }, { x: 'low', y: 'low' }])
    expect(origin(r, '/x')).toEqual([0])
    expect(origin(r, '/y')).toEqual([1])
    expect(origin(r, '/z')).toBeUndefined()
  })
  it('merges directories down to an opaque one', () => {
    const r = stackOf([{ d: {} }, { d: { '.wh..wh..opq': '' } }, { d: {} }])
    expect(origin(r, '/d')).toEqual([0, 1])
    expect(r.resolve('/d')!.opaque).toBe(true)
  })
  it('stops at a whiteout, which hides only lower branches', () => {
    const r = stackOf([{ '.wh.x': '' }, { x: 'low' }])
    expect(origin(r, '/x')).toBeUndefined()
    const same = stackOf([{ '.wh.x': '', x: 'mine' }, { x: 'low' }])
    expect(origin(same, '/x')).toEqual([0]) // OCI: never hides an entry of its own branch
  })
  it('a file above a directory hides the directory and everything under it', () => {
    const r = stackOf([{ d: 'file' }, { d: { inner: 'x' } }])
    expect(origin(r, '/d')).toEqual([0])
    expect(() => r.resolve('/d/inner')).toThrow(expect.objectContaining({ code: 'ENOTDIR' }))
  })
  it('a directory below a file is hidden', () => {
    const r = stackOf([{ d: {} }, { d: 'file' }, { d: { deep: 'x' } }])
    expect(origin(r, '/d')).toEqual([0])
    expect(origin(r, '/d/deep')).toBeUndefined()
  })
  it('whited-out dir hides its subtree of lower branches only', () => {
    const r = stackOf([{}, { '.wh.d': '' }, { d: { f: 'x' } }])
    expect(origin(r, '/d')).toBeUndefined()
    expect(origin(r, '/d/f')).toBeUndefined()
  })
  it('reserved names never resolve', () => {
    const r = stackOf([{ '.wh.x': '' }, { x: 'low' }])
    expect(origin(r, '/.wh.x')).toBeUndefined()
  })
  it('reads overlayfs-style lower whiteouts (0/0 char dev) and opaque xattrs', () => {
    const r = stackOf([{}, { d: { keep: 'k' } }, { d: { gone: 'g', lost: 'l' }, x: 'low' }])
    const mid = fx!.dir('b1')
    execFileSync('mknod', [mid + '/x', 'c', '0', '0'])
    execFileSync('setfattr', ['-n', 'trusted.overlay.opaque', '-v', 'y', mid + '/d'])
    expect(origin(r, '/x')).toBeUndefined()
    expect(origin(r, '/d')).toEqual([1])
    expect(listMerged(r.resolve('/')!).sort()).toEqual(['d'])
    expect(listMerged(r.resolve('/d')!)).toEqual(['keep'])
  })
  it('lowerSupplies tells whether deleting the rw entry needs a whiteout', () => {
    const r = stackOf([{ x: 'top', y: 'top', d: { '.wh..wh..opq': '', z: 'top' } }, { x: 'low', d: { z: 'low' } }])
    expect(r.lowerSupplies('/x')).toBe(true)
    expect(r.lowerSupplies('/y')).toBe(false)
    expect(r.lowerSupplies('/d/z')).toBe(false) // hidden below an opaque rw dir
  })
  it('derives each hit\'s host path from its branch and the union path', () => {
    const r = stackOf([{ d: { x: 'top' } }, { d: { y: 'low' } }])
    expect(r.resolve('/')!.hits.map((h) => h.host)).toEqual([fx!.dir('b0'), fx!.dir('b1')])
    expect(r.resolve('/d')!.hits.map((h) => h.host)).toEqual([fx!.dir('b0') + '/d', fx!.dir('b1') + '/d'])
    expect(r.resolve('/d/y')!.hits.map((h) => h.host)).toEqual([fx!.dir('b1') + '/d/y'])
  })
  it('keeps a read-only directory\'s names on its hit once read; a listing seeds them; invalidation drops them', () => {
    const r = stackOf([{ d: { x: 'top' } }, { d: { y: 'low', '.wh.z': '' } }, { d: { z: 'bottom' } }])
    const d = r.resolve('/d')!
    expect(d.hits.map((h) => h.names)).toEqual([undefined, undefined, undefined])
    expect(origin(r, '/d/y')).toEqual([1])
    expect(origin(r, '/d/z')).toBeUndefined() // the whiteout, found in the kept names
    expect(r.resolve('/d')).toBe(d)
    expect(d.hits[0]!.names).toBeUndefined() // the rw branch's directory is never indexed
    expect([...d.hits[1]!.names!].sort()).toEqual(['.wh.z', 'y'])
    // A name added to a ro directory underneath is not seen until the directory is resolved again.
    fs.writeFileSync(fx!.dir('b1') + '/d/new', 'n')
    expect(origin(r, '/d/new')).toBeUndefined()
    r.cache.invalidate('/d', { subtree: true })
    const again = r.resolve('/d')!
    expect(again.hits[1]!.names).toBeUndefined()
    expect(origin(r, '/d/new')).toEqual([1])
    // A merged listing reads the ro directories anyway: it leaves their names on the hits.
    r.cache.invalidate('/d', { subtree: true })
    const listed = r.resolve('/d')!
    expect(listMerged(listed, (hit, names) => r.seedNames(hit, names)).sort()).toEqual(['new', 'x', 'y'])
    expect([...listed.hits[2]!.names!]).toEqual(['z'])
    expect(listed.hits[0]!.names).toBeUndefined()
  })
  it('caches negative lookups until invalidated', () => {
    const r = stackOf([{}, {}])
    expect(r.resolve('/n')).toBeUndefined()
    fs.writeFileSync(fx!.dir('b0') + '/n', 'x')
    expect(r.resolve('/n')).toBeUndefined()
    r.cache.invalidate('/n')
    expect(origin(r, '/n')).toEqual([0])
  })
})

describe('listMerged (union-contract.md "Listing")', () => {
  it('lists each visible name once, hiding markers and whited-out names', () => {
    const r = stackOf([
      { a: 'top', '.wh.b': '', d: { '.wh..wh..opq': '' }, '.wh..wh.layerfs.work': {} },
      { a: 'low', b: 'low', c: 'low', d: { hidden: 'x' }, '.wh.c': '' },
      { c: 'bottom', e: 'bottom' },
    ])
    expect(listMerged(r.resolve('/')!).sort()).toEqual(['a', 'c', 'd', 'e'])
    expect(listMerged(r.resolve('/d')!)).toEqual([])
  })
})
