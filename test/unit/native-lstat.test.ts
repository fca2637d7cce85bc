// The addon's lstat (lib/fs.ts, the lookup hot path) answers exactly what Node's lstat does.
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { execFileSync } from 'node:child_process'
import { afterEach, describe, expect, it } from 'vitest'
import { fstatOf, lstatOrUndefined, nativeLstatOrUndefined } from '../../lib/fs.js'
import { nativeAddon } from '../../lib/native.js'

const built = !(nativeAddon() instanceof Error)
const FIELDS = ['mode', 'nlink', 'uid', 'gid', 'rdev', 'size', 'blksize', 'blocks', 'ino', 'dev', 'atimeMs', 'mtimeMs', 'ctimeMs'] as const
const TYPES = ['isDirectory', 'isFile', 'isSymbolicLink', 'isCharacterDevice', 'isBlockDevice', 'isFIFO', 'isSocket'] as const

let dir: string | undefined
afterEach(() => { if (dir) fs.rmSync(dir, { recursive: true, force: true }) })

describe.skipIf(!built)('native lstat', () => {
  it('gives the fields and types of fs.lstatSync for every kind of entry', () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'layerfs-lstat-'))
    fs.writeFileSync(`${dir}/f`, 'x'.repeat(5000), { mode: 0o4751 })
    fs.chmodSync(`${dir}/f`, 0o4751)
    fs.mkdirSync(`${dir}/d`)
    fs.symlinkSync('f', `${dir}/l`)
    fs.linkSync(`${dir}/f`, `${dir}/h`)
    fs.utimesSync(`${dir}/f`, new Date(-1234567), 1_700_000_000.123456)
    execFileSync('mkfifo', [`${dir}/p`])
    const entries = ['f', 'd', 'l', 'p', 'h'].map((n) => `${dir}/${n}`)
    if (process.getuid?.() === 0) {
      execFileSync('mknod', [`${dir}/c`, 'c', '1', '3'])
      entries.push(`${dir}/c`)
    }
    for (const p of entries) {
      const want = fs.lstatSync(p)
      const got = nativeLstatOrUndefined(p)!
      for (const k of FIELDS) expect([p, k, got[k]]).toEqual([p, k, want[k]])
      for (const t of TYPES) expect([p, t, got[t]()]).toEqual([p, t, want[t]()])
    }
  })
  it('missing entries and non-directory parents are undefined; other errors throw with their code', () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'layerfs-lstat-'))
    fs.writeFileSync(`${dir}/f`, '')
    expect(nativeLstatOrUndefined(`${dir}/nope`)).toBeUndefined()
    expect(nativeLstatOrUndefined(`${dir}/f/below`)).toBeUndefined()
    expect(() => nativeLstatOrUndefined(`${dir}/${'n'.repeat(300)}`)).toThrow(expect.objectContaining({ code: 'ENAMETOOLONG', syscall: 'lstat' }))
    expect(() => nativeLstatOrUndefined(`${dir}/${'a/'.repeat(2100)}x`)).toThrow(expect.objectContaining({ code: 'ENAMETOOLONG' }))
    expect(lstatOrUndefined(`${dir}/f`)!.isFile()).toBe(true)
  })
  it('fstatOf gives the fields of fs.fstatSync; a closed descriptor is EBADF', () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'layerfs-lstat-'))
    fs.writeFileSync(`${dir}/f`, 'x'.repeat(777), { mode: 0o640 })
    const fd = fs.openSync(`${dir}/f`, 'r')
    try {
      const want = fs.fstatSync(fd)
      const got = fstatOf(fd)
      for (const k of FIELDS) expect([k, got[k]]).toEqual([k, want[k]])
      expect(got.isFile()).toBe(true)
    } finally {
      fs.closeSync(fd)
    }
    expect(() => fstatOf(fd)).toThrow(expect.objectContaining({ code: 'EBADF' }))
  })
})
