// ShrinkSettle: a short READ of a file that just shrank is held until the shrinking task is seen
// again (or SETTLE_MS pass), so the reader compares against the new size, not the old one.
import * as fs from 'node:fs'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { Activity } from '../../lib/fuse/activity.js'
import { makeFuseOps } from '../../lib/fuse/adapter.js'
import { tryNativeFuse } from '../../lib/fuse/kernel/addon.js'
import { FATTR_MODE, FATTR_SIZE, Op } from '../../lib/fuse/kernel/protocol.js'
import { cstr, initIn, io, ScratchKernel, setattr, u32s } from '../../lib/fuse/kernel/scratch-kernel.js'
import { KernelSession } from '../../lib/fuse/kernel/session.js'
import { MAX_HOLD_MS, SETTLE_MS, ShrinkSettle } from '../../lib/fuse/shrink-settle.js'
import { UnionView } from '../../lib/union-view.js'
import { makeFixture, type Fixture } from '../helpers/fixture.js'

describe('ShrinkSettle', () => {
  beforeEach(() => vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] }))
  afterEach(() => vi.useRealTimers())

  it('holds a short READ of a shrunk node until the shrinking task sends its next request', () => {
    const s = new ShrinkSettle()
    const answered: string[] = []
    expect(s.hold(7, () => answered.push('before'))).toBe(false) // no shrink: answered at once
    s.shrunk(7, 100)
    expect(s.size).toBe(1)
    expect(s.hold(8, () => answered.push('other node'))).toBe(false)
    expect(s.hold(7, () => answered.push('a'))).toBe(true)
    expect(s.hold(7, () => answered.push('b'))).toBe(true)
    s.seen(200) // a reader's request: the window stays open
    expect(answered).toEqual([])
    s.seen(100) // the truncating task is back: it has set the new size
    expect(answered).toEqual(['a', 'b'])
    expect(s.size).toBe(0)
    expect(s.hold(7, () => answered.push('after'))).toBe(false)
  })

  it('answers held READs after SETTLE_MS when the task is not seen (it may wait on the held page)', () => {
    const s = new ShrinkSettle()
    const answered: number[] = []
    s.shrunk(7, 100)
    vi.advanceTimersByTime(SETTLE_MS / 2)
    expect(s.hold(7, () => answered.push(1))).toBe(true)
    vi.advanceTimersByTime(SETTLE_MS / 2 - 1)
    expect(answered).toEqual([])
    vi.advanceTimersByTime(1)
    expect(answered).toEqual([1])
    expect(s.size).toBe(0)
  })

  it('holds nothing once SETTLE_MS have passed since the shrink', () => {
    const s = new ShrinkSettle()
    s.shrunk(7, 100)
    vi.advanceTimersByTime(SETTLE_MS)
    expect(s.hold(7, () => undefined)).toBe(false)
    expect(s.size).toBe(0)
  })

  it('a second shrink of the node keeps what the first held until the second task is seen', () => {
    const s = new ShrinkSettle()
    const answered: number[] = []
    s.shrunk(7, 100)
    s.hold(7, () => answered.push(1))
    s.shrunk(7, 101) // the kernel's size is still the old one until task 101 has set it
    expect(answered).toEqual([])
    expect(s.hold(7, () => answered.push(2))).toBe(true)
    s.seen(100) // the first task's window is gone
    expect(answered).toEqual([])
    s.seen(101)
    expect(answered).toEqual([1, 2])
    s.shrunk(7, 102)
    s.hold(7, () => answered.push(3))
    s.shrunk(7, 103)
    vi.advanceTimersByTime(SETTLE_MS) // nobody seen: the timer still answers
    expect(answered).toEqual([1, 2, 3])
  })

  it('after another task\'s write, only the time closes the window (that write may still raise the size)', () => {
    const s = new ShrinkSettle()
    const answered: string[] = []
    s.wrote(7, 100)
    s.shrunk(7, 101)
    s.hold(7, () => answered.push('a'))
    s.seen(101)
    expect(answered).toEqual([])
    vi.advanceTimersByTime(SETTLE_MS)
    expect(answered).toEqual(['a'])
    // Its own earlier write does not count, nor a write older than SETTLE_MS.
    s.wrote(7, 101)
    s.shrunk(7, 101)
    s.hold(7, () => answered.push('b'))
    s.seen(101)
    expect(answered).toEqual(['a', 'b'])
    s.wrote(8, 100)
    vi.advanceTimersByTime(SETTLE_MS)
    s.shrunk(8, 101)
    s.hold(8, () => answered.push('c'))
    s.seen(101)
    expect(answered).toEqual(['a', 'b', 'c'])
  })

  it('shrinks that follow one another hold a READ MAX_HOLD_MS at most', () => {
    const s = new ShrinkSettle()
    const answered: number[] = []
    s.shrunk(7, 100)
    s.hold(7, () => answered.push(1))
    for (let t = 0; t < MAX_HOLD_MS - SETTLE_MS / 2; t += SETTLE_MS / 2) {
      vi.advanceTimersByTime(SETTLE_MS / 2)
      s.shrunk(7, 200 + t) // a new task truncates every half window
    }
    expect(answered).toEqual([])
    vi.advanceTimersByTime(SETTLE_MS / 2)
    expect(answered).toEqual([1])
  })

  it('forgets settled windows that never held a READ', () => {
    const s = new ShrinkSettle()
    for (let i = 0; i < 64; i++) s.shrunk(i, 1000 + i)
    vi.advanceTimersByTime(SETTLE_MS)
    s.shrunk(99, 5)
    expect(s.size).toBe(1)
  })
})

// The session's side, through its real dispatcher: a READ that comes back short after another
// task's truncating open is held until that task sends its next request, then answered first.
const addon = tryNativeFuse()

describe.skipIf(!addon)('KernelSession: short READs after a truncating open', () => {
  let fx: Fixture | undefined
  // The session's clock and timers are faked: a slow machine must not close a window early.
  beforeEach(() => vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] }))
  afterEach(() => {
    vi.useRealTimers()
    fx?.cleanup()
  })

  async function session(): Promise<ScratchKernel> {
    fx = makeFixture({ U: { f: 'x'.repeat(3000) } })
    const core = new UnionView(`${fx.dir('U')}=rw`).core
    const fd = fs.openSync(`${fx.root}/replies`, 'w+')
    const s = new KernelSession(core, new Activity(), addon!, fd, {
      entryTimeout: 60, attrTimeout: 60, negativeTimeout: 60, keepCache: true, passthrough: false, maxIo: 1 << 20,
    })
    const k = new ScratchKernel(s, fd)
    expect((await k.exchange(Op.INIT, 0, initIn(40))).error).toBe(0)
    return k
  }

  async function openFh(k: ScratchKernel, node: number, flags: number, pid: number): Promise<number> {
    const r = await k.exchange(Op.OPEN, node, u32s(flags, 0), pid)
    expect(r.error).toBe(0)
    return Number(r.body.readBigUInt64LE(0))
  }

  it('holds the READ until the truncating task is seen again; full READs and later READs are not held', async () => {
    const k = await session()
    const f = await k.lookup(1, 'f')
    const reader = await openFh(k, f, fs.constants.O_RDONLY, 200)
    expect((await k.exchange(Op.READ, f, io(reader, 0, 1024), 200)).body.length).toBe(1024) // full: never held
    await openFh(k, f, fs.constants.O_WRONLY | fs.constants.O_TRUNC, 100)
    // The file is empty now; a reader that still has the old size reads a page of it.
    const read = k.post(Op.READ, f, io(reader, 0, 4096), 200)
    expect(await k.nextReply(20)).toBeUndefined()
    expect((await k.exchange(Op.GETATTR, f, Buffer.alloc(16), 300)).error).toBe(0) // another task: still held
    k.post(Op.GETATTR, f, Buffer.alloc(16), 100) // the truncating task is back
    const held = await k.nextReply()
    expect(held).toMatchObject({ unique: read, error: 0 })
    expect(held!.body.length).toBe(0)
    expect((await k.nextReply())!.error).toBe(0) // the GETATTR's own reply
    expect((await k.exchange(Op.READ, f, io(reader, 0, 4096), 200)).body.length).toBe(0) // window closed
  })

  it('a CREATE with O_TRUNC of an existing file opens the same window', async () => {
    const k = await session()
    const f = await k.lookup(1, 'f')
    const reader = await openFh(k, f, fs.constants.O_RDONLY, 200)
    const create = Buffer.concat([u32s(fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC, 0o644, 0, 0), cstr('f')])
    expect((await k.exchange(Op.CREATE, 1, create, 100)).error).toBe(0)
    const read = k.post(Op.READ, f, io(reader, 0, 4096), 200)
    expect(await k.nextReply(20)).toBeUndefined()
    k.post(Op.GETATTR, f, Buffer.alloc(16), 100)
    expect(await k.nextReply()).toMatchObject({ unique: read, error: 0 })
  })

  it('a truncation by SETATTR opens the same window', async () => {
    const k = await session()
    const f = await k.lookup(1, 'f')
    const reader = await openFh(k, f, fs.constants.O_RDONLY, 200)
    expect((await k.exchange(Op.SETATTR, f, setattr(FATTR_SIZE, { size: 100 }), 100)).error).toBe(0)
    const read = k.post(Op.READ, f, io(reader, 0, 4096), 200)
    expect(await k.nextReply(20)).toBeUndefined()
    k.post(Op.GETATTR, f, Buffer.alloc(16), 100)
    const held = await k.nextReply()
    expect(held).toMatchObject({ unique: read, error: 0 })
    expect(held!.body.length).toBe(100)
  })

  it('after another task\'s chmod (its reply sets the size unchecked), only the time releases the READ', async () => {
    const k = await session()
    const f = await k.lookup(1, 'f')
    const reader = await openFh(k, f, fs.constants.O_RDONLY, 200)
    expect((await k.exchange(Op.SETATTR, f, setattr(FATTR_MODE, { mode: 0o600 }), 300)).error).toBe(0)
    await openFh(k, f, fs.constants.O_WRONLY | fs.constants.O_TRUNC, 100)
    const read = k.post(Op.READ, f, io(reader, 0, 4096), 200)
    expect((await k.exchange(Op.GETATTR, f, Buffer.alloc(16), 100)).error).toBe(0) // the truncater is back...
    expect(await k.nextReply(20)).toBeUndefined() // ...but the chmod's size may still be due
    vi.advanceTimersByTime(SETTLE_MS)
    expect(await k.nextReply()).toMatchObject({ unique: read, error: 0 })
  })

  it('answers a held READ after SETTLE_MS when the truncating task sends nothing', async () => {
    const k = await session()
    const f = await k.lookup(1, 'f')
    const reader = await openFh(k, f, fs.constants.O_RDONLY, 200)
    await openFh(k, f, fs.constants.O_WRONLY | fs.constants.O_TRUNC, 100)
    const read = k.post(Op.READ, f, io(reader, 0, 4096), 200)
    expect(await k.nextReply(20)).toBeUndefined()
    vi.advanceTimersByTime(SETTLE_MS)
    expect(await k.nextReply()).toMatchObject({ unique: read, error: 0 })
  })
})

// The fuse-native adapter's side: libfuse 2 names no task, so the truncating handle's next
// operation closes the window.
describe('fuse-native ops: short reads after a truncating open', () => {
  let fx: Fixture | undefined
  beforeEach(() => vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] }))
  afterEach(() => {
    vi.useRealTimers()
    fx?.cleanup()
  })

  function call<T>(fn: (cb: (code: number, v?: T) => void) => void): Promise<T> {
    return new Promise((resolve, reject) => fn((code, v) => (code === 0 ? resolve(v as T) : reject(new Error(`answered ${code}`)))))
  }
  const turns = async (n = 20): Promise<void> => {
    for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r))
  }

  it('holds a short read until the truncating handle writes; a full read is never held', async () => {
    fx = makeFixture({ U: { f: 'x'.repeat(3000) } })
    const ops = makeFuseOps(new UnionView(`${fx.dir('U')}=rw`).core)
    const reader = await call<number>((cb) => ops.open!('/f', fs.constants.O_RDONLY, cb))
    const buf = Buffer.alloc(4096)
    let got: number | undefined
    ops.read!('/f', reader, buf, 1024, 0, (n: number) => (got = n))
    await turns()
    expect(got).toBe(1024)
    const writer = await call<number>((cb) => ops.open!('/f', fs.constants.O_WRONLY | fs.constants.O_TRUNC, cb))
    got = undefined
    ops.read!('/f', reader, buf, 4096, 0, (n: number) => (got = n))
    await turns()
    expect(got).toBeUndefined() // the file is empty: a reader with the old size would copy zeros
    let wrote: number | undefined
    ops.write!('/f', writer, Buffer.from('new'), 3, 0, (n: number) => (wrote = n))
    expect(got).toBe(0) // released when the truncating handle was seen, before its write ran
    await turns()
    expect(wrote).toBe(3)
    await call((cb) => ops.release!('/f', writer, cb))
    await call((cb) => ops.release!('/f', reader, cb))
  })
})
