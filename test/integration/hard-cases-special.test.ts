// Issue "hard cases" §5-§6: special files and xattrs/ACLs across copy-up; directories that had
// thousands of lower entries deleted one by one.
import * as fs from 'node:fs'
import { execFileSync } from 'node:child_process'
import { describe, expect, it } from 'vitest'
import { upperSnapshot } from '../helpers/fixture.js'
import { fuseUnavailable } from '../helpers/mount.js'
import { useMount } from '../helpers/union.js'

const hasSetfacl = ((): boolean => { try { execFileSync('setfacl', ['--version']); return true } catch { return false } })()

describe.skipIf(fuseUnavailable())('special files, xattrs, many whiteouts', () => {
  const mountIt = useMount()

  it('creates FIFOs, sockets and device nodes through the mount (device nodes work with -o dev)', async () => {
    const m = await mountIt({ A: {}, B: {} }, { args: ['-o', 'dev'] })
    await m.ok('mkfifo mnt/fifo && mknod mnt/null c 1 3 && python3 -c "import socket; s=socket.socket(socket.AF_UNIX); s.bind(\'mnt/sock\')"')
    expect(await m.ok('stat -c "%n %F %t:%T" mnt/fifo mnt/null mnt/sock')).toBe('mnt/fifo fifo 0:0\nmnt/null character special file 1:3\nmnt/sock socket 0:0\n')
    expect(await m.ok('echo data > mnt/null && head -c 3 mnt/null | wc -c')).toBe('0\n')
  })

  it('copies up FIFOs and device nodes as themselves', async () => {
    const m = await mountIt({ A: {}, B: {} }, {
      prepare: (fx) => {
        execFileSync('mkfifo', [fx.dir('B') + '/fifo'])
        execFileSync('mknod', [fx.dir('B') + '/zero', 'c', '1', '5'])
      },
    })
    await m.ok('chmod 600 mnt/fifo mnt/zero')
    await m.unmount()
    const up = m.dir('A')
    expect(fs.lstatSync(up + '/fifo').isFIFO()).toBe(true)
    expect(fs.lstatSync(up + '/zero').isCharacterDevice()).toBe(true)
    expect(fs.lstatSync(up + '/zero').rdev).toBe(fs.lstatSync(m.dir('B') + '/zero').rdev)
    expect(fs.lstatSync(up + '/zero').mode & 0o777).toBe(0o600)
  })

  it('user., trusted. and security. xattrs survive copy-up', async () => {
    const m = await mountIt({ A: {}, B: { f: 'x' } }, {
      prepare: (fx) => {
        for (const [n, v] of [['user.u', 'U'], ['trusted.t', 'T'], ['security.s', 'S']]) execFileSync('setfattr', ['-n', n!, '-v', v!, fx.dir('B') + '/f'])
      },
    })
    await m.ok('echo more >> mnt/f')
    expect(await m.ok('getfattr --absolute-names -m - -d mnt/f | grep -v "^#" | sort')).toBe('\nsecurity.s="S"\ntrusted.t="T"\nuser.u="U"\n')
  })

  it.skipIf(!hasSetfacl)('POSIX ACLs survive copy-up', async () => {
    const m = await mountIt({ A: {}, B: { f: 'x' } }, {
      prepare: (fx) => execFileSync('setfacl', ['-m', 'u:12345:r', fx.dir('B') + '/f']),
    })
    await m.ok('touch mnt/f')
    await m.unmount()
    expect(execFileSync('getfacl', ['-cp', m.dir('A') + '/f']).toString()).toContain('user:12345:r--')
  })

  it('a directory whose 10k lower entries were deleted one by one can be removed and recreated empty and opaque', async () => {
    const m = await mountIt({ A: {}, B: {} }, {
      prepare: (fx) => {
        fs.mkdirSync(fx.dir('B') + '/d')
        for (let i = 0; i < 10_000; i++) fs.writeFileSync(`${fx.dir('B')}/d/f${i}`, '')
      },
    })
    await m.ok('find mnt/d -type f -delete')
    expect(await m.ok('ls -A mnt/d | wc -l')).toBe('0\n')
    expect(await m.ok('ls -A A/d | wc -l')).toBe('10000\n')
    await m.ok('rmdir mnt/d && mkdir mnt/d')
    expect(await m.ok('ls -A mnt/d | wc -l')).toBe('0\n')
    await m.unmount()
    expect(upperSnapshot(m.dir('A'))).toEqual(['d/', 'd/.wh..wh..opq = ""'])
  })
})
