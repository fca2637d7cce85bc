// The remaining operations through a real mount (issue 2 §2): statfs, fsync/fsyncdir, mknod and
// mkfifo, hard links, symlinks, access, xattrs (through copy-up too) and touch — each checked in
// the merged view and on disk.
import { execFileSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import * as xattr from '@napi-rs/xattr'
import { afterEach, describe, expect, it } from 'vitest'
import { upperSnapshot } from '../helpers/fixture.js'
import { fuseUnavailable, run } from '../helpers/mount.js'
import { useMount } from '../helpers/union.js'

const OLD = 1_000_000_000

describe.skipIf(fuseUnavailable())('other operations', () => {
  const shmDirs: string[] = []
  // Registered before useMount's hook: after-hooks run in reverse, so this runs after the unmount.
  afterEach(() => {
    for (const d of shmDirs.splice(0)) fs.rmSync(d, { recursive: true, force: true })
  })
  const mount = useMount()

  /** A branch on tmpfs (/dev/shm): a different file system from the fixture's. */
  function shmBranch(): string {
    const d = fs.mkdtempSync('/dev/shm/layerfs-test-')
    shmDirs.push(d)
    return d
  }
  const statf = async (p: string) => (await run('stat', ['-f', '-c', '%b %S %l', p])).stdout

  it.runIf(fs.existsSync('/dev/shm'))('statfs reports the rw branch\'s file system', async () => {
    const upper = shmBranch()
    const m = await mount({ B: { f: 'f' } }, { spec: `${upper}=rw:B=ro` })
    expect(await statf(upper)).not.toBe(await statf(m.dir('B'))) // the test means something
    expect(await statf(m.mnt)).toBe(await statf(upper))
  })

  it.runIf(fs.existsSync('/dev/shm'))('statfs of a read-only stack reports the top branch\'s file system', async () => {
    const top = shmBranch()
    const m = await mount({ B: { f: 'f' } }, { spec: `${top}=ro:B=ro` })
    expect(await statf(m.mnt)).toBe(await statf(top))
  })

  it('fsync, fdatasync and fsync of a directory succeed and the data is on disk', async () => {
    const m = await mount({ A: {}, B: { f: 'old\n', d: { x: 'x' } } })
    expect(await m.errnos([
      "fd = os.open('mnt/f', os.O_WRONLY | os.O_APPEND); os.write(fd, b'synced\\n'); os.fsync(fd); os.fdatasync(fd); os.close(fd)",
      "fd = os.open('mnt/n', os.O_CREAT | os.O_WRONLY, 0o644); os.write(fd, b'n'); os.fsync(fd); os.close(fd)",
      "fd = os.open('mnt/d', os.O_RDONLY | os.O_DIRECTORY); os.fsync(fd); os.close(fd)",
      "fd = os.open('mnt', os.O_RDONLY | os.O_DIRECTORY); os.fsync(fd); os.close(fd)",
    ])).toEqual(['OK', 'OK', 'OK', 'OK'])
    await m.ok('sync mnt/f && sync -f mnt/n')
    expect(upperSnapshot(m.dir('A'))).toEqual(['f = "old\\nsynced\\n"', 'n = "n"'])
  })

  it('mkfifo and mknod create FIFOs, device nodes and regular files in the rw branch', async () => {
    const m = await mount({ A: {}, B: { '.wh.p': '', d: {} } })
    await m.ok('mkfifo -m 640 mnt/p && mkfifo mnt/d/q')
    expect(await m.errnos([
      "os.mknod('mnt/c', stat.S_IFCHR | 0o600, os.makedev(1, 3))",
      "os.mknod('mnt/r', stat.S_IFREG | 0o640)",
    ])).toEqual(['OK', 'OK'])
    expect(await m.ok('stat -c "%n %F %a" mnt/p mnt/d/q mnt/r && stat -c "%F %t %T" mnt/c')).toBe(
      'mnt/p fifo 640\nmnt/d/q fifo 644\nmnt/r regular empty file 640\ncharacter special file 1 3\n')
    const A = m.dir('A')
    expect(fs.lstatSync(path.join(A, 'p')).isFIFO()).toBe(true)
    expect(fs.lstatSync(path.join(A, 'd/q')).isFIFO()).toBe(true)
    const c = fs.lstatSync(path.join(A, 'c'))
    expect([c.isCharacterDevice(), c.rdev]).toEqual([true, (1 << 8) | 3])
    expect(upperSnapshot(A, { withMode: true })).toEqual(['c (special) 600', 'd/ 755', 'd/q (special) 644', 'p (special) 640', 'r = "" 640'])
  })

  it('ln makes a hard link in the rw branch: one inode for both names', async () => {
    const m = await mount({ A: {}, B: { f: 'shared\n' } })
    await m.ok('ln mnt/f mnt/g')
    const f = fs.lstatSync(path.join(m.dir('A'), 'f'))
    const g = fs.lstatSync(path.join(m.dir('A'), 'g'))
    expect([g.ino, g.nlink]).toEqual([f.ino, 2])
    const [fi, gi] = (await m.ok('stat -c %i mnt/f mnt/g')).trim().split('\n')
    expect(gi).toBe(fi)
    await m.ok('echo via-g >> mnt/g')
    expect(fs.readFileSync(path.join(m.dir('A'), 'f'), 'utf8')).toBe('shared\nvia-g\n')
    expect(await m.errno("os.link('mnt/nope', 'mnt/h')")).toBe('ENOENT')
  })

  it('symlink and readlink: relative, absolute, dangling and through to lower files', async () => {
    const m = await mount({ A: {}, B: { f: 'lower f\n', d: { g: 'g\n' }, old: { kind: 'symlink', target: 'd/g' } } })
    await m.ok('ln -s f mnt/rel && ln -s /nonexistent/x mnt/abs && ln -s missing mnt/dangling && ln -s ../f mnt/d/up')
    expect(await m.ok('readlink mnt/rel mnt/abs mnt/dangling mnt/d/up mnt/old')).toBe('f\n/nonexistent/x\nmissing\n../f\nd/g\n')
    expect(await m.ok('cat mnt/rel mnt/d/up mnt/old')).toBe('lower f\nlower f\ng\n')
    expect(await m.errno("open('mnt/dangling')")).toBe('ENOENT')
    expect(await m.ok('stat -c %F mnt/rel && stat -L -c %F mnt/rel')).toBe('symbolic link\nregular file\n')
    expect(upperSnapshot(m.dir('A'))).toEqual(['abs -> /nonexistent/x', 'd/', 'd/up -> ../f', 'dangling -> missing', 'rel -> f'])
  })

  it('access answers from the merged modes', async () => {
    const m = await mount({
      A: { x: { kind: 'file', content: '#!/bin/sh\n', mode: 0o755 } },
      B: { r: { kind: 'file', content: 'r', mode: 0o644 }, none: { kind: 'file', content: 'n', mode: 0o000 } },
    })
    const r = await m.errnos([
      "assert os.access('mnt/x', os.R_OK | os.W_OK | os.X_OK)",
      "assert os.access('mnt/r', os.R_OK | os.W_OK)",
      "assert not os.access('mnt/r', os.X_OK)",
      "assert not os.access('mnt/none', os.X_OK)",
      "assert not os.access('mnt/missing', os.F_OK)",
      "assert os.access('mnt', os.W_OK | os.X_OK)",
    ])
    expect(r).toEqual(['OK', 'OK', 'OK', 'OK', 'OK', 'OK'])
    expect((await m.sh('test -x mnt/x && ! test -x mnt/r')).code).toBe(0)
    expect(upperSnapshot(m.dir('A'))).toEqual(['x = "#!/bin/sh\\n"'])
  })

  it('xattrs: get, set, list and remove, copying up lower files and directories', async () => {
    const m = await mount({ A: {}, B: { f: 'f', g: 'g', d: { x: 'x' } } }, {
      prepare: (fx) => {
        for (const n of ['f', 'g', 'd']) execFileSync('setfattr', ['-n', 'user.k', '-v', `lower-${n}`, path.join(fx.dir('B'), n)])
      },
    })
    expect(await m.ok('getfattr --only-values -n user.k mnt/f')).toBe('lower-f')
    expect(upperSnapshot(m.dir('A'))).toEqual([]) // reading xattrs never copies up
    await m.ok('setfattr -n user.new -v 1 mnt/f && setfattr -x user.k mnt/g && setfattr -n user.dir -v d mnt/d')
    expect(await m.ok('getfattr -d --absolute-names mnt/f mnt/g mnt/d')).toBe(
      '# file: mnt/f\nuser.k="lower-f"\nuser.new="1"\n\n# file: mnt/d\nuser.dir="d"\nuser.k="lower-d"\n\n')
    const A = m.dir('A')
    expect(xattr.listAttributesSync(path.join(A, 'f')).filter((n) => n.startsWith('user.')).sort()).toEqual(['user.k', 'user.new'])
    expect(xattr.listAttributesSync(path.join(A, 'g')).filter((n) => n.startsWith('user.'))).toEqual([])
    expect(String(xattr.getAttributeSync(path.join(m.dir('B'), 'g'), 'user.k'))).toBe('lower-g')
    expect(upperSnapshot(A)).toEqual(['d/', 'f = "f"', 'g = "g"']) // the directory alone, not its content
    expect(await m.errnos([
      "os.getxattr('mnt/g', 'user.k')",
      "os.setxattr('mnt/f', 'user.new', b'2', os.XATTR_CREATE)",
      "os.setxattr('mnt/f', 'user.absent', b'2', os.XATTR_REPLACE)",
      "os.setxattr('mnt/f', 'user.new', b'3', os.XATTR_REPLACE)",
      "os.removexattr('mnt/f', 'user.absent')",
      "os.setxattr('mnt/f', 'trusted.overlay.opaque', b'y')",
      "assert os.getxattr('mnt/f', 'user.new') == b'3'",
    ])).toEqual(['ENODATA', 'EEXIST', 'ENODATA', 'OK', 'ENODATA', 'EPERM', 'OK'])
  })

  it('touch creates files, copies lower files up with new times, and sets given times', async () => {
    const m = await mount({ A: {}, B: { f: { kind: 'file', content: 'f', mtime: OLD }, g: { kind: 'file', content: 'g', mtime: OLD } } })
    await m.ok('touch mnt/new mnt/f && touch -d @1234567890 mnt/g')
    const A = m.dir('A')
    expect(upperSnapshot(A)).toEqual(['f = "f"', 'g = "g"', 'new = ""'])
    expect(fs.lstatSync(path.join(A, 'f')).mtimeMs).toBeGreaterThan(OLD * 1000)
    expect(fs.lstatSync(path.join(A, 'g')).mtimeMs).toBe(1_234_567_890_000)
    expect(await m.ok('stat -c "%X %Y" mnt/g')).toBe('1234567890 1234567890\n')
    expect(fs.lstatSync(path.join(m.dir('B'), 'f')).mtimeMs).toBe(OLD * 1000)
  })

  // Regression: fuse-native 2.2.6 hands utimens the atime twice and lacks flag_utime_omit_ok;
  // scripts/build-fuse-binding.mjs builds the fixed binding at install.
  it('utimes with different atime and mtime (cp -a, tar, touch -m) keeps both', async () => {
    const m = await mount({ A: { f: 'f' }, B: {} })
    expect(await m.errno("os.utime('mnt/f', (1000000000, 1200000000))")).toBe('OK')
    expect(await m.ok('stat -c "%X %Y" mnt/f')).toBe('1000000000 1200000000\n')
  })
})
