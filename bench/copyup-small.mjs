// Copy-ups apart from the full bench: lower files of SIZE KiB (default 4: 400 files in 40 dirs;
// larger sizes: as many as make 32 MiB, at least 8, so that the copies' dirty pages do not meet
// the kernel's writeback throttling), one open(O_WRONLY) + pwrite of 4 KiB each,
// timed in one python3 loop (a process per file, as the probe would be, adds its own start-up
// noise to every sample), through layerfs (native), fuse-overlayfs and kernel overlayfs (or the
// comma-separated SYSTEMS; with LAYERFS_BENCH_VARIANT=KEY=VAL also 'layerfs-variant', an A/B),
// ROUNDS rounds interleaved (default 3). CACHE 'warm' (default) reads the lower files into the
// page cache before the loop, as in a warm image; 'cold' drops the page cache instead, as the
// suite's copy-up rows find the files. Each mount gets
// fresh dirs. They stay under the cache until the next run, which deletes them and then waits
// 65 s: on ext4 without a journal, creates right after many deletions are slower for everyone
// (docs/benchmarks.md, "Deletions wait for the end of the run"). Root, under the FUSE lock:
//   flock /tmp/layerfs-fuse.lock node bench/copyup-small.mjs [ROUNDS] [SIZE_KIB] [SYSTEMS] [warm|cold]
import { randomBytes } from 'node:crypto'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { SYSTEMS, isMounted, run } from './systems.mjs'

const CACHE = process.env.LAYERFS_BENCH_CACHE ?? '/var/tmp/layerfs-bench'
const ROUNDS = Number(process.argv[2] ?? 3)
const KIB = Number(process.argv[3] ?? 4)
const ROOT = path.join(CACHE, KIB === 4 ? 'copyup-small' : `copyup-${KIB}k`)
const asked = process.argv[4]?.split(',') ?? ['layerfs', ...(SYSTEMS['layerfs-variant'] ? ['layerfs-variant'] : []), 'fuse-overlayfs', 'overlayfs']
for (const n of asked) if (!SYSTEMS[n]) throw new Error(`unknown system '${n}' (${Object.keys(SYSTEMS).join(', ')})`)
const NAMES = asked.filter((n) => SYSTEMS[n].available())
const COLD = process.argv[5] === 'cold'
if (process.argv[5] !== undefined && !COLD && process.argv[5] !== 'warm') throw new Error(`'${process.argv[5]}': warm or cold`)

const COUNT = KIB === 4 ? 400 : Math.max(8, Math.floor(32 * 1024 / KIB))
const DIRS = Math.ceil(COUNT / 10)
const files = []
for (let d = 0; d < DIRS; d++) for (let i = 0; i < 10 && files.length < COUNT; i++) files.push(`/a/b${d % 5}/c${d}/f${i}.bin`)
const layers = { top: `${ROOT}/top`, middle: `${ROOT}/middle`, base: `${ROOT}/base`, middleOvl: `${ROOT}/middle`, middleUnionfs: `${ROOT}/middle` }
if (!fs.existsSync(`${ROOT}/ready`)) {
  for (const d of [layers.top, layers.middle]) fs.mkdirSync(d, { recursive: true })
  for (const f of files) {
    fs.mkdirSync(path.dirname(layers.base + f), { recursive: true })
    fs.writeFileSync(layers.base + f, randomBytes(KIB * 1024))
  }
  fs.writeFileSync(`${ROOT}/ready`, '')
}

// Times open(O_WRONLY) + pwrite(4 KiB at 0) per file (argv: the lower root, the mount, then the
// files); checks the data (4 KiB written, the rest the lower file's); one JSON list of ms out.
const LOOP = `
import json, os, sys, time
buf = b'W' * 4096
lower, mnt, files = sys.argv[1], sys.argv[2], sys.argv[3:]
ms = []
for f in [mnt + f for f in files]:
    t0 = time.perf_counter_ns()
    fd = os.open(f, os.O_WRONLY)
    os.pwrite(fd, buf, 0)
    t1 = time.perf_counter_ns()
    os.close(fd)
    ms.append((t1 - t0) / 1e6)
for f in files:
    with open(mnt + f, 'rb') as r, open(lower + f, 'rb') as l:
        if r.read() != buf + l.read()[4096:]: sys.exit('wrong data in ' + f)
print(json.dumps(ms))
`

const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1]
const runs = path.join(ROOT, 'runs')
if (fs.existsSync(runs)) {
  process.stderr.write('removing the previous run\'s files, then waiting 65 s (ext4 inode reuse)\n')
  fs.rmSync(runs, { recursive: true, force: true })
  await new Promise((r) => setTimeout(r, 65_000))
}
const results = Object.fromEntries(NAMES.map((n) => [n, { median: [], first: [] }]))
try {
  for (let r = 0; r < ROUNDS; r++) {
    for (const name of NAMES.map((_, i) => NAMES[(i + r) % NAMES.length])) {
      const base = path.join(runs, `${name}-${r}`)
      const ctx = { layers, upper: `${base}/upper`, work: `${base}/work`, mnt: `${base}/mnt`, log: `${base}.log` }
      for (const d of [ctx.upper, ctx.work, ctx.mnt]) fs.mkdirSync(d, { recursive: true })
      const st = await SYSTEMS[name].mount(ctx)
      try {
        if (!COLD) for (const f of files) fs.readFileSync(layers.base + f) // lower data in the page cache, as in a warm image
        await run('find', [ctx.mnt])
        await run('sync', []) // the previous mount's copies written back: none of their writeback in this one's time
        if (COLD) fs.writeFileSync('/proc/sys/vm/drop_caches', '1') // page cache only: the lookups stay cached
        const out = await run('python3', ['-c', LOOP, layers.base, ctx.mnt, ...files])
        if (out.code !== 0) throw new Error(`${name}: ${out.stderr}`)
        const ms = JSON.parse(out.stdout)
        for (const f of files) {
          if (!fs.readFileSync(layers.base + f).some((c) => c !== 0x57)) throw new Error(`${name} wrote into the lower file ${f}`)
        }
        results[name].first.push(ms[0])
        results[name].median.push(median(ms))
      } finally {
        await SYSTEMS[name].unmount(ctx, st)
        if (isMounted(ctx.mnt)) throw new Error(`${ctx.mnt} is still mounted`)
      }
    }
  }
} finally {
  for (const n of NAMES) for (let r = 0; r < ROUNDS; r++) if (isMounted(path.join(runs, `${n}-${r}`, 'mnt'))) await run('umount', ['-l', path.join(runs, `${n}-${r}`, 'mnt')])
}
const fmt = (xs) => `${median(xs).toFixed(3)} [${Math.min(...xs).toFixed(3)}–${Math.max(...xs).toFixed(3)}]`
process.stdout.write(`| system | median per file, ms (median of ${ROUNDS} rounds [min–max]${COLD ? ', lower files not cached' : ''}) | first file, ms |\n|---|--:|--:|\n`)
for (const n of NAMES) process.stdout.write(`| ${SYSTEMS[n].label} | ${fmt(results[n].median)} | ${fmt(results[n].first)} |\n`)
