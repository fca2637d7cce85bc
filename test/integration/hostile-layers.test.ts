// Issue 7 §4: branches built to hurt. Symlinks to /, to .., out of the branch (absolute and
// relative), '.wh.' entries for '..' and without a name, a '.wh.x' beside its own 'x', names
// with newlines or bytes that are not UTF-8, 255-byte names, ~4 KiB paths, 1000 levels, 100k
// entries. The daemon never reads or writes outside its branches (an inotify watch on a canary
// outside sees nothing: copy-up of a symlink never follows it), never crashes, and answers
// with precise errnos. Permissions with allow_other: a user cannot read a root-only file, nor
// escalate through setuid files (nosuid) or copy-up.
import { spawn } from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { describe, expect, it } from 'vitest'
import { hashTree } from '../helpers/fixture.js'
import { CLI, fuseUnavailable, run, transportUnderTest } from '../helpers/mount.js'
import { useMount, type Mounted } from '../helpers/union.js'

const NATIVE = transportUnderTest() === 'native'

// Reports every inotify event on the given paths until STOP exists; prints them as JSON.
const WATCH = `
import ctypes, os, sys, struct, select, json
libc = ctypes.CDLL(None, use_errno=True)
stop, paths = sys.argv[1], sys.argv[2:]
fd = libc.inotify_init1(os.O_NONBLOCK)
wds = {libc.inotify_add_watch(fd, p.encode(), 0xfff): p for p in paths}
print('ready', flush=True)
events = []
NAMES = {1: 'ACCESS', 2: 'MODIFY', 4: 'ATTRIB', 8: 'CLOSE_WRITE', 16: 'CLOSE_NOWRITE', 32: 'OPEN', 64: 'MOVED_FROM', 128: 'MOVED_TO', 256: 'CREATE', 512: 'DELETE', 1024: 'DELETE_SELF', 2048: 'MOVE_SELF'}
while not os.path.exists(stop):
    select.select([fd], [], [], 0.05)
    try: buf = os.read(fd, 65536)
    except BlockingIOError: continue
    i = 0
    while i < len(buf):
        wd, mask, cookie, ln = struct.unpack_from('iIII', buf, i)
        name = buf[i + 16:i + 16 + ln].rstrip(b'\\0').decode(errors='replace')
        events.append([wds.get(wd), name, [n for b, n in NAMES.items() if mask & b]])
        i += 16 + ln
print(json.dumps(events), flush=True)
`

/** Starts an inotify watch on `paths`; stop() returns every event seen meanwhile. */
async function watch(root: string, paths: string[]): Promise<{ stop(): Promise<unknown[]> }> {
  const stopFile = path.join(root, `stop-watch-${Date.now()}`)
  const child = spawn('python3', ['-c', WATCH, stopFile, ...paths], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  child.stdout.on('data', (d) => (out += d))
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', () => { if (out.startsWith('ready\n')) resolve() })
    child.on('exit', (c) => reject(new Error(`inotify watcher exited ${c}`)))
  })
  return {
    async stop() {
      fs.writeFileSync(stopFile, '')
      await new Promise((r) => child.on('exit', r))
      return JSON.parse(out.slice('ready\n'.length)) as unknown[]
    },
  }
}

async function daemonAlive(m: Mounted): Promise<boolean> {
  const reg = (await import(path.resolve(CLI, '../../lib/daemon/registry.js'))) as typeof import('../../lib/daemon/registry.js')
  const rec = reg.readRecord(m.mnt)
  return !!rec && reg.isAlive(rec.pid)
}

const NAME255 = 'n'.repeat(255)
const SEG = 'p'.repeat(200)

describe.skipIf(fuseUnavailable())('hostile layers', () => {
  const mountIt = useMount()

  it('symlinks out of the branch are copied up as links, never followed: the canary outside sees no event', async () => {
    let outside = ''
    const m = await mountIt({ A: {}, B: {}, C: { x: 'C x\n', y: 'C y\n' } }, {
      spec: 'A=rw:B=ro:C=ro',
      prepare: (fx) => {
        outside = fx.dir('outside')
        fs.mkdirSync(`${outside}/dir`, { recursive: true })
        fs.writeFileSync(`${outside}/canary`, 'secret\n')
        const B = fx.dir('B')
        fs.symlinkSync('/', `${B}/root`)
        fs.symlinkSync('..', `${B}/up`)
        fs.symlinkSync('../outside/canary', `${B}/upup`)
        fs.symlinkSync(`${outside}/canary`, `${B}/abs`)
        fs.symlinkSync(`${outside}/dir`, `${B}/absdir`)
        fs.mkdirSync(`${B}/d`)
        fs.symlinkSync('../../outside', `${B}/d/esc`)
        fs.writeFileSync(`${B}/.wh...`, '')
        fs.writeFileSync(`${B}/.wh.`, '')
        fs.writeFileSync(`${B}/x`, 'B x\n')
        fs.writeFileSync(`${B}/.wh.x`, '')
        fs.writeFileSync(`${B}/.wh.y`, '')
      },
    })
    await run('setfattr', ['-n', 'user.canary', '-v', 'secret', `${outside}/canary`])
    fs.utimesSync(`${outside}/canary`, 1000, 2000)
    const outsideHash = hashTree(outside)
    const w = await watch(m.root, [outside, `${outside}/canary`, `${outside}/dir`])
    // '.wh...' and '.wh.' mean nothing; '.wh.x' does not hide B's own x; '.wh.y' hides C's y.
    expect(await m.ok('ls -a mnt')).toBe('.\n..\nabs\nabsdir\nd\nroot\nup\nupup\nx\n')
    expect(await m.ok('cat mnt/x')).toBe('B x\n')
    expect(await m.errnos(["os.stat('mnt/y')", "os.stat('mnt/.wh.x')", "os.stat('mnt/.wh...')", "open('mnt/.wh.z', 'w')"])).toEqual(['ENOENT', 'ENOENT', 'ENOENT', 'EINVAL'])
    // Operations on the links themselves (no follow): copy-up of a symlink copies the link.
    await m.ok('touch -h mnt/abs mnt/root mnt/up mnt/upup mnt/d/esc && chown -h 1:1 mnt/absdir')
    await m.ok('setfattr -h -n trusted.t -v 1 mnt/abs')
    expect(await m.ok('getfattr -h -d -m - mnt/abs mnt/upup 2>&1 | grep -c secret || true')).toBe('0\n')
    await m.ok('mv mnt/abs mnt/abs2 && ln mnt/upup mnt/upup-hard && rm mnt/absdir && cp -a mnt/. copy/')
    expect(await m.ok('readlink mnt/abs2 mnt/upup-hard mnt/root mnt/up mnt/d/esc')).toBe(`${outside}/canary\n../outside/canary\n/\n..\n../../outside\n`)
    const events = await w.stop()
    expect(events, 'the daemon touched something outside its branches').toEqual([])
    expect(hashTree(outside)).toBe(outsideHash)
    expect(fs.lstatSync(`${m.dir('A')}/abs2`).isSymbolicLink()).toBe(true)
    expect(fs.readlinkSync(`${m.dir('A')}/d/esc`)).toBe('../../outside')
    expect(await daemonAlive(m)).toBe(true)
  })

  it('odd names: newlines, bytes that are not UTF-8 (EILSEQ), 255 bytes, ~4 KiB paths, 1000 levels', async () => {
    // hashTree reads names as UTF-8: B is checked with find(1) instead, which keeps the bytes.
    const state = (B: string) => run('sh', ['-c', `find '${B}' -printf '%P %y %s %m %T@ %C@\\n' | sort | sha256sum`])
    const m = await mountIt({ A: {}, B: {} }, {
      ro: [],
      prepare: (fx) => {
        const B = fx.dir('B')
        fs.writeFileSync(`${B}/new\nline`, 'nl\n')
        fs.writeFileSync(Buffer.from(`${B}/bad\xff`, 'latin1'), 'bad\n')
        fs.writeFileSync(`${B}/${NAME255}`, '255\n')
        let long = `${B}/long`
        for (let i = 0; i < 19; i++) long += '/' + SEG // ~3.8 KiB below the mount
        fs.mkdirSync(long, { recursive: true })
        fs.writeFileSync(`${long}/leaf`, 'long\n')
        fs.mkdirSync(`${B}/deep/` + Array(1000).fill('d').join('/'), { recursive: true })
        fs.writeFileSync(`${B}/deep/` + Array(1000).fill('d').join('/') + '/leaf', 'deep\n')
      },
    })
    const before = (await state(m.dir('B'))).stdout
    // Newlines: listed, read, copied up, deleted.
    expect(await m.ok("python3 -c \"import os; print(sorted(os.listdir(b'mnt')))\"")).toBe(`[b'deep', b'long', b'new\\nline', b'n${'n'.repeat(254)}']\n`)
    await m.ok("printf more >> 'mnt/new\nline' && cat 'mnt/new\nline' > /dev/null")
    expect(await m.ok("cat 'mnt/new\nline'")).toBe('nl\nmore')
    // Not UTF-8: such a name cannot be passed through (fuse-native decodes paths as UTF-8), so
    // it is not listed and cannot be created: EILSEQ, never a lossy name that two could share.
    expect(await m.errnos([
      "open(b'mnt/new\\xfe', 'w')", "os.mkdir(b'mnt/dir\\xfe')", "os.rename(b'mnt/new\\nline', b'mnt/x\\xfe')", "os.stat(b'mnt/bad\\xff')",
    ])).toEqual(['EILSEQ', 'EILSEQ', 'EILSEQ', 'ENOENT'])
    // 255-byte names work; 256 bytes is ENAMETOOLONG.
    await m.ok(`echo more >> mnt/${NAME255} && echo new > mnt/${'m'.repeat(255)}`)
    expect(await m.ok(`cat mnt/${NAME255} mnt/${'m'.repeat(255)}`)).toBe('255\nmore\nnew\n')
    expect(await m.errnos([`open('mnt/${'o'.repeat(256)}', 'w')`, `os.stat('mnt/${'o'.repeat(256)}')`])).toEqual(['ENAMETOOLONG', 'ENAMETOOLONG'])
    // A lower name over 251 bytes has no '.wh.' marker that fits in 255: deleting it is refused
    // (ENAMETOOLONG) and changes nothing; a name made only in the rw branch deletes normally.
    expect(await m.errnos([`os.unlink('mnt/${NAME255}')`, `os.unlink('mnt/${'m'.repeat(255)}')`])).toEqual(['ENAMETOOLONG', 'OK'])
    expect(await m.ok(`cat mnt/${NAME255}`)).toBe('255\nmore\n')
    // A ~3.8 KiB path below the mount: read and copied up (with all its parents), via dir fds.
    const walkTo = `fd = os.open('mnt/long', os.O_RDONLY)\nfor i in range(19):\n    fd = os.open('${SEG}', os.O_RDONLY, dir_fd=fd)\n`
    expect(await m.ok(`python3 -c "import os\n${walkTo}f = os.open('leaf', os.O_RDWR | os.O_APPEND, dir_fd=fd); os.write(f, b'more\\n'); os.lseek(f, 0, 0); print(os.read(f, 100).decode(), end='')"`)).toBe('long\nmore\n')
    expect(await m.errno(`exec("${walkTo.replace(/\n/g, '\\n')}os.mkdir('${'q'.repeat(255)}', dir_fd=fd)")`)).toBe('ENAMETOOLONG')
    // 1000 levels: listed, copied up through 1000 parents, removed.
    expect(await m.ok('find mnt/deep | wc -l')).toBe('1002\n')
    const leaf = 'mnt/deep/' + Array(1000).fill('d').join('/') + '/leaf'
    await m.ok(`echo more >> ${leaf}`)
    expect(await m.ok(`cat ${leaf}`)).toBe('deep\nmore\n')
    await m.ok('rm -rf mnt/deep')
    expect(await m.ok('ls mnt | grep -c deep || true')).toBe('0\n')
    expect(await daemonAlive(m)).toBe(true)
    await m.unmount()
    expect((await state(m.dir('B'))).stdout).toBe(before)
  })

  it('a directory with 100k entries lists, deletes and renames one entry correctly', async () => {
    const m = await mountIt({ A: {}, B: {} }, {
      prepare: (fx) => {
        fs.mkdirSync(`${fx.dir('B')}/many`)
        for (let i = 0; i < 100_000; i++) fs.writeFileSync(`${fx.dir('B')}/many/f${i}`, '')
      },
    })
    expect(await m.ok('ls -f mnt/many | wc -l')).toBe('100002\n')
    await m.ok('rm mnt/many/f5 && mv mnt/many/f6 mnt/many/g6 && touch mnt/many/h')
    expect(await m.ok('ls -f mnt/many | wc -l; ls mnt/many | grep -x -e f5 -e f6 -e g6 -e h')).toBe('100002\ng6\nh\n')
    expect(await daemonAlive(m)).toBe(true)
  })

  it('allow_other: nobody cannot read a root-only file, nor escalate through setuid files or copy-up', async () => {
    const m = await mountIt({ A: {}, B: { public: 'public\n', secret: 'secret\n', shared: {} } }, {
      prepare: (fx) => {
        fs.chmodSync(fx.root, 0o755)
        const B = fx.dir('B')
        fs.chmodSync(`${B}/secret`, 0o600)
        fs.chmodSync(`${B}/shared`, 0o777)
        fs.copyFileSync('/usr/bin/id', `${B}/suid-id`)
        fs.chmodSync(`${B}/suid-id`, 0o4755)
        fs.writeFileSync(`${B}/wsuid`, 'x\n')
        fs.chmodSync(`${B}/wsuid`, 0o6777)
      },
    })
    const nobody = (script: string) => m.sh(`setpriv --reuid=65534 --regid=65534 --clear-groups sh -c '${script}'`)
    expect((await nobody('cat mnt/public')).stdout).toBe('public\n')
    const denied = await nobody('cat mnt/secret')
    expect(denied.code).not.toBe(0)
    expect(denied.stderr).toMatch(/Permission denied/)
    expect((await nobody('echo x >> mnt/secret')).stderr).toMatch(/Permission denied/)
    // The mount is nosuid: a setuid-root program runs with the caller's uid.
    expect((await nobody('mnt/suid-id -u')).stdout).toBe('65534\n')
    // Writing to a world-writable setuid/setgid file clears both bits (the kernel's killpriv,
    // as on any file system and overlayfs): the rw copy is not a setuid-root program.
    await nobody('echo more >> mnt/wsuid')
    expect(await m.ok('stat -c %a mnt/wsuid')).toBe('777\n')
    // Nothing was copied up for the refused writes.
    expect(fs.existsSync(`${m.dir('A')}/secret`)).toBe(false)
    if (NATIVE) {
      // The native transport knows the caller: what nobody creates is nobody's, as on any file
      // system (so setid bits nobody asks for make at most a setuid-nobody program).
      expect((await nobody('echo mine > mnt/shared/mine && stat -c "%u %g" mnt/shared/mine')).stdout).toBe('65534 65534\n')
      expect((await nobody('chmod u+s mnt/shared/mine && stat -c %a mnt/shared/mine')).stdout).toBe('4644\n')
      await nobody('python3 -c "import os; os.close(os.open(\\"mnt/shared/s\\", os.O_CREAT | os.O_WRONLY, 0o6755)); os.mkdir(\\"mnt/shared/d\\"); os.symlink(\\"s\\", \\"mnt/shared/l\\")"')
      expect(await m.ok('stat -c "%u %g %a" mnt/shared/s mnt/shared/d; stat -c "%u %g" mnt/shared/l')).toBe('65534 65534 6755\n65534 65534 755\n65534 65534\n')
      await m.unmount()
      const st = fs.statSync(`${m.dir('A')}/shared/s`)
      expect([st.uid, st.gid, st.mode & 0o7777]).toEqual([65534, 65534, 0o6755])
      expect(fs.statSync(`${m.dir('A')}/wsuid`).mode & 0o7777).toBe(0o777)
      return
    }
    // Known limit of fuse-native (docs/reliability.md): it cannot tell the daemon the caller's
    // uid, so a file nobody creates belongs to root; nobody then cannot chmod it (EPERM), and
    // setuid bits asked for at creation are dropped, so it can never become a setuid-root program.
    expect((await nobody('echo mine > mnt/shared/mine && stat -c %u mnt/shared/mine')).stdout).toBe('0\n')
    expect((await nobody('chmod u+s mnt/shared/mine')).stderr).toMatch(/Operation not permitted/)
    await nobody('python3 -c "import os; os.close(os.open(\\"mnt/shared/s\\", os.O_CREAT | os.O_WRONLY, 0o6755))"')
    expect(await m.ok('stat -c "%u %a" mnt/shared/s')).toBe('0 755\n')
    await m.unmount()
    expect(fs.statSync(`${m.dir('A')}/shared/s`).mode & 0o7777).toBe(0o755)
    expect(fs.statSync(`${m.dir('A')}/wsuid`).mode & 0o7777).toBe(0o777)
  })
})
