// `mount --writeback-cache` (native transport): the kernel caches writes and sends them later.
// Through real mounts: writes are cached until close, every kind of write still lands right
// (partial pages of write-only opens, O_APPEND from two handles, mmap, truncation, a copy-up),
// a checkpoint flushes the cache first (CLI and API), and what cannot work with it is refused
// in one line.
import { spawn } from 'node:child_process'
import * as path from 'node:path'
import { beforeAll, describe, expect, it } from 'vitest'
import { cli, fuseUnavailable, isMounted, transportUnderTest } from '../helpers/mount.js'
import { useMount, type Mounted } from '../helpers/union.js'

const NATIVE = transportUnderTest() === 'native'
type Api = typeof import('../../dist/lib/index.js')
let api: Api

/**
 * A python3 process that holds `mnt/NAME` open and writes to it on command, so the file stays
 * open (its pages dirty) while the test acts from outside. Python runs no child in between: a
 * child's exec would close its copy of the descriptor, and that close makes the kernel flush.
 */
function holder(m: Mounted, name: string) {
  const py = spawn('python3', ['-u', '-c', `
import os, sys
fd = os.open('mnt/${name}', os.O_WRONLY | os.O_CREAT, 0o644)
for line in sys.stdin:
    cmd, _, arg = line.rstrip('\\n').partition(' ')
    if cmd == 'write': os.write(fd, arg.encode())
    elif cmd == 'close': os.close(fd)
    print('done', flush=True)
`], { cwd: m.root, stdio: ['pipe', 'pipe', 'inherit'] })
  let buf = ''
  const waiting: (() => void)[] = []
  py.stdout.on('data', (d: Buffer) => {
    buf += d.toString()
    while (buf.includes('done\n')) {
      buf = buf.slice(buf.indexOf('done\n') + 5)
      waiting.shift()?.()
    }
  })
  const exited = new Promise<void>((r) => py.once('exit', () => r()))
  const send = (line: string): Promise<void> => new Promise((resolve) => {
    waiting.push(resolve)
    py.stdin.write(line + '\n')
  })
  return {
    write: (s: string) => send(`write ${s}`),
    close: async () => {
      await send('close')
      py.stdin.end()
      await exited
    },
  }
}

describe.skipIf(fuseUnavailable() || !NATIVE)('the writeback cache (mount --writeback-cache)', () => {
  const mountIt = useMount()
  beforeAll(async () => {
    api = await import('../../dist/lib/index.js')
  })

  it('writes stay in the page cache until close and then reach the branch; status says so', async () => {
    const m = await mountIt({ A: {}, B: { f: 'lower\n' } }, { args: ['--writeback-cache'] })
    const st = JSON.parse((await cli(['status', 'mnt', '--json'], { cwd: m.root })).stdout)
    // The kernel passes no file through under the writeback cache: not asked for.
    expect(st.protocol).toMatchObject({ writebackCache: true, passthrough: false })
    expect((await cli(['status', 'mnt'], { cwd: m.root })).stdout).toMatch(/transport: native \(FUSE 7\.\d+, writeback cache, \d+ kernel nodes\)/)
    // One process, no child: the write returns with the data only in the kernel's cache.
    const out = await m.ok(`python3 -c "
import os
fd = os.open('mnt/new', os.O_WRONLY | os.O_CREAT, 0o644)
os.write(fd, b'cached')
a = os.stat('mnt/new').st_size, os.stat('A/new').st_size
os.close(fd)
print(a, os.stat('A/new').st_size, open('A/new').read())
"`)
    expect(out).toBe('(6, 0) 6 cached\n')
    // The lower file is copied up at open; the write reaches the copy at close.
    expect(await m.ok(`python3 -c "
import os
fd = os.open('mnt/f', os.O_RDWR)
os.write(fd, b'L')
a = open('A/f').read()
os.close(fd)
print(repr(a), repr(open('A/f').read()))
"`)).toBe("'lower\\n' 'Lower\\n'\n")
  })

  it('every kind of write lands right: partial pages of write-only opens, O_APPEND from two handles, mmap, truncation, times', async () => {
    const big = 'x'.repeat(10000) + '\n'
    const m = await mountIt({ A: {}, B: { big, g: 'abc', t: 'truncate me' } }, { args: ['--writeback-cache'] })
    const out = await m.ok(`python3 -c "
import os, mmap, time
# A write-only open of a lower file, one byte in the middle of its third page: the kernel reads
# the rest of the page through the handle (opened read-write in the branch for that).
fd = os.open('mnt/big', os.O_WRONLY)
os.pwrite(fd, b'Y', 9000)
os.close(fd)
# O_APPEND from two handles: the kernel places each write at the end it knows.
a = os.open('mnt/g', os.O_WRONLY | os.O_APPEND)
b = os.open('mnt/g', os.O_WRONLY | os.O_APPEND)
os.write(a, b'1'); os.write(b, b'2'); os.write(a, b'3')
print(os.fstat(a).st_size)
os.close(a); os.close(b)
# A shared mapping's writes, and a truncation.
fd = os.open('mnt/t', os.O_RDWR)
mm = mmap.mmap(fd, 0)
mm[0:1] = b'T'
mm.flush(); mm.close(); os.close(fd)
os.truncate('mnt/t', 4)
# The kernel keeps mtime itself and sends it at close: the branch gets the time of the write,
# not of the WRITE at close 0.3 s later (times travel to the branch at about a microsecond).
fd = os.open('mnt/m', os.O_WRONLY | os.O_CREAT, 0o644)
os.write(fd, b'm')
written = time.time()
time.sleep(0.3)
os.close(fd)
branch, merged = os.stat('A/m').st_mtime, os.stat('mnt/m').st_mtime
print(abs(branch - merged) < 0.01, branch < written + 0.1)
"`)
    expect(out).toBe('6\nTrue True\n')
    const expected = big.slice(0, 9000) + 'Y' + big.slice(9001)
    expect(await m.ok('cat mnt/big')).toBe(expected)
    expect(await m.ok('cat A/big')).toBe(expected)
    expect(await m.ok('cat mnt/g; echo; cat A/g; echo; cat mnt/t; echo; cat A/t')).toBe('abc123\nabc123\nTrun\nTrun')
    await m.unmount()
    // Remounted: the branch alone holds the answer.
    expect(await m.ok('cat A/big | md5sum')).toBe(await m.ok(`printf '%s' '${expected}' | md5sum`))
  })

  it('a checkpoint first flushes the cached writes into the layer it seals (CLI, then API)', async () => {
    const m = await mountIt({ A: {}, B: {} }, { args: ['--writeback-cache'] })
    const h = holder(m, 'h')
    await h.write('before')
    expect(await m.ok('stat -c %s A/h')).toBe('0\n') // still in the kernel's cache
    const r = await cli(['checkpoint', 'mnt', '--to', 'S1'], { cwd: m.root })
    expect(r.code, r.stderr).toBe(0)
    await h.write('-after')
    await h.close()
    expect(await m.ok('cat S1/h; echo; cat A/h; echo; cat mnt/h')).toBe('before\nbefore-after\nbefore-after')
    const h2 = holder(m, 'h2')
    await h2.write('api')
    await api.checkpoint(m.mnt, { to: path.join(m.root, 'S2') })
    await h2.close()
    expect(await m.ok('cat S2/h2; echo; cat mnt/h2')).toBe('api\napi')
  })

  it('branch add and remove are refused (the kernel keeps its own file sizes); bad combinations are one line and mount nothing', async () => {
    const m = await mountIt({ A: {}, B: { f: 'b' }, C: { f: 'c' } }, { spec: 'A=rw:B=ro', args: ['--writeback-cache'] })
    for (const args of [['branch', 'add', 'mnt', 'C'], ['branch', 'remove', 'mnt', '1']]) {
      const r = await cli(args, { cwd: m.root })
      expect(r.code).toBe(1)
      expect(r.stderr).toMatch(/^layerfs: cannot (add|remove) a branch on a mount with the writeback cache: the kernel keeps its own file sizes \(remount without --writeback-cache\)\n$/)
    }
    expect(await m.ok('cat mnt/f')).toBe('b')
    await m.unmount()
    for (const [args, err] of [
      [['--coherent'], '--writeback-cache and --coherent exclude each other: with the writeback cache the kernel keeps file sizes and times itself'],
      [['--revalidate', '2'], '--writeback-cache and --revalidate exclude each other: the kernel would never take a changed file size from the branches'],
      [['--transport', 'fuse-native'], 'the writeback cache needs the native transport (--transport native)'],
      [['--passthrough'], '--writeback-cache and --passthrough exclude each other: the kernel passes no file through under the writeback cache'],
    ] as const) {
      const bad = await cli(['mount', '--writeback-cache', ...args, 'A=rw:B=ro', 'mnt'], { cwd: m.root })
      expect([bad.code, bad.stderr]).toEqual([1, `layerfs: ${err}\n`])
      expect(isMounted(m.mnt)).toBe(false)
    }
    // From the API: the option, and the same refusal.
    const mounted = await api.mount(`${m.dir('A')}:${m.dir('B')}`, m.mnt, { writebackCache: true })
    try {
      expect((await api.mountStatus(m.mnt))[0]!.protocol?.writebackCache).toBe(true)
      await expect(api.addBranch(m.mnt, m.dir('C'))).rejects.toThrow(/writeback cache/)
    } finally {
      await mounted.unmount()
    }
    await expect(api.mount(`${m.dir('A')}:${m.dir('B')}`, m.mnt, { writebackCache: true, coherent: true })).rejects.toThrow('--writeback-cache and --coherent exclude each other')
    expect(isMounted(m.mnt)).toBe(false)
  })
})
