// mknod(2) on branch paths (lib/fs.ts): the addon's call and the python3 fallback
// (LAYERFS_PYTHON_MKNOD=1) make the same entries and fail with the same errno names.
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { mknod } from '../../lib/fs.js'
import { nativeAddon } from '../../lib/native.js'

const built = !(nativeAddon() instanceof Error)
const root = process.getuid?.() === 0
const { S_IFIFO, S_IFSOCK, S_IFCHR } = fs.constants

let dir: string | undefined
afterEach(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true })
  delete process.env.LAYERFS_PYTHON_MKNOD
})

describe.skipIf(!built)('mknod', () => {
  it.each([false, true])('makes FIFOs, sockets and device nodes, and reports errno names (python: %s)', async (python) => {
    if (python) process.env.LAYERFS_PYTHON_MKNOD = '1'
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'layerfs-mknod-'))
    await mknod(`${dir}/p`, S_IFIFO | 0o640, 0)
    await mknod(`${dir}/s`, S_IFSOCK | 0o600, 0)
    const p = fs.lstatSync(`${dir}/p`)
    expect([p.isFIFO(), p.mode & 0o7777]).toEqual([true, 0o640 & ~process.umask()])
    expect(fs.lstatSync(`${dir}/s`).isSocket()).toBe(true)
    if (root) {
      await mknod(`${dir}/c`, S_IFCHR | 0o666, 0x0103) // 1:3, /dev/null's numbers
      const c = fs.lstatSync(`${dir}/c`)
      expect([c.isCharacterDevice(), c.rdev]).toEqual([true, 0x0103])
    }
    await expect(mknod(`${dir}/p`, S_IFIFO | 0o600, 0)).rejects.toMatchObject({ code: 'EEXIST' })
    await expect(mknod(`${dir}/missing/p`, S_IFIFO | 0o600, 0)).rejects.toMatchObject({ code: 'ENOENT' })
  })
})
