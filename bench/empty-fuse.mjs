// The cost of one FUSE round trip, with handlers that answer at once: fuse-native (what layerfs
// runs on) against a C libfuse 2.9 file system (same library and protocol 7.19, no JS hop), each
// served by its own process while the probe looks up distinct names (one LOOKUP each).
//   node bench/empty-fuse.mjs [--n 20000]      (root; takes the shared FUSE lock itself)
//   node bench/empty-fuse.mjs --serve MNT      (internal: the fuse-native server)
import { execFileSync, spawn } from 'node:child_process'
import * as fs from 'node:fs'
import { createRequire } from 'node:module'
import * as path from 'node:path'
import { fileURLToPath } from 'node:url'
import { isMounted, run } from './systems.mjs'

const HERE = path.dirname(fileURLToPath(import.meta.url))
const require = createRequire(import.meta.url)
const argv = process.argv.slice(2)

if (argv[0] === '--serve') {
  // The server: getattr answers synchronously; "/" is a dir, "/p…" a file, the rest ENOENT.
  const Fuse = require('fuse-native')
  const dir = { mtime: new Date(), atime: new Date(), ctime: new Date(), size: 0, mode: 0o40755, uid: 0, gid: 0, nlink: 2 }
  const file = { ...dir, mode: 0o100644, nlink: 1 }
  const ops = {
    getattr: (p, cb) => (p === '/' ? cb(0, dir) : p[1] === 'p' ? cb(0, file) : cb(Fuse.ENOENT)),
  }
  const fuse = new Fuse(argv[1], ops, { timeout: argv[2] === '--timeouts' ? 30_000 : false })
  fuse.mount((err) => { if (err) { process.stderr.write(`mount: ${err.message}\n`); process.exit(1) } })
  const stop = () => fuse.unmount(() => process.exit(0))
  process.on('SIGTERM', stop); process.on('SIGINT', stop)
} else {
  const n = Number(argv[argv.indexOf('--n') + 1] || 20000) || 20000
  const cache = process.env.LAYERFS_BENCH_CACHE ?? '/var/tmp/layerfs-bench'
  const base = path.join(cache, 'empty')
  const mnt = path.join(base, 'mnt')
  fs.mkdirSync(mnt, { recursive: true })
  const probe = path.join(cache, 'probe')
  execFileSync('cc', ['-O2', '-Wall', '-o', probe, path.join(HERE, 'probe.c')], { stdio: 'inherit' })
  let cEmpty
  try {
    const flags = execFileSync('pkg-config', ['--cflags', '--libs', 'fuse'], { encoding: 'utf8' }).trim().split(/\s+/)
    cEmpty = path.join(cache, 'empty-fuse')
    execFileSync('cc', ['-O2', '-Wall', '-o', cEmpty, path.join(HERE, 'empty-fuse.c'), ...flags], { stdio: 'inherit' })
  } catch {
    process.stderr.write('libfuse 2 headers missing (apt-get install libfuse-dev pkg-config): C baseline skipped\n')
  }
  const neg = path.join(base, 'neg.txt'); const pos = path.join(base, 'pos.txt')
  fs.writeFileSync(neg, Array.from({ length: n }, (_, i) => `${mnt}/x${i}`).join('\n') + '\n')
  fs.writeFileSync(pos, Array.from({ length: n }, (_, i) => `${mnt}/p${i}`).join('\n') + '\n')

  const variants = [
    { name: 'fuse-native, handler answers at once', cmd: process.execPath, args: [fileURLToPath(import.meta.url), '--serve', mnt] },
    { name: 'fuse-native, with a per-op timeout timer (as layerfs)', cmd: process.execPath, args: [fileURLToPath(import.meta.url), '--serve', mnt, '--timeouts'] },
    ...(cEmpty ? [
      { name: 'C libfuse 2.9, multi-threaded loop', cmd: cEmpty, args: [mnt, '-f'] },
      { name: 'C libfuse 2.9, single-threaded loop', cmd: cEmpty, args: [mnt, '-f', '-s'] },
    ] : []),
  ]
  const results = []
  // The shared lock, for the whole (short) run: this process waits for it via flock(1) on fd 9.
  const lockFd = fs.openSync('/tmp/layerfs-fuse.lock', 'a')
  execFileSync('flock', ['9'], { stdio: ['ignore', 'inherit', 'inherit', 'ignore', 'ignore', 'ignore', 'ignore', 'ignore', 'ignore', lockFd] })
  for (const v of variants) {
    const child = spawn(v.cmd, v.args, { stdio: ['ignore', 'ignore', 'inherit'], detached: true })
    try {
      const deadline = Date.now() + 10_000
      while (!isMounted(mnt) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
      if (!isMounted(mnt)) throw new Error(`${v.name}: not mounted`)
      const one = async (list, expect) => JSON.parse((await run(probe, ['lstat', list, '1', expect])).stdout)
      await one(neg, 'enoent') // warm-up: page in the code paths
      const rn = await one(neg, 'enoent')
      const rp = await one(pos, 'exist')
      results.push({ variant: v.name, negMedianUs: rn.median_ns / 1e3, negP99Us: rn.p99_ns / 1e3, posMedianUs: rp.median_ns / 1e3, posP99Us: rp.p99_ns / 1e3, bad: rn.bad + rp.bad })
    } finally {
      if (isMounted(mnt)) await run('fusermount', ['-u', mnt])
      try { process.kill(child.pid, 'SIGTERM') } catch {}
      await new Promise((r) => setTimeout(r, 200))
      try { process.kill(child.pid, 'SIGKILL') } catch {}
      if (isMounted(mnt)) await run('umount', ['-l', mnt])
    }
  }
  fs.closeSync(lockFd)
  fs.mkdirSync(path.join(HERE, 'results'), { recursive: true })
  fs.writeFileSync(path.join(HERE, 'results/empty-fuse.json'), JSON.stringify({ n, results }, null, 1) + '\n')
  console.log(`| server (one LOOKUP per lstat, ${n} distinct names) | negative: median µs | p99 µs | positive: median µs | p99 µs |`)
  console.log('|---|--:|--:|--:|--:|')
  for (const r of results) console.log(`| ${r.variant}${r.bad ? ' **FAIL**' : ''} | ${r.negMedianUs.toFixed(1)} | ${r.negP99Us.toFixed(1)} | ${r.posMedianUs.toFixed(1)} | ${r.posP99Us.toFixed(1)} |`)
}
