import { describe, expect, it } from 'vitest'
import { ancestorsAndSelf, baseName, isWithin, joinUnion, normalizeUnionPath, parentOf } from '../../lib/paths.js'

describe('union paths', () => {
  it('normalizes', () => {
    expect(normalizeUnionPath('/')).toBe('/')
    expect(normalizeUnionPath('//a///b/')).toBe('/a/b')
  })
  it.each([['a'], ['/a/../b'], ['/./a'], ['/a\0b']])('rejects %j with EINVAL', (p) => {
    expect(() => normalizeUnionPath(p)).toThrow(expect.objectContaining({ code: 'EINVAL' }))
  })
  it('gives ENAMETOOLONG for a 256-byte component, accepts 255', () => {
    expect(normalizeUnionPath('/' + 'x'.repeat(255))).toHaveLength(256)
    expect(() => normalizeUnionPath('/' + 'x'.repeat(256))).toThrow(expect.objectContaining({ code: 'ENAMETOOLONG' }))
    // bytes, not characters: 128 two-byte characters are 256 bytes
    expect(() => normalizeUnionPath('/' + 'é'.repeat(128))).toThrow(expect.objectContaining({ code: 'ENAMETOOLONG' }))
  })
  it('splits and joins', () => {
    expect(parentOf('/a/b')).toBe('/a')
    expect(parentOf('/a')).toBe('/')
    expect(baseName('/a/b')).toBe('b')
    expect(joinUnion('/', 'a')).toBe('/a')
    expect(joinUnion('/a', 'b')).toBe('/a/b')
    expect(ancestorsAndSelf('/a/b/c')).toEqual(['/a', '/a/b', '/a/b/c'])
    expect(ancestorsAndSelf('/')).toEqual([])
  })
  it('isWithin', () => {
    expect(isWithin('/a/b', '/a')).toBe(true)
    expect(isWithin('/a', '/a')).toBe(true)
    expect(isWithin('/ab', '/a')).toBe(false)
    expect(isWithin('/x', '/')).toBe(true)
  })
})
