// Issue "hard cases" §2-§4: hard links across copy-up, inode identity, files opened before copy-up.
import * as fs from 'node:fs'
import { describe, expect, it } from 'vitest'
import { upperSnapshot } from '../helpers/fixture.js'
import { fuseUnavailable } from '../helpers/mount.js'
import { useMount } from '../helpers/union.js'

const linked = (fx: { dir(n: string): string }): void => {
  const b = fx.dir('B')
  fs.mkdirSync(b + '/d')
  fs.writeFileSync(b + '/a', 'shared\n')
  fs.linkSync(b + '/a', b + '/d/b')
}
const statOf = async (m: { ok(s: string): Promise<string> }, p: string): Promise<{ ino: number; nlink: number }> => {
  const [ino, nlink] = (await m.ok(`stat -c '%i %h' ${p}`)).trim().split(' ').map(Number)
  return { ino: ino!, nlink: nlink! }
}

describe.skipIf(fuseUnavailable())('hard links and inode identity through the mount', () => {
  const mountIt = useMount()

  // With fuse-native (libfuse 2's path-based API) each name of a hard link is its own kernel
  // inode, so the kernel's attribute cache of the *other* name is not refreshed by a write:
  // these run with --coherent (docs/design.md "Hard links").
  const exact = ['--coherent']

  it('lower hard links stay one inode after either is copied up', async () => {
    const m = await mountIt({ A: {}, B: {} }, { prepare: linked, args: exact })
    const before = await statOf(m, 'mnt/a')
    expect(await statOf(m, 'mnt/d/b')).toEqual(before)
    expect(before.nlink).toBe(2)
    await m.ok('echo changed >> mnt/d/b')
    expect(await m.ok('cat mnt/a')).toBe('shared\nchanged\n')
    expect(await statOf(m, 'mnt/a')).toEqual(before)
    expect(await statOf(m, 'mnt/d/b')).toEqual(before)
    await m.unmount()
    expect(fs.statSync(m.dir('A') + '/a').ino).toBe(fs.statSync(m.dir('A') + '/d/b').ino)
    expect(upperSnapshot(m.dir('A'))).toEqual(['a = "shared\\nchanged\\n"', 'd/', 'd/b = "shared\\nchanged\\n"'])
  })

  it('ln of a lower file copies it up once and links in the rw branch; du counts it once', async () => {
    const m = await mountIt({ A: {}, B: { f: 'x'.repeat(100000) } }, { args: exact })
    await m.ok('ln mnt/f mnt/g')
    const [f, g] = [await statOf(m, 'mnt/f'), await statOf(m, 'mnt/g')]
    expect(f).toEqual(g)
    expect(f.nlink).toBe(2)
    expect(await m.ok('du -s --apparent-size -B1 mnt/f mnt/g | cut -f1')).toBe('100000\n')
  })

  it('st_ino is the same before and after copy-up, unique, and stable for directories', async () => {
    const m = await mountIt({ A: {}, B: { f: '1', d: { x: '2' }, g: '3' } })
    const f0 = await statOf(m, 'mnt/f')
    const d0 = await statOf(m, 'mnt/d')
    await m.ok('chmod 600 mnt/f && echo new > mnt/d/new && rm mnt/d/x')
    expect((await statOf(m, 'mnt/f')).ino).toBe(f0.ino)
    expect((await statOf(m, 'mnt/d')).ino).toBe(d0.ino)
    const inos = (await m.ok('find mnt -printf "%i\\n"')).trim().split('\n')
    expect(new Set(inos).size).toBe(inos.length)
  })

  it('a reader that opened a lower file before its copy-up keeps reading the old content, unmixed', async () => {
    const m = await mountIt({ A: {}, B: { f: 'A'.repeat(1 << 20) } })
    fs.writeFileSync(m.root + '/reader.py', [
      'import os, subprocess',
      "fd = os.open('mnt/f', os.O_RDONLY)",
      'first = os.read(fd, 4096)',
      "subprocess.run(['sh', '-c', 'printf B%.0s $(seq 1 100) > mnt/f'], check=True)",
      "rest = b''",
      'while True:',
      '    chunk = os.read(fd, 65536)',
      '    if not chunk: break',
      '    rest += chunk',
      'os.close(fd)',
      'data = first + rest',
      "print(len(data), sorted(set(data.decode())), open('mnt/f').read()[:3])",
    ].join('\n'))
    expect(await m.ok('python3 reader.py')).toBe(`1048576 ['A'] BBB\n`)
  })
})
