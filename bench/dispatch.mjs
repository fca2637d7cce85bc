// The native transport's JS cost per request, without the kernel: a KernelSession over the bench
// fixture's layers (read-only, an empty rw branch in a temp dir) is handed FUSE requests built
// byte by byte, as the addon hands it the ones it reads from /dev/fuse, and answers them into
// /dev/null (or a scratch file, where a reply is read back). What it measures is the daemon's own
// work per request (decoding, the core, the reply's write(2)) in a hot loop: a floor for what a
// request costs through the mount, where caches are colder (docs/benchmarks.md §7).
//
//   node bench/dispatch.mjs [lookup|list|memory ...] [--rounds N] [--profile DIR]
//
// lookup: LOOKUP of the fixture's sample of existing paths, their directories known (a name
//         index built, as after a first lookup into each), the entries new to the core; then
//         the same again (cached), then fresh and cached negative names in one directory.
// list:   OPENDIR + READDIRPLUS pages + RELEASEDIR of every merged directory, the core's
//         caches cleared first (the directories themselves resolved again, as the kernel's
//         lookups would have): µs per listed entry.
// memory: heap bytes per entry after listing every directory (node --expose-gc for exact
//         figures: a GC runs before each heap reading when it can).
// Best (lowest) of N rounds for times: the machine is shared, the minimum is the least noisy.
// Needs `npm run build`, the addon, and the full fixture (made by `npm run bench`).
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const DIST = process.env.LAYERFS_DIST ?? path.join(ROOT, 'dist/lib')
const { LayerFs } = await import(`${DIST}/layerfs.js`)
const { KernelSession } = await import(`${DIST}/fuse/kernel/session.js`)
const { Activity } = await import(`${DIST}/fuse/activity.js`)
const { loadNativeFuse } = await import(`${DIST}/fuse/kernel/addon.js`)
const { writeU64 } = await import(`${DIST}/fuse/kernel/protocol.js`)

const args = process.argv.slice(2)
const opt = (name, dflt) => { const i = args.indexOf(name); return i >= 0 ? args.splice(i, 2)[1] : dflt }
const ROUNDS = Number(opt('--rounds', 6))
const PROFILE = opt('--profile', undefined)
const MODES = args.length ? args : ['lookup', 'list', 'memory']

const CACHE = process.env.LAYERFS_BENCH_CACHE ?? '/var/tmp/layerfs-bench'
const FX = path.join(CACHE, 'fixture-full-v4')
if (!fs.existsSync(`${FX}/fixture.json`)) throw new Error(`no fixture at ${FX}: run npm run bench once`)
const lines = (f) => fs.readFileSync(`${FX}/lists/${f}`, 'utf8').split('\n').filter(Boolean)
const dirs = lines('dirs.txt')
const existing = lines('existing.txt')

const LOOKUP = 1
const OPENDIR = 27
const READDIRPLUS = 44
const RELEASEDIR = 29
const IN_HEADER = 40
const OUT_HEADER = 16
const ENTRY_OUT = 128

const addon = loadNativeFuse()
const upper = fs.mkdtempSync(path.join(os.tmpdir(), 'layerfs-dispatch-'))
process.on('exit', () => fs.rmSync(upper, { recursive: true, force: true }))
const SESSION = { entryTimeout: 60, attrTimeout: 60, negativeTimeout: 60, keepCache: true, passthrough: false, maxIo: 1 << 20 }

/** A session over the fixture whose replies go to `replyFd`. */
function session(replyFd) {
  const core = new LayerFs([
    { path: upper, mode: 'rw' }, { path: `${FX}/top`, mode: 'ro' }, { path: `${FX}/middle`, mode: 'ro' }, { path: `${FX}/base`, mode: 'ro' },
  ], {})
  return new KernelSession(core, new Activity(), addon, replyFd, SESSION)
}

let unique = 1
function send(s, opcode, nodeid, args) {
  const b = s.request
  const len = IN_HEADER + args.length
  b.fill(0, 0, IN_HEADER)
  b.writeUInt32LE(len, 0)
  b.writeUInt32LE(opcode, 4)
  b.writeUInt32LE(unique++, 8)
  writeU64(b, nodeid, 16)
  args.copy(b, IN_HEADER)
  s.dispatch(len)
}
const cstr = (name) => Buffer.from(name + '\0')
/** fuse_read_in: fh, offset, size. */
function readIn(fh, offset, size) {
  const b = Buffer.alloc(40)
  writeU64(b, fh, 0)
  writeU64(b, offset, 8)
  b.writeUInt32LE(size, 16)
  return b
}

/** The node of union path `p`, looking up the components the session does not know yet. */
function nodeOf(s, p) {
  let node = s.nodes.root
  for (const name of p.split('/').filter(Boolean)) {
    let child = s.nodes.child(node, name)
    if (!child) {
      send(s, LOOKUP, node.id, cstr(name))
      child = s.nodes.child(node, name)
    }
    if (!child) return undefined
    node = child
  }
  return node
}

/** [parent node id, name] of each path, the parents looked up (untimed). */
function parentsAndNames(s, paths) {
  return paths.map((p) => {
    const i = p.lastIndexOf('/')
    return [nodeOf(s, p.slice(0, i) || '/').id, cstr(p.slice(i + 1))]
  })
}

function timeUs(n, fn) {
  const t0 = process.hrtime.bigint()
  fn()
  return Number(process.hrtime.bigint() - t0) / 1e3 / n
}

let inspector
async function profiled(name, fn) {
  if (!PROFILE || !name) return fn()
  inspector ??= new (await import('node:inspector/promises')).Session()
  inspector.connect()
  await inspector.post('Profiler.enable')
  await inspector.post('Profiler.setSamplingInterval', { interval: 25 })
  await inspector.post('Profiler.start')
  const r = fn()
  const { profile } = await inspector.post('Profiler.stop')
  fs.mkdirSync(PROFILE, { recursive: true })
  fs.writeFileSync(path.join(PROFILE, `${name}.cpuprofile`), JSON.stringify(profile))
  inspector.disconnect()
  return r
}

const best = {}
const keep = (k, v) => { best[k] = Math.min(best[k] ?? Infinity, v) }
const devNull = fs.openSync('/dev/null', 'w')

async function lookups(last) {
  const s = session(devNull)
  const todo = parentsAndNames(s, existing)
  for (const [id] of todo) send(s, LOOKUP, id, cstr('.not-there')) // each directory's name index
  keep('lookup, new entry, known dir', await profiled(last ? 'lookup-new' : '', () => timeUs(todo.length, () => { for (const [id, n] of todo) send(s, LOOKUP, id, n) })))
  keep('lookup, cached entry', timeUs(todo.length, () => { for (const [id, n] of todo) send(s, LOOKUP, id, n) }))
  const dir = nodeOf(s, '/usr/bin').id
  const missing = Array.from({ length: 20_000 }, (_, i) => cstr(`missing-${unique}-${i}`))
  keep('lookup, new negative', timeUs(missing.length, () => { for (const n of missing) send(s, LOOKUP, dir, n) }))
  keep('lookup, cached negative', timeUs(missing.length, () => { for (const n of missing) send(s, LOOKUP, dir, n) }))
  s.core.close()
}

/** Lists every directory of `s` (replies into `fd`, read back for handles and offsets); the entries listed. */
function listAll(s, fd, nodes) {
  const header = Buffer.alloc(OUT_HEADER)
  let at = fs.fstatSync(fd).size
  let entries = 0
  for (const node of nodes) {
    send(s, OPENDIR, node.id, Buffer.alloc(8))
    fs.readSync(fd, header, 0, OUT_HEADER, at + OUT_HEADER) // fuse_open_out.fh
    const fh = Number(header.readBigUInt64LE(0))
    at += OUT_HEADER + 16
    for (let offset = 0; ;) {
      send(s, READDIRPLUS, node.id, readIn(fh, offset, 4096))
      fs.readSync(fd, header, 0, OUT_HEADER, at)
      const len = header.readUInt32LE(0)
      const body = Buffer.alloc(len - OUT_HEADER)
      fs.readSync(fd, body, 0, body.length, at + OUT_HEADER)
      at += len
      if (body.length === 0) break
      // fuse_direntplus: entry_out, then fuse_dirent (ino, off, namelen, type, name, padded to 8).
      for (let q = 0; q < body.length; entries++) {
        const nameLen = body.readUInt32LE(q + ENTRY_OUT + 16)
        offset = Number(body.readBigUInt64LE(q + ENTRY_OUT + 8))
        q += ENTRY_OUT + ((24 + nameLen + 7) & ~7)
      }
    }
    send(s, RELEASEDIR, node.id, readIn(fh, 0, 0))
    at += OUT_HEADER
  }
  return entries
}

function scratchReplies() {
  const file = path.join(upper, '..', `layerfs-dispatch-replies-${process.pid}`)
  const fd = fs.openSync(file, 'w+')
  fs.unlinkSync(file)
  return fd
}

async function listing(last) {
  const fd = scratchReplies()
  const s = session(fd)
  const nodes = dirs.map((d) => nodeOf(s, d)).filter(Boolean)
  s.core.resolver.cache.clear()
  for (const d of dirs) s.core.tryGetattr(d)
  let entries = 0
  const us = await profiled(last ? 'list' : '', () => {
    const t0 = process.hrtime.bigint()
    entries = listAll(s, fd, nodes)
    return Number(process.hrtime.bigint() - t0) / 1e3
  })
  keep('READDIRPLUS, per listed entry', us / (entries - 2 * nodes.length))
  fs.closeSync(fd)
  s.core.close()
}

function memory() {
  const heap = () => { globalThis.gc?.(); return process.memoryUsage().heapUsed }
  const fd = scratchReplies()
  const before = heap()
  const s = session(fd)
  const nodes = dirs.map((d) => nodeOf(s, d)).filter(Boolean)
  listAll(s, fd, nodes)
  const after = heap()
  console.log(`memory: ${s.nodes.size} kernel nodes, ${s.core.resolver.cache.size} cached resolutions: ` +
    `${((after - before) / s.nodes.size).toFixed(0)} bytes of heap per entry${globalThis.gc ? '' : ' (run with --expose-gc for exact figures)'}`)
  fs.closeSync(fd)
  s.core.close()
}

for (let r = 0; r < ROUNDS; r++) {
  if (MODES.includes('lookup')) await lookups(r === ROUNDS - 1)
  if (MODES.includes('list')) await listing(r === ROUNDS - 1)
}
for (const [k, v] of Object.entries(best)) console.log(`${k.padEnd(32)} ${v.toFixed(2)} µs (best of ${ROUNDS})`)
if (MODES.includes('memory')) memory()
