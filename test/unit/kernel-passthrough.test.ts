// Passthrough's per-node I/O modes (lib/fuse/kernel/passthrough.ts) against a stand-in for the
// addon's backing ioctls: the answers must be ones the kernel accepts (fs/fuse/iomode.c).
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { NativeFuse } from '../../lib/fuse/kernel/addon.js'
import { NodeTable } from '../../lib/fuse/kernel/nodes.js'
import { Passthrough } from '../../lib/fuse/kernel/passthrough.js'

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
    expect(pt.passingThrough(n)).toBe(true)
    pt.release(1)
    expect(closed).toEqual([])
    pt.release(2)
    expect(closed).toEqual([1])
    expect(opened).toEqual([1])
    expect(pt.size).toBe(0)
    expect(pt.passingThrough(n)).toBe(false)
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
    expect(pt.passingThrough(n)).toBe(false)
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
})
