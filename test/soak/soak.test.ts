// Issue 7 §5, soak mode (npm run test:soak; not in the default run): a mixed workload through a
// mount for LAYERFS_SOAK_SECONDS (default 60), 8 processes over LAYERFS_SOAK_NAMES (default 200)
// names each per directory, with the daemon's VmRSS and open
// descriptors sampled every LAYERFS_SOAK_SAMPLE_SECONDS (default 5). Reports operations done,
// errors by errno and memory over time (stdout and LAYERFS_SOAK_REPORT, a JSON file); fails on
// an unexpected errno, a daemon crash, descriptors not given back, or memory that keeps growing.
import * as fs from 'node:fs'
import * as path from 'node:path'
import { describe, expect, it } from 'vitest'
import { fuseUnavailable, CLI, run } from '../helpers/mount.js'
import { useMount } from '../helpers/union.js'

const SECONDS = Number(process.env.LAYERFS_SOAK_SECONDS ?? 60)
const SAMPLE = Number(process.env.LAYERFS_SOAK_SAMPLE_SECONDS ?? 5)
const WORKERS = 8
/** Names each worker creates per directory: the namespace, so how full the daemon's caches get. */
const NAMES = Number(process.env.LAYERFS_SOAK_NAMES ?? 200)

const WORKER = `
import os, sys, json, errno, random, time
i, deadline, names = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
rng = random.Random(i)
ops, errs, k = 0, {}, 0
ALLOWED = {'ENOENT', 'EEXIST', 'ENOTEMPTY', 'ENOTDIR', 'EISDIR'}
def name():
    d = 'mnt/d%d' % rng.randrange(10)
    return d + '/' + rng.choice(['f%d' % rng.randrange(40), 'w%d-%d' % (i, rng.randrange(names)), 'x%d' % rng.randrange(10)])
while time.time() < deadline:
    a, b = name(), name(); k += 1
    op = rng.choice(['create', 'create', 'append', 'read', 'read', 'stat', 'list', 'rename', 'unlink', 'mkdir', 'rmdir', 'chmod', 'truncate'])
    try:
        if op == 'create':
            with open(a, 'wb') as f: f.write(os.urandom(rng.choice([10, 4096, 70000])))
        elif op == 'append':
            with open(a, 'ab') as f: f.write(b'more')
        elif op == 'read':
            with open(a, 'rb') as f: f.read()
        elif op == 'stat': os.lstat(a)
        elif op == 'list': os.listdir(os.path.dirname(a))
        elif op == 'rename': os.rename(a, b)
        elif op == 'unlink': os.unlink(a)
        elif op == 'mkdir': os.mkdir(a)
        elif op == 'rmdir': os.rmdir(a)
        elif op == 'chmod': os.chmod(a, 0o640)
        elif op == 'truncate': os.truncate(a, 100)
        ops += 1
    except OSError as x:
        n = errno.errorcode.get(x.errno, str(x.errno))
        if n not in ALLOWED: print(json.dumps({'unexpected': n, 'op': op, 'path': a}), file=sys.stderr)
        errs[n] = errs.get(n, 0) + 1
print(json.dumps({'ops': ops, 'errors': errs}))
`

function sampleDaemon(pid: number): { rssKiB: number; fds: number } | undefined {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8')
    const rssKiB = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN)
    return { rssKiB, fds: fs.readdirSync(`/proc/${pid}/fd`).length }
  } catch {
    return undefined
  }
}

describe.skipIf(fuseUnavailable())('soak', () => {
  const mountIt = useMount()

  it(`mixed workload for ${SECONDS} s: no crash, no unexpected errno, bounded memory and descriptors`, async () => {
    const lower = Object.fromEntries(Array.from({ length: 10 }, (_, d) => [`d${d}`, Object.fromEntries(Array.from({ length: 40 }, (_, f) => [`f${f}`, `lower ${d}/${f}\n`.repeat(100)]))]))
    const m = await mountIt({ A: {}, B: lower })
    const reg = (await import(path.resolve(CLI, '../../lib/daemon/registry.js'))) as typeof import('../../lib/daemon/registry.js')
    const pid = reg.readRecord(m.mnt)!.pid
    const base = sampleDaemon(pid)!
    const t0 = Date.now()
    const samples: { t: number; rssKiB: number; fds: number }[] = [{ t: 0, ...base }]
    const timer = setInterval(() => {
      const s = sampleDaemon(pid)
      if (s) samples.push({ t: Math.round((Date.now() - t0) / 1000), ...s })
    }, SAMPLE * 1000)
    const deadline = Date.now() / 1000 + SECONDS
    const results = await Promise.all(Array.from({ length: WORKERS }, (_, i) =>
      run('python3', ['-c', WORKER, String(i), String(deadline), String(NAMES)], { cwd: m.root, timeoutMs: (SECONDS + 120) * 1000 })))
    clearInterval(timer)
    const end = sampleDaemon(pid)
    const outs = results.map((r) => JSON.parse(r.stdout || '{}') as { ops: number; errors: Record<string, number> })
    const ops = outs.reduce((s, o) => s + (o.ops ?? 0), 0)
    const errors: Record<string, number> = {}
    for (const o of outs) for (const [k, v] of Object.entries(o.errors ?? {})) errors[k] = (errors[k] ?? 0) + v
    const report = { seconds: SECONDS, workers: WORKERS, ops, opsPerSecond: Math.round(ops / SECONDS), errors, samples, end }
    process.stdout.write(`soak: ${JSON.stringify(report)}\n`)
    if (process.env.LAYERFS_SOAK_REPORT) fs.writeFileSync(process.env.LAYERFS_SOAK_REPORT, JSON.stringify(report, null, 2) + '\n')
    for (const [i, r] of results.entries()) expect(r.code, `worker ${i}: ${r.stderr}`).toBe(0)
    expect(results.map((r) => r.stderr).join(''), 'unexpected errnos').toBe('')
    expect(end, 'the daemon died').toBeDefined()
    expect(ops).toBeGreaterThan(0)
    // Every handle was given back: the daemon holds no more descriptors than when idle.
    expect(end!.fds).toBeLessThanOrEqual(base.fds + 2)
    // Bounded memory: the second half of the run does not grow past the first half's peak by
    // more than 25% + 32 MiB (caches are LRU-bounded; steady state is reached early).
    if (samples.length >= 4) {
      const half = Math.floor(samples.length / 2)
      const firstPeak = Math.max(...samples.slice(0, half).map((s) => s.rssKiB))
      const lastPeak = Math.max(...samples.slice(half).map((s) => s.rssKiB), end!.rssKiB)
      expect(lastPeak, `RSS grew from ${firstPeak} KiB to ${lastPeak} KiB`).toBeLessThanOrEqual(firstPeak * 1.25 + 32 * 1024)
    }
  })
})
