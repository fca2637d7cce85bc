import { afterEach, describe, expect, it } from 'vitest'
import { explain } from '../../../lib/branches/explain.js'
import { BranchStack } from '../../../lib/branches/stack.js'
import { makeFixture, type Fixture, type Tree } from '../../helpers/fixture.js'

let fx: Fixture | undefined
afterEach(() => fx?.cleanup())

function stackOf(trees: Tree[]): BranchStack {
  fx = makeFixture(Object.fromEntries(trees.map((t, i) => [`b${i}`, t])))
  return new BranchStack(trees.map((_, i) => ({ path: fx!.dir(`b${i}`), mode: i === 0 ? 'rw' as const : 'ro' as const })))
}
const summary = (s: BranchStack, p: string): string[] =>
  explain(s, p).entries.map((e) => `${e.index}:${e.type}:${e.hiddenBy ? `${e.hiddenBy.kind}@${e.hiddenBy.index}${e.hiddenBy.at}` : 'visible'}`)

describe('explain (which --why)', () => {
  it('a file shadows the same name below it', () => {
    const s = stackOf([{}, { f: '1' }, { f: '2' }])
    expect(summary(s, '/f')).toEqual(['1:file:visible', '2:file:shadowed@1/f'])
    expect(explain(s, '/f').visible).toBe(true)
  })
  it('a whiteout hides the name below its branch, never in its own', () => {
    const s = stackOf([{ '.wh.f': '' }, { f: '1', '.wh.g': '', g: 'own' }, { g: 'low' }])
    expect(summary(s, '/f')).toEqual(['1:file:whiteout@0/f'])
    expect(explain(s, '/f').visible).toBe(false)
    expect(summary(s, '/g')).toEqual(['1:file:visible', '2:file:shadowed@1/g'])
  })
  it('an opaque directory or a whited-out ancestor hides the whole subtree below', () => {
    const s = stackOf([{ d: { '.wh..wh..opq': '' } }, { d: { x: '1' }, e: { y: '1' } }, { '.wh.e': '' }])
    expect(summary(s, '/d/x')).toEqual(['1:file:opaque@0/d'])
    const t = stackOf([{ '.wh.e': '' }, { e: { y: '1' } }])
    expect(summary(t, '/e/y')).toEqual(['1:file:whiteout@0/e'])
  })
  it('a file where a directory is needed hides the subtree of lower branches', () => {
    const s = stackOf([{}, { d: 'file' }, { d: { x: '1' } }])
    expect(summary(s, '/d/x')).toEqual(['2:file:file@1/d'])
  })
  it('merged directories are visible in every merged branch', () => {
    const s = stackOf([{ d: {} }, { d: {} }, { d: { '.wh..wh..opq': '' } }, { d: {} }])
    expect(summary(s, '/d')).toEqual(['0:dir:visible', '1:dir:visible', '2:dir:visible', '3:dir:opaque@2/d'])
  })
})

describe('BranchStack.replace', () => {
  it('keeps unchanged branches (same object) and renumbers the others', () => {
    const s = stackOf([{}, {}, {}])
    const [a, b, c] = s.all()
    s.replace([{ path: a!.root, mode: 'rw' }, { path: c!.root, mode: 'ro' }, { path: b!.root, mode: 'ro' }])
    expect(s.at(0)).toBe(a)
    expect(s.at(1).root).toBe(c!.root)
    expect(s.at(1).index).toBe(1)
    expect(s.at(2).index).toBe(2)
    s.replace(s.specs(), { fresh: true })
    expect(s.at(0)).not.toBe(a)
  })
})
