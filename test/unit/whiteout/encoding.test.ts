import { describe, expect, it } from 'vitest'
import {
  isCharDevWhiteout, isReservedName, OPAQUE_MARKER, whitedOutName, whiteoutNameFor,
} from '../../../lib/whiteout/encoding.js'

describe('whiteout encoding', () => {
  it.each([
    ['.wh.x', 'x'], ['.wh.a.b', 'a.b'], ['.wh..hidden', '.hidden'],
    [OPAQUE_MARKER, undefined], ['.wh..wh.layerfs.work', undefined], ['.wh.', undefined],
    ['.wh..', undefined], ['.wh...', undefined], ['x', undefined], ['wh.x', undefined],
  ])('whitedOutName(%j) = %j', (entry, name) => {
    expect(whitedOutName(entry)).toBe(name)
  })

  it('round-trips names', () => {
    for (const n of ['a', 'with space', 'ünï', '.dot']) expect(whitedOutName(whiteoutNameFor(n))).toBe(n)
  })

  it('reserves the .wh. prefix only', () => {
    expect(isReservedName('.wh.x')).toBe(true)
    expect(isReservedName('.wh.')).toBe(true)
    expect(isReservedName('.whx')).toBe(false)
    expect(isReservedName('x.wh.')).toBe(false)
  })

  it('recognizes overlayfs 0/0 character device whiteouts only', () => {
    expect(isCharDevWhiteout({ isCharacterDevice: () => true, rdev: 0 })).toBe(true)
    expect(isCharDevWhiteout({ isCharacterDevice: () => true, rdev: 259 })).toBe(false)
    expect(isCharDevWhiteout({ isCharacterDevice: () => false, rdev: 0 })).toBe(false)
  })
})
