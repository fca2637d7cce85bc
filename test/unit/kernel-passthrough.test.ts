// Passthrough's per-node I/O modes (lib/fuse/kernel/passthrough.ts) against a stand-in for the
// addon's backing ioctls: the answers must be ones the kernel accepts (fs/fuse/iomode.c).
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { Activity } from '../../lib/fuse/activity.js'
import { tryNativeFuse, type NativeFuse } from '../../lib/fuse/kernel/addon.js'
import { NodeTable } from '../../lib/fuse/kernel/nodes.js'
import { Passthrough } from '../../lib/fuse/kernel/passthrough.js'
import { FATTR_MODE, FOPEN_PASSTHROUGH, Init, Op } from '../../lib/fuse/kernel/protocol.js'
import { cstr, initIn, release, ScratchKernel, u32s } from '../../lib/fuse/kernel/scratch-kernel.js'
import { KernelSession } from '../../lib/fuse/kernel/session.js'
import { UnionView } from '../../lib/union-view.js'
import { makeFixture, type Fixture } from '../helpers/fixture.js'

let dir: string
const fds: number[] = []
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'layerfs-pt-'))
  fs.writeFileSync(`${dir}/lower`, 'l')
  fs.writeFileSync(`${dir}/copy`, 'c')
})
afterEach(() => {
  for (const fd of fds.splice(0)) fs.closeSync(fd)
  fs.rmSync(dir, { recursive: true, force: true })
})

function open(name: string): number {
  const fd = fs.openSync(`${dir}/${name}`, 'r')
  fds.push(fd)
  return fd
}

/** The backing ioctls, recorded: ids handed out, ids closed; `refuse` makes BACKING_OPEN fail. */
function fakeAddon(refuse = false): { addon: NativeFuse; opened: number[]; closed: number[] } {
  const opened: number[] = []
  const closed: number[] = []
  const addon = {
    backingOpen: (_dev: number, _fd: number) => {
      if (refuse) throw Object.assign(new Error('EPERM: not permitted'), { code: 'EPERM' })
      opened.push(opened.length + 1)
      return opened.length
    },
    backingClose: (_dev: number, id: number) => { closed.push(id) },
  } as unknown as NativeFuse
  return { addon, opened, closed }
}

describe('Passthrough', () => {
  it('readers of one lower file share one backing, closed with the last of them', () => {
    const { addon, opened, closed } = fakeAddon()
    const pt = new Passthrough(addon, 99)
    const n = new NodeTable(1).found(new NodeTable(1).root, 'f', 10, false)
    expect(pt.open(n, 1, open('lower'), false)).toEqual({ kind: 'passthrough', backingId: 1 })
    expect(pt.open(n, 2, open('lower'), false)).toEqual({ kind: 'passthrough', backingId: 1 })
    expect(pt.keepsBranchFile(n)).toBe(true)
    pt.release(1)
    expect(closed).toEqual([])
    pt.release(2)
    expect(closed).toEqual([1])
    expect(opened).toEqual([1])
    expect(pt.size).toBe(0)
    expect(pt.keepsBranchFile(n)).toBe(false)
  })

  it('a writer, a reader of a rw-branch file, or a reader of another file is stale while readers pass through', () => {
    const pt = new Passthrough(fakeAddon().addon, 99)
    const n = new NodeTable(1).found(new NodeTable(1).root, 'f', 10, false)
    pt.open(n, 1, open('lower'), false)
    expect(pt.open(n, 2, open('copy'), true)).toEqual({ kind: 'stale' })
    expect(pt.open(n, 3, open('copy'), false)).toEqual({ kind: 'stale' }) // another file: the copy
    expect(pt.open(n, 4, open('lower'), true)).toEqual({ kind: 'stale' })
    pt.release(2) // stale handles were never counted
    pt.release(3)
    expect(pt.size).toBe(1)
    pt.release(1)
    expect(pt.size).toBe(0)
  })

  it('after a writer (page cache), readers use the page cache too, until every handle closed', () => {
    const { addon, opened } = fakeAddon()
    const pt = new Passthrough(addon, 99)
    const n = new NodeTable(1).found(new NodeTable(1).root, 'f', 10, false)
    expect(pt.open(n, 1, open('copy'), true)).toEqual({ kind: 'cached' })
    expect(pt.open(n, 2, open('lower'), false)).toEqual({ kind: 'cached' })
    expect(pt.keepsBranchFile(n)).toBe(false)
    pt.release(1)
    expect(pt.open(n, 3, open('lower'), false)).toEqual({ kind: 'cached' }) // handle 2 is still open
    pt.release(2)
    pt.release(3)
    expect(pt.open(n, 4, open('lower'), false)).toEqual({ kind: 'passthrough', backingId: 1 })
    expect(opened).toEqual([1])
  })

  it('a refused BACKING_OPEN (not root, old kernel, stacked branch) serves every later open through the page cache', () => {
    const pt = new Passthrough(fakeAddon(true).addon, 99)
    const t = new NodeTable(1)
    const a = t.found(t.root, 'a', 10, false)
    const b = t.found(t.root, 'b', 11, false)
    expect(pt.open(a, 1, open('lower'), false)).toEqual({ kind: 'cached' })
    expect(pt.open(b, 2, open('copy'), false)).toEqual({ kind: 'cached' })
    pt.release(1)
    pt.release(2)
    expect(pt.size).toBe(0)
  })

  it('without passthrough, readers of a branch file still keep their node to themselves: a writer or the copy is stale', () => {
    const { addon, opened } = fakeAddon()
    const pt = new Passthrough(addon, 99, false)
    const n = new NodeTable(1).found(new NodeTable(1).root, 'f', 10, false)
    expect(pt.open(n, 1, open('lower'), false)).toEqual({ kind: 'cached' })
    expect(pt.open(n, 2, open('lower'), false)).toEqual({ kind: 'cached' }) // the same file: shared
    expect(pt.keepsBranchFile(n)).toBe(true)
    expect(pt.open(n, 3, open('lower'), true)).toEqual({ kind: 'stale' }) // a writer
    expect(pt.open(n, 4, open('copy'), false)).toEqual({ kind: 'stale' }) // the copy, after a chmod
    pt.release(1)
    pt.release(2)
    expect(pt.size).toBe(0)
    expect(pt.open(n, 5, open('copy'), true)).toEqual({ kind: 'cached' }) // a writer first: page cache
    expect(pt.keepsBranchFile(n)).toBe(false)
    expect(opened).toEqual([]) // never a backing file
  })
})

// The session's side, through its real dispatcher (a ScratchKernel writes requests, reads the
// replies): an open that cannot share a passed-through inode retires the node and answers
// ESTALE, and the retired node answers by its old name only while it leads to the same file.
const realAddon = tryNativeFuse()
const ESTALE = -os.constants.errno.ESTALE

describe.skipIf(!realAddon)('KernelSession with passthrough', () => {
  let fx: Fixture | undefined
  afterEach(() => fx?.cleanup())

  async function session(): Promise<{ k: ScratchKernel; backings: number[]; up: string }> {
    fx = makeFixture({ U: {}, L: { d: { f: 'lower' } } })
    const core = new UnionView(`${fx.dir('U')}=rw:${fx.dir('L')}=ro`).core
    const backings: number[] = []
    // The addon's functions are neither enumerable nor writable: inherit them, shadow the two ioctls.
    const addon = Object.create(realAddon!, {
      backingOpen: { value: () => backings.push(backings.length + 1) },
      backingClose: { value: () => undefined },
    }) as NativeFuse
    const fd = fs.openSync(`${fx.root}/replies`, 'w+')
    const s = new KernelSession(core, new Activity(), addon, fd, {
      entryTimeout: 60, attrTimeout: 60, negativeTimeout: 60, keepCache: true, passthrough: true, maxIo: 1 << 20,
    })
    const k = new ScratchKernel(s, fd)
    // INIT from a 7.40 kernel that offers passthrough (flags2 bit 5, with INIT_EXT).
    expect((await k.exchange(Op.INIT, 0, initIn(40, Init.INIT_EXT | Init.PASSTHROUGH))).error).toBe(0)
    expect(s.negotiated?.passthrough).toBe(true)
    return { k, backings, up: fx.dir('U') }
  }

  /** OPEN: the reply's error, open flags and backing id. */
  async function open(k: ScratchKernel, node: number, flags: number): Promise<{ error: number; openFlags?: number; backingId?: number; fh?: number }> {
    const r = await k.exchange(Op.OPEN, node, u32s(flags, 0))
    if (r.error !== 0) return { error: r.error }
    return { error: 0, openFlags: r.body.readUInt32LE(8), backingId: r.body.readInt32LE(12), fh: Number(r.body.readBigUInt64LE(0)) }
  }

  it('a writer of a passed-through file gets ESTALE and, after a new lookup, a new node', async () => {
    const { k, backings, up } = await session()
    const d = await k.lookup(1, 'd')
    const n = await k.lookup(d, 'f')
    const reader = await open(k, n, fs.constants.O_RDONLY)
    expect(reader).toMatchObject({ error: 0, openFlags: FOPEN_PASSTHROUGH, backingId: 1 })
    expect(backings).toEqual([1])
    expect((await open(k, n, fs.constants.O_WRONLY)).error).toBe(ESTALE)
    expect(fs.readFileSync(`${up}/d/f`, 'utf8')).toBe('lower') // the copy-up was made
    // Requests that reach the retired node through a cached dentry: answered by its old name.
    const attr = await k.exchange(Op.GETATTR, n, Buffer.alloc(16))
    expect(attr.error).toBe(0)
    expect((await open(k, n, fs.constants.O_RDONLY)).error).toBe(ESTALE) // opens go to the new node
    expect((await k.exchange(Op.RELEASE, n, release(reader.fh!))).error).toBe(0)
    expect((await open(k, n, fs.constants.O_RDONLY)).error).toBe(ESTALE) // even with no reader left
    // The kernel's retry: LOOKUP_REVAL of the name, then the open on what it returned.
    const m = await k.lookup(d, 'f')
    expect(m).not.toBe(n)
    const w = await open(k, m, fs.constants.O_WRONLY)
    expect(w.error).toBe(0)
    expect(w.openFlags! & FOPEN_PASSTHROUGH).toBe(0) // writers use the page cache
    // Once the name leads to another file, the old node is stale for path requests too.
    expect((await k.exchange(Op.UNLINK, d, cstr('f'))).error).toBe(0)
    expect((await k.exchange(Op.GETATTR, n, Buffer.alloc(16))).error).toBe(ESTALE)
  })

  it('a reader after a copy-up (chmod) opens the copy on a new node; readers of the same file share one backing', async () => {
    const { k, backings } = await session()
    const d = await k.lookup(1, 'd')
    const n = await k.lookup(d, 'f')
    expect((await open(k, n, fs.constants.O_RDONLY)).backingId).toBe(1)
    expect((await open(k, n, fs.constants.O_RDONLY)).backingId).toBe(1)
    expect(backings).toEqual([1])
    const chmod = Buffer.alloc(88)
    chmod.writeUInt32LE(FATTR_MODE, 0)
    chmod.writeUInt32LE(0o100600, 68)
    expect((await k.exchange(Op.SETATTR, n, chmod)).error).toBe(0) // copies f up
    expect((await open(k, n, fs.constants.O_RDONLY)).error).toBe(ESTALE)
    const m = await k.lookup(d, 'f')
    const r = await open(k, m, fs.constants.O_RDONLY)
    expect(r.error).toBe(0)
    expect(r.openFlags! & FOPEN_PASSTHROUGH).toBe(0) // a rw-branch file: through layerfs
  })
})
