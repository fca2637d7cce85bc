// Copy-up through a real mount (union-contract.md "Writes"): the first change to a lower file
// copies it into the rw branch with data, mode, owner, times, xattrs and symlink target, parents
// first with their merged attributes; read-only opens never copy; racing writers copy once; a
// crash mid-copy never leaves a half-written file visible.
import { execFileSync, spawn } from 'node:child_process'
import * as crypto from 'node:crypto'
import * as fs from 'node:fs'
import * as path from 'node:path'
import * as xattr from '@napi-rs/xattr'
import { describe, expect, it } from 'vitest'
import { upperSnapshot, type Fixture } from '../helpers/fixture.js'
import { cleanupMount, cli, fuseUnavailable, isMounted, mountCli, transportUnderTest } from '../helpers/mount.js'
import { useMount } from '../helpers/union.js'

const WORK = '.wh..wh.layerfs.work'
/** Whole seconds, so the times survive the mount's millisecond precision exactly. */
const T_ATIME = 1_000_000_000
const T_MTIME = 1_000_000_100

function setXattrs(host: string, attrs: Record<string, string>): void {
  for (const [k, v] of Object.entries(attrs)) execFileSync('setfattr', ['-h', '-n', k, '-v', v, host])
}

/** The user.* xattrs of a host entry, sorted (never called on the mount). */
function userXattrs(host: string): Record<string, string> {
  const out: Record<string, string> = {}
  for (const n of xattr.listAttributesSync(host).filter((n) => n.startsWith('user.')).sort()) {
    out[n] = String(xattr.getAttributeSync(host, n))
  }
  return out
}

/** The attributes copy-up must keep, of a host entry. */
function attrsOf(host: string) {
  const st = fs.lstatSync(host)
  return { mode: (st.mode & 0o7777).toString(8), uid: st.uid, gid: st.gid, atimeMs: st.atimeMs, mtimeMs: st.mtimeMs }
}

/**
 * Expects the upper copy to carry the lower entry's atime and mtime. The lower atime is read
 * now (hashing the branch before the mount read it); the mount keeps times to the millisecond.
 */
function expectTimesKept(upper: string, lower: string): void {
  const u = fs.lstatSync(upper)
  const l = fs.lstatSync(lower)
  expect(Math.abs(u.atimeMs - l.atimeMs), 'atime').toBeLessThan(1)
  expect(Math.abs(u.mtimeMs - l.mtimeMs), 'mtime').toBeLessThan(1)
}

/** A lower file with everything copy-up must carry: mode 0640, owner 1234:5678, xattrs, old times. */
function richLowerFile(fx: Fixture, rel: string): void {
  const p = path.join(fx.dir('B'), rel)
  fs.chmodSync(p, 0o640)
  fs.chownSync(p, 1234, 5678)
  setXattrs(p, { 'user.k': 'v1', 'user.other': 'two' })
  fs.utimesSync(p, T_ATIME, T_MTIME)
}

describe.skipIf(fuseUnavailable())('copy-up', () => {
  const mount = useMount()

  it('appending copies data, mode, owner and xattrs up, and the inode number stays', async () => {
    const m = await mount({ A: {}, B: { f: 'hello\n' } }, { prepare: (fx) => richLowerFile(fx, 'f') })
    const ino = await m.ok('stat -c %i mnt/f')
    await m.ok('echo more >> mnt/f')
    expect(await m.ok('cat mnt/f')).toBe('hello\nmore\n')
    expect(await m.ok('stat -c %i mnt/f')).toBe(ino)
    const upper = path.join(m.dir('A'), 'f')
    expect(fs.readFileSync(upper, 'utf8')).toBe('hello\nmore\n')
    expect(attrsOf(upper)).toMatchObject({ mode: '640', uid: 1234, gid: 5678 })
    expect(userXattrs(upper)).toEqual({ 'user.k': 'v1', 'user.other': 'two' })
    expect(await m.ok('stat -c "%a %u %g" mnt/f')).toBe('640 1234 5678\n')
    expect(upperSnapshot(m.dir('A'))).toEqual(['f = "hello\\nmore\\n"'])
  })

  it('chmod copies up and keeps data, owner, xattrs, atime and mtime', async () => {
    const m = await mount({ A: {}, B: { f: 'data' } }, { prepare: (fx) => richLowerFile(fx, 'f') })
    await m.ok('chmod 600 mnt/f')
    const upper = path.join(m.dir('A'), 'f')
    expect(attrsOf(upper)).toMatchObject({ mode: '600', uid: 1234, gid: 5678, mtimeMs: T_MTIME * 1000 })
    expectTimesKept(upper, path.join(m.dir('B'), 'f'))
    expect(userXattrs(upper)).toEqual({ 'user.k': 'v1', 'user.other': 'two' })
    expect(fs.readFileSync(upper, 'utf8')).toBe('data')
    expect(await m.ok('stat -c "%a %Y" mnt/f')).toBe(`600 ${T_MTIME}\n`)
    expect(fs.statSync(path.join(m.dir('B'), 'f')).mode & 0o7777).toBe(0o640)
  })

  it('chown copies up and changes only the owner', async () => {
    const m = await mount({ A: {}, B: { f: 'data' } }, { prepare: (fx) => richLowerFile(fx, 'f') })
    await m.ok('chown 42:43 mnt/f')
    const upper = path.join(m.dir('A'), 'f')
    expect(attrsOf(upper)).toMatchObject({ mode: '640', uid: 42, gid: 43, mtimeMs: T_MTIME * 1000 })
    expectTimesKept(upper, path.join(m.dir('B'), 'f'))
    expect(userXattrs(upper)).toEqual({ 'user.k': 'v1', 'user.other': 'two' })
    expect(await m.ok('stat -c "%u:%g" mnt/f && cat mnt/f')).toBe('42:43\ndata')
  })

  it('utimens (touch -d) copies up and sets the times, data and attributes kept', async () => {
    const m = await mount({ A: {}, B: { f: 'data' } }, { prepare: (fx) => richLowerFile(fx, 'f') })
    await m.ok('touch -d @1500000000 mnt/f')
    const upper = path.join(m.dir('A'), 'f')
    expect(attrsOf(upper)).toEqual({ mode: '640', uid: 1234, gid: 5678, atimeMs: 1_500_000_000_000, mtimeMs: 1_500_000_000_000 })
    expect(await m.ok('stat -c "%X %Y" mnt/f')).toBe('1500000000 1500000000\n')
    expect(fs.readFileSync(upper, 'utf8')).toBe('data')
    expect(userXattrs(upper)).toEqual({ 'user.k': 'v1', 'user.other': 'two' })
  })

  // Regression: fuse-native 2.2.6 hands utimens the atime twice and lacks flag_utime_omit_ok;
  // scripts/build-fuse-binding.mjs builds the fixed binding at install.
  it('utimens with only mtime (touch -m -d) copies up, sets mtime and keeps atime', async () => {
    const m = await mount({ A: {}, B: { f: 'data' } }, { prepare: (fx) => richLowerFile(fx, 'f') })
    await m.ok('touch -m -d @1500000000 mnt/f')
    const upper = path.join(m.dir('A'), 'f')
    expect(fs.lstatSync(upper).mtimeMs).toBe(1_500_000_000_000)
    expect(await m.ok('stat -c %Y mnt/f')).toBe('1500000000\n')
  })

  it('a symlink is copied up with its target, owner and times (chown -h, touch -h)', async () => {
    const m = await mount({ A: {}, B: { lnk: { kind: 'symlink', target: '../some/where' }, lnk2: { kind: 'symlink', target: 'f' }, f: 'f' } }, {
      prepare: (fx) => {
        fs.lchownSync(path.join(fx.dir('B'), 'lnk'), 1234, 5678)
        fs.lutimesSync(path.join(fx.dir('B'), 'lnk'), T_ATIME, T_MTIME)
      },
    })
    await m.ok('chown -h 4321:8765 mnt/lnk && touch -h -d @1400000000 mnt/lnk2')
    const upper = path.join(m.dir('A'), 'lnk')
    expect(fs.readlinkSync(upper)).toBe('../some/where')
    expect(attrsOf(upper)).toMatchObject({ uid: 4321, gid: 8765, mtimeMs: T_MTIME * 1000 })
    expect(fs.lstatSync(path.join(m.dir('A'), 'lnk2')).mtimeMs).toBe(1_400_000_000_000)
    expect(await m.ok('readlink mnt/lnk mnt/lnk2 && cat mnt/lnk2')).toBe('../some/where\nf\nf')
    expect(upperSnapshot(m.dir('A'))).toEqual(['lnk -> ../some/where', 'lnk2 -> f'])
  })

  it('missing parents are created with the merged parents\' mode, owner, times and xattrs', async () => {
    const m = await mount({
      A: {},
      B: { p: { q: { f: 'f\n' }, sib: 'not copied' } },
      C: { p: { fromC: 'c', q: { g: 'g' } } },
    }, {
      spec: 'A=rw:B=ro:C=ro',
      prepare: (fx) => {
        const p = path.join(fx.dir('B'), 'p')
        fs.chmodSync(p, 0o751)
        fs.chownSync(p, 1234, 5678)
        setXattrs(p, { 'user.dir': 'p' })
        fs.chmodSync(path.join(p, 'q'), 0o705)
        fs.chmodSync(path.join(fx.dir('C'), 'p'), 0o700) // the top-most layer's attributes win
        fs.utimesSync(path.join(p, 'q'), T_ATIME, T_MTIME)
        fs.utimesSync(p, T_ATIME, T_MTIME + 1)
      },
    })
    await m.ok('echo more >> mnt/p/q/f')
    const up = path.join(m.dir('A'), 'p')
    expect(attrsOf(up)).toMatchObject({ mode: '751', uid: 1234, gid: 5678, mtimeMs: (T_MTIME + 1) * 1000 })
    expectTimesKept(up, path.join(m.dir('B'), 'p'))
    expectTimesKept(path.join(up, 'q'), path.join(m.dir('B'), 'p', 'q'))
    expect(userXattrs(up)).toEqual({ 'user.dir': 'p' })
    expect(attrsOf(path.join(up, 'q'))).toMatchObject({ mode: '705', uid: 0, mtimeMs: T_MTIME * 1000 })
    // Only the chain to the file is copied, never the siblings or the lower branches' content.
    expect(upperSnapshot(m.dir('A'), { withMode: true })).toEqual(['p/ 751', 'p/q/ 705', 'p/q/f = "f\\nmore\\n" 644'])
    expect(await m.ok('ls -A mnt/p mnt/p/q')).toBe('mnt/p:\nfromC\nq\nsib\n\nmnt/p/q:\nf\ng\n')
  })

  it('open with O_TRUNC copies no data but keeps the attributes', async () => {
    const m = await mount({ A: {}, B: { f: 'old content\n', g: 'other old\n' } }, { prepare: (fx) => { richLowerFile(fx, 'f'); richLowerFile(fx, 'g') } })
    await m.ok('echo new > mnt/f')
    expect(await m.errno("fd = os.open('mnt/g', os.O_WRONLY | os.O_TRUNC); os.close(fd)")).toBe('OK')
    for (const [name, content] of [['f', 'new\n'], ['g', '']] as const) {
      const upper = path.join(m.dir('A'), name)
      expect(fs.readFileSync(upper, 'utf8')).toBe(content)
      expect(attrsOf(upper)).toMatchObject({ mode: '640', uid: 1234, gid: 5678 })
      expect(userXattrs(upper)).toEqual({ 'user.k': 'v1', 'user.other': 'two' })
    }
    expect(await m.ok('cat mnt/f mnt/g')).toBe('new\n')
  })

  it('truncate and ftruncate copy up and keep the remaining data', async () => {
    const m = await mount({ A: {}, B: { t: 'abcdefgh', u: 'ABCDEFGH', z: 'zzz', x: 'x' } })
    await m.ok('truncate -s 3 mnt/t && truncate -s 0 mnt/z && truncate -s 4 mnt/x')
    expect(await m.errno("fd = os.open('mnt/u', os.O_RDWR); os.ftruncate(fd, 5); os.close(fd)")).toBe('OK')
    expect(upperSnapshot(m.dir('A'))).toEqual(['t = "abc"', 'u = "ABCDE"', 'x = "x\\u0000\\u0000\\u0000"', 'z = ""'])
    expect(await m.ok('cat mnt/t mnt/u; stat -c %s mnt/x')).toBe('abcABCDE4\n')
  })

  it('pwrite in the middle of a lower file keeps the bytes around it', async () => {
    const m = await mount({ A: {}, B: { f: '0123456789' } })
    expect(await m.errno("fd = os.open('mnt/f', os.O_WRONLY); os.pwrite(fd, b'XY', 4); os.close(fd)")).toBe('OK')
    expect(upperSnapshot(m.dir('A'))).toEqual(['f = "0123XY6789"'])
  })

  it('chmod of a lower directory copies the directory alone, not its content', async () => {
    const m = await mount({ A: {}, B: { d: { f: 'f', sub: { g: 'g' } } } })
    await m.ok('chmod 700 mnt/d')
    expect(upperSnapshot(m.dir('A'), { withMode: true })).toEqual(['d/ 700'])
    expect(await m.ok('stat -c %a mnt/d && ls mnt/d && cat mnt/d/sub/g')).toBe('700\nf\nsub\ng')
  })

  it('a FIFO is copied up as a FIFO', async () => {
    const m = await mount({ A: {}, B: {} }, { prepare: (fx) => execFileSync('mkfifo', ['-m', '644', path.join(fx.dir('B'), 'p')]) })
    await m.ok('chmod 600 mnt/p')
    const st = fs.lstatSync(path.join(m.dir('A'), 'p'))
    expect(st.isFIFO()).toBe(true)
    expect(st.mode & 0o7777).toBe(0o600)
    expect(await m.ok('stat -c "%F %a" mnt/p')).toBe('fifo 600\n')
  })

  it('opening read-only never copies up, whatever reads the file', async () => {
    const m = await mount({ A: {}, B: { f: 'data\n', d: { g: 'g' }, l: { kind: 'symlink', target: 'f' } } }, {
      prepare: (fx) => setXattrs(path.join(fx.dir('B'), 'f'), { 'user.k': 'v' }),
    })
    await m.ok([
      'cat mnt/f mnt/l mnt/d/g >/dev/null', 'head -c1 mnt/f >/dev/null', 'sha256sum mnt/f >/dev/null',
      'exec 3< mnt/f; read x <&3; exec 3<&-', 'stat mnt/f mnt/d >/dev/null', 'ls -lR mnt >/dev/null',
      'getfattr -d mnt/f >/dev/null', 'test -r mnt/f', 'find mnt >/dev/null', 'readlink mnt/l >/dev/null',
      'cp mnt/f copied', 'tar -cf /dev/null -C mnt .',
    ].join(' && '))
    expect(await m.errnos([
      "open('mnt/f', 'rb').read()",
      "fd = os.open('mnt/f', os.O_RDONLY); os.read(fd, 10); os.close(fd)",
      // O_CREAT on an existing name is an ordinary read-only open.
      "fd = os.open('mnt/f', os.O_RDONLY | os.O_CREAT, 0o644); os.close(fd)",
    ])).toEqual(['OK', 'OK', 'OK'])
    expect(upperSnapshot(m.dir('A'))).toEqual([])
  })

  it('racing writers on the same lower file copy it up once: no write is lost', async () => {
    const m = await mount({ A: {}, B: { f1: 'base\n', f2: 'base\n', f3: 'base\n', f4: 'base\n' } })
    // 4 files x 8 concurrent appenders; a second copy-up replacing the first would drop lines
    // written through a descriptor of the replaced copy.
    await m.ok('for f in f1 f2 f3 f4; do for i in 1 2 3 4 5 6 7 8; do (echo "w$i" >> mnt/$f) & done; done; wait')
    const expected = ['base', ...[1, 2, 3, 4, 5, 6, 7, 8].map((i) => `w${i}`)].sort()
    for (const f of ['f1', 'f2', 'f3', 'f4']) {
      const upper = fs.readFileSync(path.join(m.dir('A'), f), 'utf8')
      expect(upper.split('\n').filter(Boolean).sort(), f).toEqual(expected)
      expect(upper.startsWith('base\n'), f).toBe(true)
    }
    expect(upperSnapshot(m.dir('A')).map((l) => l.split(' ')[0])).toEqual(['f1', 'f2', 'f3', 'f4'])
    expect(fs.readdirSync(path.join(m.dir('A'), WORK))).toEqual([])
  })

  it('a 64 MiB file keeps its content through copy-up', async () => {
    const data = crypto.randomBytes(64 << 20)
    const hash = crypto.createHash('sha256').update(data).digest('hex')
    const m = await mount({ A: {}, B: {} }, { prepare: (fx) => fs.writeFileSync(path.join(fx.dir('B'), 'big'), data) })
    await m.ok('printf tail >> mnt/big')
    const upper = fs.readFileSync(path.join(m.dir('A'), 'big'))
    expect(upper.length).toBe(data.length + 4)
    expect(crypto.createHash('sha256').update(upper.subarray(0, data.length)).digest('hex')).toBe(hash)
    expect(upper.subarray(data.length).toString()).toBe('tail')
    const full = crypto.createHash('sha256').update(upper).digest('hex')
    expect(await m.ok('sha256sum < mnt/big')).toBe(`${full}  -\n`)
  })

  it('copy-ups show in status; a 1 MiB file is copied at once when nothing waits (native), cached or not, a 9 MiB one on a worker', async () => {
    const one = crypto.randomBytes(1 << 20)
    const four = crypto.randomBytes(4 << 20)
    const nine = crypto.randomBytes(9 << 20)
    const m = await mount({ A: {}, B: { d: { e: {} } } }, {
      prepare: (fx) => {
        fs.writeFileSync(path.join(fx.dir('B'), 'd/e/one'), one)
        fs.writeFileSync(path.join(fx.dir('B'), 'd/e/four'), four)
        fs.writeFileSync(path.join(fx.dir('B'), 'd/e/nine'), nine)
        fs.symlinkSync('one', path.join(fx.dir('B'), 'd/e/l'))
      },
    })
    type Counts = { files: number; filesOffThread: number; dirs: number; others: number }
    const status = async (): Promise<{ copyUps: Counts }> => JSON.parse((await cli(['status', 'mnt', '--json'], { cwd: m.root })).stdout)
    expect((await status()).copyUps).toEqual({ files: 0, filesOffThread: 0, dirs: 0, others: 0 })
    // One writer, one request at a time: the kernel's queue is empty when the OPEN is answered.
    await m.ok('printf W | dd of=mnt/d/e/one conv=notrunc status=none')
    const native = transportUnderTest() === 'native' // fuse-native's transport has no queue to ask
    expect((await status()).copyUps).toEqual({ files: 1, filesOffThread: native ? 0 : 1, dirs: 2, others: 0 })
    await m.ok('printf W | dd of=mnt/d/e/nine conv=notrunc status=none && touch -h mnt/d/e/l')
    expect((await status()).copyUps).toEqual({ files: 2, filesOffThread: native ? 1 : 2, dirs: 2, others: 1 })
    // Its data not in the page cache (written back, then dropped: GNU dd's posix_fadvise
    // DONTNEED): on the native transport still copied at once, reading the disk in slices.
    const lowerFour = path.join(m.dir('B'), 'd/e/four')
    await m.ok(`sync ${lowerFour} && dd if=${lowerFour} iflag=nocache count=0 status=none`)
    await m.ok('printf W | dd of=mnt/d/e/four conv=notrunc status=none')
    expect((await status()).copyUps).toEqual({ files: 3, filesOffThread: native ? 1 : 3, dirs: 2, others: 1 })
    for (const [name, data] of [['one', one], ['four', four], ['nine', nine]] as const) {
      const want = Buffer.concat([Buffer.from('W'), data.subarray(1)])
      expect(fs.readFileSync(path.join(m.dir('A'), 'd/e', name)).equals(want)).toBe(true)
      expect(await m.ok(`cmp mnt/d/e/${name} A/d/e/${name} && echo same`)).toBe('same\n')
    }
    expect((await cli(['status', 'mnt'], { cwd: m.root })).stdout).toContain(`  copy-ups: 3 files (${native ? 1 : 3} copied on a worker thread), 2 dirs, 1 other\n`)
  })

  it('a daemon killed in the middle of a copy-up leaves no partial file visible', async () => {
    const data = crypto.randomBytes(64 << 20)
    const hash = crypto.createHash('sha256').update(data).digest('hex')
    const m = await mount({ A: {}, B: {} }, { prepare: (fx) => fs.writeFileSync(path.join(fx.dir('B'), 'big'), data) })
    const { readRecord } = await import('../../dist/lib/daemon/registry.js')
    const pid = readRecord(m.mnt)!.pid
    const work = path.join(m.dir('A'), WORK)
    const writer = spawn('sh', ['-c', 'echo x >> mnt/big'], { cwd: m.root, stdio: 'ignore' })
    const writerDone = new Promise((r) => writer.once('exit', r))
    let finished = false
    void writerDone.then(() => (finished = true))
    // Kill as soon as the copy is being built in the work area (or after it, if it was quick).
    while (!finished && fs.readdirSync(work).length === 0) await new Promise((r) => setTimeout(r, 1))
    process.kill(pid, 'SIGKILL')
    await writerDone
    await cleanupMount(m.mnt)
    expect(isMounted(m.mnt)).toBe(false)
    // Either no copy at all or a complete one: never a truncated file in the branch.
    const upper = path.join(m.dir('A'), 'big')
    if (fs.existsSync(upper)) {
      const got = fs.readFileSync(upper)
      expect(crypto.createHash('sha256').update(got.subarray(0, data.length)).digest('hex')).toBe(hash)
    }
    await mountCli(['A=rw:B=ro', './mnt'], { cwd: m.root })
    expect(fs.readdirSync(work)).toEqual([]) // the next mount drops what the crash left there
    const seen = await m.ok('head -c 67108864 mnt/big | sha256sum')
    expect(seen).toBe(`${hash}  -\n`)
  })
})
