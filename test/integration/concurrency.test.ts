// Issue 7 §3: many processes at once on overlapping paths. Racing copy-ups of one lower file
// copy it once and lose no acknowledged write; rename against unlink of one name ends in one
// of the serial outcomes; a mixed random workload of 16 processes finishes (every operation
// within a bound), the daemon survives, and the end state is one a serial run could produce:
// every file holds one complete write, and the rw branch applied as an OCI layer over the
// lower gives exactly the merged view.
import * as fs from 'node:fs'
import * as path from 'node:path'
import { describe, expect, it } from 'vitest'
import { snapshot } from '../helpers/fixture.js'
import { CLI, fuseUnavailable, run } from '../helpers/mount.js'
import { ociApply, useMount, type Mounted } from '../helpers/union.js'

const WORKERS = 16
const REC = 4096

/** Starts `n` python3 workers running SCRIPT (argv: id, args…) released together; their JSON outputs. */
async function workers(m: Mounted, n: number, script: string, args: (i: number) => string[], timeoutMs = 45_000): Promise<any[]> {
  const go = path.join(m.root, `go-${Date.now()}`)
  const prelude = `
import os, sys, json, errno, time
def e(x): return errno.errorcode.get(x.errno, str(x.errno))
while not os.path.exists(${JSON.stringify(go)}): time.sleep(0.002)
`
  const runs = Array.from({ length: n }, (_, i) => run('python3', ['-c', prelude + script, String(i), ...args(i)], { cwd: m.root, timeoutMs }))
  await new Promise((r) => setTimeout(r, 300)) // let them all start, then release them at once
  fs.writeFileSync(go, '')
  const results = await Promise.all(runs)
  for (const [i, r] of results.entries()) {
    if (r.code !== 0) throw new Error(`worker ${i} failed or hung (${r.code}): ${r.stderr}`)
  }
  return results.map((r) => JSON.parse(r.stdout))
}

async function daemonAlive(m: Mounted): Promise<boolean> {
  const reg = (await import(path.resolve(CLI, '../../lib/daemon/registry.js'))) as typeof import('../../lib/daemon/registry.js')
  const rec = reg.readRecord(m.mnt)
  return !!rec && reg.isAlive(rec.pid)
}

describe.skipIf(fuseUnavailable())('concurrency: 16 processes on overlapping paths', () => {
  const mountIt = useMount()

  it('16 writers racing on the copy-up of one lower file: copied once, every acknowledged write kept', async () => {
    // The last one is over 8 MiB: always copied on a worker (copyUpSingle), while the other opens wait.
    const lowers = [24, 24, 24, 2400].map((n) => Buffer.alloc(n * REC, 'lower!'))
    const m = await mountIt({ A: {}, B: { d: {} } }, { prepare: (fx) => { for (let f = 0; f < 4; f++) fs.writeFileSync(`${fx.dir('B')}/d/shared${f}`, lowers[f]!) } })
    for (let f = 0; f < 4; f++) {
      const acks = await workers(m, WORKERS, `
i = int(sys.argv[1])
fd = os.open('mnt/d/shared${f}', os.O_RDWR)
os.pwrite(fd, (('W%02d' % i) * ${REC})[:${REC}].encode(), i * ${REC})
os.fsync(fd)
os.close(fd)
print(json.dumps('ack'))`, () => [])
      expect(acks).toEqual(Array(WORKERS).fill('ack'))
    }
    await m.unmount()
    for (let f = 0; f < 4; f++) {
      const got = fs.readFileSync(`${m.dir('A')}/d/shared${f}`)
      const lower = lowers[f]!
      expect(got.length).toBe(lower.length)
      for (let i = 0; i < WORKERS; i++) {
        expect(got.subarray(i * REC, (i + 1) * REC).toString(), `write of worker ${i} to shared${f}`).toBe(`W${String(i).padStart(2, '0')}`.repeat(REC).slice(0, REC))
      }
      expect(got.subarray(WORKERS * REC).equals(lower.subarray(WORKERS * REC))).toBe(true)
    }
    expect(fs.readdirSync(`${m.dir('A')}/d`).sort()).toEqual(['shared0', 'shared1', 'shared2', 'shared3'])
  })

  it('rename against unlink of one name, and 16 renames of one name: only serial outcomes', async () => {
    const lowerFiles = Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`x${i}`, `lower ${i}\n`]))
    const m = await mountIt({ A: {}, B: { ...lowerFiles, one: 'the one\n', dir: { a: 'a\n', sub: { b: 'b\n' } } } })
    // Pairs: even workers rename x_k to y_k, odd ones unlink x_k (k = i >> 1), for k in 0..7;
    // then the same with rename of a directory against rmdir-free unlink attempts on it.
    const res = await workers(m, WORKERS, `
i = int(sys.argv[1]); k = i >> 1
try:
    if i % 2 == 0: os.rename('mnt/x%d' % k, 'mnt/y%d' % k)
    else: os.unlink('mnt/x%d' % k)
    print(json.dumps('OK'))
except OSError as x:
    print(json.dumps(e(x)))`, () => [])
    for (let k = 0; k < 8; k++) {
      const [rn, ul] = [res[2 * k], res[2 * k + 1]]
      const view = await m.ok(`ls mnt | grep -x -e x${k} -e y${k} || true; cat mnt/y${k} 2>/dev/null || true`)
      if (rn === 'OK' && ul === 'ENOENT') expect(view, `pair ${k}`).toBe(`y${k}\nlower ${k}\n`)
      else if (rn === 'ENOENT' && ul === 'OK') expect(view, `pair ${k}`).toBe('')
      else throw new Error(`pair ${k}: rename ${rn}, unlink ${ul}: no serial order gives this`)
    }
    // 16 processes rename the same lower file to 16 names: one wins, the others get ENOENT.
    const one = await workers(m, WORKERS, `
i = int(sys.argv[1])
try:
    os.rename('mnt/one', 'mnt/one-%d' % i); print(json.dumps('OK'))
except OSError as x:
    print(json.dumps(e(x)))`, () => [])
    expect(one.filter((r) => r === 'OK')).toHaveLength(1)
    expect(one.filter((r) => r !== 'OK')).toEqual(Array(WORKERS - 1).fill('ENOENT'))
    const winner = one.indexOf('OK')
    expect(await m.ok('ls mnt | grep one; cat mnt/one-*')).toBe(`one-${winner}\nthe one\n`)
    // 16 processes rename the same lower directory: one wins with the whole merged tree.
    const dir = await workers(m, WORKERS, `
i = int(sys.argv[1])
try:
    os.rename('mnt/dir', 'mnt/dir-%d' % i); print(json.dumps('OK'))
except OSError as x:
    print(json.dumps(e(x)))`, () => [])
    expect(dir.filter((r) => r === 'OK')).toHaveLength(1)
    expect(dir.filter((r) => r !== 'OK')).toEqual(Array(WORKERS - 1).fill('ENOENT'))
    expect(await m.ok(`cd mnt/dir-${dir.indexOf('OK')} && find . | sort && cat a sub/b; ls .. | grep -c dir`)).toBe('.\n./a\n./sub\n./sub/b\na\nb\n1\n')
    expect(await daemonAlive(m)).toBe(true)
  })

  it('16 processes × 150 random operations on 12 shared names: bounded, no crash, a serial-order end state', async () => {
    const names = ['n0', 'n1', 'n2', 'n3', 'd0/n4', 'd0/n5', 'd0/n6', 'd1/n7', 'd1/n8', 'd1/d2', 'd0/d3', 'n9']
    const lowerRec = (n: string): string => `L:${n}`.padEnd(REC, '.')
    const m = await mountIt({
      A: {},
      B: { n0: lowerRec('n0'), n2: lowerRec('n2'), d0: { n4: lowerRec('d0/n4'), d3: { deep: lowerRec('d0/d3/deep') } }, d1: { n7: lowerRec('d1/n7'), d2: {} } },
    })
    const out = await workers(m, WORKERS, `
import random
i = int(sys.argv[1]); names = json.loads(sys.argv[2]); rng = random.Random(i * 7919)
stats = {'ok': 0, 'errors': {}, 'max_ms': 0}
ALLOWED = {'ENOENT', 'EEXIST', 'ENOTEMPTY', 'ENOTDIR', 'EISDIR', 'EINVAL'}
for k in range(150):
    a = 'mnt/' + rng.choice(names); b = 'mnt/' + rng.choice(names)
    op = rng.choice(['write', 'write', 'rename', 'rename', 'unlink', 'mkdir', 'rmdir', 'chmod', 'stat', 'list', 'read', 'copyup'])
    t0 = time.monotonic()
    try:
        if op == 'write':
            fd = os.open(a, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try: os.write(fd, ('W%d.%d:' % (i, k)).ljust(${REC}, '.').encode()); os.fsync(fd)
            finally: os.close(fd)
        elif op == 'copyup':
            fd = os.open(a, os.O_RDWR)
            try: os.pwrite(fd, os.pread(fd, ${REC}, 0), 0)
            finally: os.close(fd)
        elif op == 'rename': os.rename(a, b)
        elif op == 'unlink': os.unlink(a)
        elif op == 'mkdir': os.mkdir(a)
        elif op == 'rmdir': os.rmdir(a)
        elif op == 'chmod': os.chmod(a, rng.choice([0o644, 0o600, 0o755]))
        elif op == 'stat': os.lstat(a)
        elif op == 'list': os.listdir(os.path.dirname(a))
        elif op == 'read':
            with open(a, 'rb') as f: f.read()
        stats['ok'] += 1
    except OSError as x:
        name = e(x)
        if name not in ALLOWED: raise
        stats['errors'][name] = stats['errors'].get(name, 0) + 1
    stats['max_ms'] = max(stats['max_ms'], int((time.monotonic() - t0) * 1000))
print(json.dumps(stats))`, () => [JSON.stringify(names)], 120_000)
    const ok = out.reduce((s, o) => s + o.ok, 0)
    process.stdout.write(`concurrency: ${ok} ops ok, errors ${JSON.stringify(out.map((o) => o.errors))}, slowest op ${Math.max(...out.map((o) => o.max_ms))} ms\n`)
    expect(ok).toBeGreaterThan(WORKERS * 20)
    expect(await daemonAlive(m)).toBe(true)
    // Every file holds one complete write (a worker's record or a lower file's content).
    const files = (await m.ok('cd mnt && find . -type f | sort')).split('\n').filter(Boolean)
    for (const f of files) {
      const c = await m.ok(`cat 'mnt/${f}'`)
      expect(c.length, f).toBe(REC)
      expect(c, f).toMatch(/^(W\d+\.\d+:|L:[a-z0-9/]+)\.*$/)
    }
    const view = await m.merged()
    await m.unmount()
    const applied = ociApply(path.join(m.root, 'applied'), [m.dir('A'), m.dir('B')])
    fs.rmSync(path.join(applied, '.wh..wh.layerfs.work'), { recursive: true, force: true })
    expect(snapshot(applied, { withMode: true })).toEqual(view)
  })
})
