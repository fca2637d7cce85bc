// Issue 7 §2: full disk and a read-only rw branch. The rw branch is a small tmpfs mounted on the
// fixture's A: copy-ups and writes that hit ENOSPC fail with ENOSPC, leave the lower file
// visible and unchanged and nothing half copied (not even in the work area), and the mount
// serves again once space is freed; an rw branch remounted read-only underneath gives EROFS
// (within a bound, never a hang), and writes work again after remounting it rw.
import * as fs from 'node:fs'
import { afterEach, describe, expect, it } from 'vitest'
import { hashTree, makeFixture, type Fixture, type Tree } from '../helpers/fixture.js'
import { cleanupMount, fuseUnavailable, mountCli, run, transportUnderTest } from '../helpers/mount.js'
import { mountedView, type Mounted } from '../helpers/union.js'

const WORK = '.wh..wh.layerfs.work'
const NATIVE = transportUnderTest() === 'native'
const MiB = 1 << 20

function tmpfsMounted(dir: string): boolean {
  return fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === dir && l.includes(' - tmpfs '))
}

describe.skipIf(fuseUnavailable())('full disk and read-only rw branch', () => {
  let live: { fx: Fixture; ro: string } | undefined

  afterEach(async () => {
    if (!live) return
    const { fx, ro } = live
    live = undefined
    try {
      await cleanupMount(fx.mnt)
      const A = fx.dir('A')
      for (let i = 0; i < 20 && tmpfsMounted(A); i++) {
        await run('umount', [A])
        if (tmpfsMounted(A)) await new Promise((r) => setTimeout(r, 100))
      }
      if (tmpfsMounted(A)) await run('umount', ['-l', A])
      expect(hashTree(fx.dir('B')), 'ro branch B changed').toBe(ro)
    } finally {
      fx.cleanup()
    }
  })

  /** A fixture whose rw branch A is a tmpfs of `opts` (e.g. 'size=4m'), mounted as A=rw:B=ro. */
  async function mountOnTmpfs(lower: Tree, tmpfsOpts: string, build?: (B: string) => void, args: readonly string[] = []): Promise<Mounted> {
    const fx = makeFixture({ A: {}, B: lower })
    build?.(fx.dir('B'))
    live = { fx, ro: hashTree(fx.dir('B')) }
    const r = await run('mount', ['-t', 'tmpfs', '-o', tmpfsOpts, 'layerfs-test', fx.dir('A')])
    if (r.code !== 0) throw new Error(`mount tmpfs failed: ${r.stderr}`)
    await mountCli([...args, 'A=rw:B=ro', './mnt'], { cwd: fx.root })
    return mountedView(fx)
  }

  const sha = async (m: Mounted, p: string): Promise<string> => (await m.ok(`sha256sum < ${p}`)).trim()
  const upperEntries = (m: Mounted): string[] => fs.readdirSync(m.dir('A')).filter((n) => n !== WORK)
  const workEntries = (m: Mounted): string[] => fs.readdirSync(`${m.dir('A')}/${WORK}`)

  it.skipIf(!NATIVE)('with --writeback-cache, ENOSPC comes at close instead of at write (docs/transport.md), and the mount serves on', async () => {
    const m = await mountOnTmpfs({ small: 'small\n' }, 'size=1m', undefined, ['--writeback-cache'])
    const out = await m.ok(`python3 -c "
import os, errno
fd = os.open('mnt/f', os.O_WRONLY | os.O_CREAT, 0o644)
print(sum(os.write(fd, b'x' * 65536) for i in range(32)))
try:
    os.close(fd)
    print('close OK')
except OSError as e:
    print('close', errno.errorcode[e.errno])
"`)
    // Every write returned in full: the data was only in the page cache. The close reports what
    // the branch refused.
    expect(out).toBe('2097152\nclose ENOSPC\n')
    expect(await m.ok('rm mnt/f; echo more >> mnt/small; cat mnt/small')).toBe('small\nmore\n')
  })

  it('a copy-up larger than the free space fails with ENOSPC and leaves no partial copy', async () => {
    const m = await mountOnTmpfs({ small: 'small\n' }, 'size=4m', (B) => fs.writeFileSync(`${B}/big`, Buffer.alloc(8 * MiB, 'lower data ')))
    const lowerSha = await sha(m, 'B/big')
    // Every way of writing to the file needs the copy-up first.
    expect(await m.errnos([
      "os.open('mnt/big', os.O_RDWR)",
      "os.open('mnt/big', os.O_WRONLY | os.O_APPEND)",
      "os.chmod('mnt/big', 0o600)",
      "os.utime('mnt/big', (1, 1))",
      "os.truncate('mnt/big', 10)",
      "os.rename('mnt/big', 'mnt/big2')",
      "os.link('mnt/big', 'mnt/big3')",
    ])).toEqual(['ENOSPC', 'ENOSPC', 'ENOSPC', 'ENOSPC', 'ENOSPC', 'ENOSPC', 'ENOSPC'])
    expect(await sha(m, 'mnt/big')).toBe(lowerSha)
    expect(await m.ok('stat -c "%s %a" mnt/big; ls mnt')).toBe(`${8 * MiB} 644\nbig\nsmall\n`)
    expect(upperEntries(m)).toEqual([])
    expect(workEntries(m)).toEqual([])
    expect(Number((await m.ok('df --output=used -k A | tail -1')).trim())).toBeLessThan(64)
    // Still serving: small copy-ups and new files work, and the big file can be replaced.
    await m.ok('echo more >> mnt/small && echo new > mnt/new && : > mnt/big && echo x >> mnt/big')
    expect(await m.ok('cat mnt/small mnt/new mnt/big')).toBe('small\nmore\nnew\nx\n')
  })

  it('writes that fill the disk get ENOSPC; copy-ups, whiteouts and mkdir fail cleanly; all works after freeing space', async () => {
    const m = await mountOnTmpfs({ f: 'lower f\n', g: 'lower g\n', d: { x: 'x\n' } }, 'size=2m,nr_inodes=64', (B) => fs.writeFileSync(`${B}/mid`, Buffer.alloc(MiB, 'm')))
    const r = await m.sh('dd if=/dev/zero of=mnt/fill bs=64k count=64 conv=fsync')
    expect(r.code).not.toBe(0)
    expect(r.stderr).toMatch(/No space left on device/)
    expect(await m.errnos([
      "os.open('mnt/mid', os.O_RDWR)",
      "open('mnt/fill', 'ab').write(b'y' * 65536)",
    ])).toEqual(['ENOSPC', 'ENOSPC'])
    expect(await m.ok('head -c 4 mnt/mid; cat mnt/f')).toBe('mmmmlower f\n')
    expect(workEntries(m)).toEqual([])
    // Use up the inodes too, then try name changes that need new entries.
    await m.sh('i=0; while touch mnt/i$i 2>/dev/null; do i=$((i+1)); [ $i -gt 1000 ] && break; done')
    const failed = await m.errnos(["os.unlink('mnt/f')", "os.mkdir('mnt/newdir')", "os.rename('mnt/g', 'mnt/g2')", "os.rename('mnt/d', 'mnt/d2')"])
    expect(failed.every((e) => e === 'ENOSPC'), failed.join(',')).toBe(true)
    expect(await m.ok('cat mnt/f mnt/g mnt/d/x; ls mnt | grep -c -v "^i"')).toBe('lower f\nlower g\nx\n5\n')
    expect(workEntries(m)).toEqual([])
    // Free the space: everything works again.
    await m.ok('rm -f mnt/fill mnt/i*')
    await m.ok('rm mnt/f && mkdir mnt/newdir && mv mnt/g mnt/g2 && mv mnt/d mnt/d2 && echo y >> mnt/mid')
    expect(await m.ok('ls mnt; cat mnt/g2 mnt/d2/x; tail -c 3 mnt/mid')).toBe('d2\ng2\nmid\nnewdir\nlower g\nx\nmy\n')
    expect(workEntries(m)).toEqual([])
  })

  it('an rw branch remounted read-only underneath gives EROFS, not a hang, and works again once rw', async () => {
    const m = await mountOnTmpfs({ f: 'lower f\n', d: { x: 'x\n' } }, 'size=16m')
    await m.ok('echo upper > mnt/u')
    expect((await run('mount', ['-o', 'remount,ro', m.dir('A')])).code).toBe(0)
    const ops = [
      "open('mnt/new', 'w')",
      "os.open('mnt/f', os.O_RDWR)",
      "open('mnt/u', 'a').write('more')",
      "os.unlink('mnt/f')",
      "os.unlink('mnt/u')",
      "os.mkdir('mnt/dd')",
      "os.rename('mnt/d', 'mnt/d2')",
      "os.chmod('mnt/f', 0o600)",
      "os.symlink('f', 'mnt/l')",
    ]
    const t0 = Date.now()
    const r = await run('python3', ['-c', `
import os, errno, json
out = []
for s in ${JSON.stringify(ops)}:
    try:
        exec(s); out.append('OK')
    except OSError as e:
        out.append(errno.errorcode[e.errno])
print(json.dumps(out))`], { cwd: m.root, timeoutMs: 20_000 })
    expect(r.code, `timed out or failed after ${Date.now() - t0} ms: ${r.stderr}`).toBe(0)
    expect(JSON.parse(r.stdout)).toEqual(ops.map(() => 'EROFS'))
    // Reads keep working.
    expect(await m.ok('cat mnt/f mnt/u mnt/d/x')).toBe('lower f\nupper\nx\n')
    expect((await run('mount', ['-o', 'remount,rw', m.dir('A')])).code).toBe(0)
    await m.ok('echo more >> mnt/f && rm mnt/u && mkdir mnt/dd && mv mnt/d mnt/d2')
    expect(await m.ok('cat mnt/f; ls mnt')).toBe('lower f\nmore\nd2\ndd\nf\n')
    // And an unmount with the rw branch read-only again still ends cleanly.
    expect((await run('mount', ['-o', 'remount,ro', m.dir('A')])).code).toBe(0)
    await m.unmount()
  })
})
