// PathLocks (lib/copyup/locks.ts): one holder per path at a time, in call order; a free path is
// taken at once; a failing holder still lets the next one in; several paths never deadlock.
import { describe, expect, it } from 'vitest'
import { PathLocks } from '../../../lib/copyup/locks.js'

const tick = (): Promise<void> => new Promise((r) => setImmediate(r))

describe('PathLocks', () => {
  it('starts a holder of a free path at once, before run returns', async () => {
    const locks = new PathLocks()
    let started = false
    const done = locks.run('/a', () => { started = true; return 1 })
    expect(started).toBe(true)
    expect(locks.isHeld('/a')).toBe(true)
    expect(await done).toBe(1)
    expect(locks.isHeld('/a')).toBe(false)
    expect(locks.held).toBe(0)
  })

  it('runs holders of one path one after the other, in call order, and other paths alongside', async () => {
    const locks = new PathLocks()
    const log: string[] = []
    let openFirst!: () => void
    const first = locks.run('/a', async () => {
      log.push('first in')
      await new Promise<void>((r) => (openFirst = r))
      log.push('first out')
    })
    const second = locks.run('/a', () => { log.push('second') })
    const third = locks.run('/a', async () => { log.push('third') })
    const other = locks.run('/b', () => { log.push('other') })
    await tick()
    expect(log).toEqual(['first in', 'other']) // /a's next holders wait; /b does not
    expect(locks.isHeld('/a')).toBe(true)
    openFirst()
    await Promise.all([first, second, third, other])
    expect(log).toEqual(['first in', 'other', 'first out', 'second', 'third'])
    expect(locks.held).toBe(0)
  })

  it('lets the next holder in after one that throws, and passes the error to its caller', async () => {
    const locks = new PathLocks()
    const failing = locks.run('/a', async () => { await tick(); throw new Error('boom') })
    const next = locks.run('/a', () => 'next')
    await expect(failing).rejects.toThrow('boom')
    expect(await next).toBe('next')
    const syncThrow = locks.run('/a', () => { throw new Error('at once') })
    await expect(syncThrow).rejects.toThrow('at once')
    expect(locks.held).toBe(0)
  })

  it('takes several paths in one order: two callers naming them in opposite orders both finish', async () => {
    const locks = new PathLocks()
    const log: string[] = []
    const one = locks.runAll(['/b', '/a'], async () => { log.push('one'); await tick() })
    const two = locks.runAll(['/a', '/b', '/a'], async () => { log.push('two') })
    await Promise.all([one, two])
    expect(log).toEqual(['one', 'two'])
    expect(locks.held).toBe(0)
  })
})
