// Cold lookups or readdir, per system, with the disk reads they cause: mount on the full
// fixture, sync, drop caches, run the probe over the bench's list, and read /sys/block/DISK/stat
// and the daemon's CPU time around it. For lookups it also splits the sample by how many
// directories of each path the sample enters for the first time there (0: all seen by earlier
// paths), with the median and the sum of each group: where a system pays for a directory.
// Root, under the FUSE lock, after one `npm run bench` (the fixture and the probe come from
// its cache):
//   flock /tmp/layerfs-fuse.lock node bench/cold-io.mjs [SYSTEMS] [existing|dirs] [ROUNDS] [DISK]
//   e.g. node bench/cold-io.mjs layerfs,fuse-overlayfs,overlayfs existing 2 vda
//   WARM_HOST=1 … : the host's caches warmed after the drop (no disk reads: CPU only)
import * as fs from 'node:fs'
import * as path from 'node:path'
import { SYSTEMS, run } from './systems.mjs'

const CACHE = process.env.LAYERFS_BENCH_CACHE ?? '/var/tmp/layerfs-bench'
const fx = JSON.parse(fs.readFileSync(path.join(CACHE, 'fixture-full-v4', 'fixture.json'), 'utf8'))
const PROBE = path.join(CACHE, 'probe')
const [names = 'layerfs,fuse-overlayfs,overlayfs', what = 'existing', rounds = '2', disk = 'vda'] = process.argv.slice(2)

const diskReads = () => {
  const f = fs.readFileSync(`/sys/block/${disk}/stat`, 'utf8').trim().split(/\s+/).map(Number)
  return { ios: f[0], sectors: f[2] }
}
/** utime + stime of every thread of `pid`, in ms (clock ticks of 10 ms). */
const cpuMs = (pid) => {
  if (!pid) return 0
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
  return (Number(f[11]) + Number(f[12])) * 10
}

const runs = path.join(CACHE, 'cold-io')
fs.rmSync(runs, { recursive: true, force: true })
for (let round = 0; round < Number(rounds); round++) {
  for (const name of names.split(',')) {
    const base = path.join(runs, `${name}-${round}`)
    const ctx = { layers: fx.layers, upper: `${base}/upper`, work: `${base}/work`, mnt: `${base}/mnt`, log: `${base}.log` }
    for (const d of [ctx.upper, ctx.work, ctx.mnt]) fs.mkdirSync(d, { recursive: true })
    const st = await SYSTEMS[name].mount(ctx)
    try {
      const list = fs.readFileSync(fx.lists[what], 'utf8').split('\n').filter(Boolean).map((p) => (p === '/' ? ctx.mnt : ctx.mnt + p))
      fs.writeFileSync(`${base}/list.txt`, list.join('\n') + '\n')
      await run('sync', [])
      fs.writeFileSync('/proc/sys/vm/drop_caches', '3')
      // WARM_HOST=1: read the layers' metadata back in right away, so the systems start with cold
      // caches of their own but no listing or lookup waits for the disk: their CPU cost alone.
      if (process.env.WARM_HOST === '1') await run('sh', ['-c', `find ${fx.layers.top} ${fx.layers.middle} ${fx.layers.base} -ls > /dev/null`])
      const d0 = diskReads(); const c0 = cpuMs(st?.pid)
      const r = await run(PROBE, what === 'dirs' ? ['readdir', `${base}/list.txt`] : ['lstat', `${base}/list.txt`, '1', 'exist', `${base}/times.txt`])
      const d1 = diskReads(); const c1 = cpuMs(st?.pid)
      const p = JSON.parse(r.stdout.trim().split('\n').pop())
      console.log(`${name.padEnd(16)} ${what}: median ${(p.median_ns / 1e3).toFixed(1)} µs, p99 ${(p.p99_ns / 1e3).toFixed(1)} µs, ` +
        `all ${(p.total_ns / 1e6).toFixed(0)} ms; disk reads ${d1.ios - d0.ios} (${d1.sectors - d0.sectors} sectors); daemon CPU ${c1 - c0} ms` +
        (p.bad ? `; ${p.bad} WRONG` : ''))
      if (what !== 'dirs') console.log(`${''.padEnd(16)} ${split(list, fs.readFileSync(`${base}/times.txt`, 'utf8').split('\n').filter(Boolean).map(Number))}`)
    } finally {
      await SYSTEMS[name].unmount(ctx, st)
    }
  }
}

/** The lookups grouped by the number of directories of their path entered first there (3 = 3 or more). */
function split(paths, ns) {
  const seen = new Set()
  const groups = new Map()
  paths.forEach((p, i) => {
    const parts = p.split('/')
    let fresh = 0
    for (let k = 2; k < parts.length; k++) {
      const dir = parts.slice(0, k).join('/')
      if (!seen.has(dir)) { seen.add(dir); fresh++ }
    }
    const g = Math.min(fresh, 3)
    if (!groups.has(g)) groups.set(g, [])
    groups.get(g).push(ns[i] / 1e3)
  })
  return [...groups].sort((a, b) => a[0] - b[0]).map(([g, us]) => {
    us.sort((a, b) => a - b)
    const sum = us.reduce((a, b) => a + b, 0)
    return `${g}${g === 3 ? '+' : ''} new dirs: ${us.length} lookups, median ${us[us.length >> 1].toFixed(1)} µs, all ${(sum / 1e3).toFixed(0)} ms`
  }).join('; ')
}
