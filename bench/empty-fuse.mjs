// The cost of one FUSE round trip, with handlers that answer at once: layerfs's native transport
// (its own /dev/fuse loop on the JS thread, protocol 7.40) and fuse-native (libfuse 2.9 with a
// thread hop into JS) against a C libfuse 2.9 file system (same library and protocol 7.19, no JS
// hop), each served by its own process while the probe looks up distinct names (one LOOKUP each).
//   node bench/empty-fuse.mjs [--n 20000] [--only TEXT]  (root; takes the shared FUSE lock itself;
//                                              --only: the servers whose name contains TEXT)
//   node bench/empty-fuse.mjs --serve MNT      (internal: the fuse-native server)
//   node bench/empty-fuse.mjs --serve-native MNT [--timeouts] [--counts FILE]
//                                              (internal: the native-transport server, dist/ built)
import { execFile, execFileSync, spawn } from 'node:child_process'
import * as fs from 'node:fs'
import { createRequire } from 'node:module'
import * as path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
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
} else if (argv[0] === '--serve-native') {
  // The same server on layerfs's native transport: mountKernel() with a duck-typed core whose
  // lookups answer synchronously: "/" a dir, "/p…" a file (each its own inode), the rest ENOENT.
  // As in `layerfs mount`: default_permissions, read-only (no upper), FUSE 7.40 INIT.
  const mnt = argv[1]
  const opt = (name) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : undefined)
  const countsFile = opt('--counts')
  // Timeouts 0 (the default here): every lookup reaches the daemon, and with default_permissions
  // the kernel also re-fetches the root's attributes on every path walk (a GETATTR per lstat).
  // --timeouts: libfuse 2's defaults, as the fuse-native and C servers run (entry and attr 1 s,
  // negative 0): one LOOKUP per lstat of a distinct name, as for them.
  const t = argv.includes('--timeouts') ? 1 : 0
  const { mountKernel } = await import(pathToFileURL(path.join(HERE, '../dist/lib/fuse/kernel/mount.js')).href)
  const now = Date.now()
  const common = { nlink: 1, uid: 0, gid: 0, rdev: 0, size: 0, blksize: 4096, blocks: 0, atimeMs: now, mtimeMs: now, ctimeMs: now }
  const dir = { ...common, ino: 1, mode: 0o40755, nlink: 2 }
  const counts = { getattr: 0, lookup: 0 }
  // "/pN" is inode N + 2 (the probe's names), any other "/p…" inode 1 + 2^40: no bookkeeping
  // here, so what is timed is the transport.
  const attrOf = (p) => {
    if (p === '/') return dir
    if (p[p.lastIndexOf('/') + 1] !== 'p') return undefined
    const k = Number(p.slice(p.lastIndexOf('/') + 2))
    return {
      ino: Number.isInteger(k) ? k + 2 : 2 ** 40 + 1, mode: 0o100644, nlink: 1, uid: 0, gid: 0, rdev: 0, size: 0,
      blksize: 4096, blocks: 0, atimeMs: now, mtimeMs: now, ctimeMs: now,
    }
  }
  const enoent = (p) => Object.assign(new Error(`no such file: ${p}`), { code: 'ENOENT', errno: -2 })
  const core = {
    upper: undefined,
    getattr(p) { counts.getattr++; const a = attrOf(p); if (!a) throw enoent(p); return a },
    fgetattr(p) { return core.getattr(p) },
    tryGetattr(p) { counts.lookup++; return attrOf(p) },
    access(p) { if (!attrOf(p)) throw enoent(p) },
    readdir() { return ['.', '..'] },
    statfs() { return { bsize: 4096, frsize: 4096, blocks: 0, bfree: 0, bavail: 0, files: 0, ffree: 0, namemax: 255 } },
    close() {},
    setIdleCheck() {}, // no copy-ups here
  }
  const km = await mountKernel(core, mnt, {
    allowOther: true, entryTimeout: t, attrTimeout: t, negativeTimeout: 0,
    keepCache: false, passthrough: false, dev: false, suid: false,
  })
  counts.getattr = 0 // the session's own getattr('/') at start
  const finish = () => {
    if (countsFile) fs.writeFileSync(countsFile, JSON.stringify(counts) + '\n')
    process.exit(0)
  }
  km.ended.then(finish)
  // Never touch the mount from this process (a stat of it would wait for this very thread):
  // umount(8) in a child, while this loop keeps serving until the kernel ends the connection.
  const stop = () => execFile('umount', [mnt], (err) => { if (err) execFile('umount', ['-l', mnt], () => setTimeout(finish, 500)) })
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

  const self = fileURLToPath(import.meta.url)
  const counts = path.join(base, 'counts.json')
  const nativeBuilt = fs.existsSync(path.join(HERE, '../dist/lib/fuse/kernel/mount.js')) && fs.existsSync(path.join(HERE, '../native/build/Release/layerfs_fuse.node'))
  if (!nativeBuilt) process.stderr.write('dist/ or native/build missing (npm run build; node scripts/build-native.mjs): native transport skipped\n')
  const variants = [
    ...(nativeBuilt ? [
      { name: 'layerfs native transport, handler answers at once', cmd: process.execPath, args: [self, '--serve-native', mnt, '--counts', counts], counts },
      { name: 'layerfs native transport, libfuse\'s default timeouts (entry/attr 1 s)', cmd: process.execPath, args: [self, '--serve-native', mnt, '--timeouts', '--counts', counts], counts },
    ] : []),
    { name: 'fuse-native, handler answers at once', cmd: process.execPath, args: [self, '--serve', mnt] },
    { name: 'fuse-native, with a per-op timeout timer (as layerfs)', cmd: process.execPath, args: [self, '--serve', mnt, '--timeouts'] },
    ...(cEmpty ? [
      { name: 'C libfuse 2.9, multi-threaded loop', cmd: cEmpty, args: [mnt, '-f'] },
      { name: 'C libfuse 2.9, single-threaded loop', cmd: cEmpty, args: [mnt, '-f', '-s'] },
    ] : []),
  ].filter((v) => !argv.includes('--only') || v.name.includes(argv[argv.indexOf('--only') + 1]))
  const results = []
  // The shared lock, for the whole (short) run: this process waits for it via flock(1) on fd 9.
  const lockFd = fs.openSync('/tmp/layerfs-fuse.lock', 'a')
  execFileSync('flock', ['9'], { stdio: ['ignore', 'inherit', 'inherit', 'ignore', 'ignore', 'ignore', 'ignore', 'ignore', 'ignore', lockFd] })
  for (const v of variants) {
    if (v.counts) fs.rmSync(v.counts, { force: true })
    const child = spawn(v.cmd, v.args, { stdio: ['ignore', 'ignore', 'inherit'], detached: true })
    const exited = new Promise((r) => child.on('exit', r))
    let result
    try {
      const deadline = Date.now() + 10_000
      while (!isMounted(mnt) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
      if (!isMounted(mnt)) throw new Error(`${v.name}: not mounted`)
      const one = async (list, expect) => JSON.parse((await run(probe, ['lstat', list, '1', expect])).stdout)
      await one(neg, 'enoent') // warm-up: page in the code paths
      const rn = await one(neg, 'enoent')
      const rp = await one(pos, 'exist')
      result = { variant: v.name, negMedianUs: rn.median_ns / 1e3, negP99Us: rn.p99_ns / 1e3, posMedianUs: rp.median_ns / 1e3, posP99Us: rp.p99_ns / 1e3, bad: rn.bad + rp.bad }
      results.push(result)
    } finally {
      if (isMounted(mnt)) await run('fusermount', ['-u', mnt])
      try { process.kill(child.pid, 'SIGTERM') } catch {}
      await Promise.race([exited, new Promise((r) => setTimeout(r, 2000))])
      try { process.kill(child.pid, 'SIGKILL') } catch {}
      if (isMounted(mnt)) await run('umount', ['-l', mnt])
    }
    // The native server counts what reached its handlers: requests per lstat (3 passes of n).
    if (result && v.counts && fs.existsSync(v.counts)) {
      const c = JSON.parse(fs.readFileSync(v.counts, 'utf8'))
      result.requests = { ...c, perLstat: (c.lookup + c.getattr) / (3 * n) }
    }
  }
  fs.closeSync(lockFd)
  fs.mkdirSync(path.join(HERE, 'results'), { recursive: true })
  fs.writeFileSync(path.join(HERE, 'results/empty-fuse.json'), JSON.stringify({ n, results }, null, 1) + '\n')
  console.log(`| server (one LOOKUP per lstat of ${n} distinct names; GETATTRs too where noted below) | negative: median µs | p99 µs | positive: median µs | p99 µs |`)
  console.log('|---|--:|--:|--:|--:|')
  for (const r of results) console.log(`| ${r.variant}${r.bad ? ' **FAIL**' : ''} | ${r.negMedianUs.toFixed(1)} | ${r.negP99Us.toFixed(1)} | ${r.posMedianUs.toFixed(1)} | ${r.posP99Us.toFixed(1)} |`)
  const counted = results.filter((r) => r.requests)
  if (counted.length) console.log('')
  for (const r of counted) console.log(`- ${r.variant}: ${r.requests.lookup} LOOKUP + ${r.requests.getattr} GETATTR for ${3 * n} lstat calls (${r.requests.perLstat.toFixed(2)} requests per lstat)`)
}
