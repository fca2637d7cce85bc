// One bench round: mounts each system in turn on the fixture (fresh upper each), runs every
// measurement through the probe helper, checks the answers, unmounts. Run by bench/run.mjs
// under the shared FUSE lock; writes its raw results as JSON to --out.
//   node bench/round.mjs --fixture FIXTURE.json --probe PROBE --dir RUNDIR --systems a,b --round N --out FILE
import * as fs from 'node:fs'
import * as path from 'node:path'
import { performance } from 'node:perf_hooks'
import { isMounted, logTail, peakRssKiB, run, SYSTEMS } from './systems.mjs'

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]]] : acc), []))
const fx = JSON.parse(fs.readFileSync(args.fixture, 'utf8'))
const PROBE = args.probe
const RUN_DIR = args.dir
const round = Number(args.round ?? 0)
const names = args.systems.split(',')
const EXDEV = 18

const log = (...a) => process.stderr.write(`[round ${round}] ${a.join(' ')}\n`)

async function probe(...a) {
  const r = await run(PROBE, a.map(String))
  if (r.code !== 0 && !r.stdout.trim()) throw new Error(`probe ${a.join(' ')} failed (${r.code}): ${r.stderr}`)
  return JSON.parse(r.stdout.trim().split('\n').pop())
}

async function dropCaches() {
  await run('sync', [])
  fs.writeFileSync('/proc/sys/vm/drop_caches', '3')
}

async function timed(cmd, argv) {
  const t0 = performance.now()
  const r = await run(cmd, argv)
  return { ...r, ms: performance.now() - t0 }
}

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)] }

/** Writes a list of union paths as mount paths, for the probe. */
function listFor(mnt, listFile, out) {
  const lines = fs.readFileSync(listFile, 'utf8').split('\n').filter(Boolean).map((p) => (p === '/' ? mnt : mnt + p))
  fs.writeFileSync(out, lines.join('\n') + '\n')
  return out
}

/** The lower copies must never change: a system that wrote into a lower layer spoils the cache. */
function lowerIntact(rel) {
  const layer = rel.startsWith('/big/') ? fx.layers.top : fx.layers.base
  const fd = fs.openSync(layer + rel, 'r')
  try {
    const b = Buffer.alloc(16)
    fs.readSync(fd, b, 0, 16, 0)
    return !b.every((c) => c === 0x57) // 'W', what the probe writes
  } finally {
    fs.closeSync(fd)
  }
}

/**
 * Puts a measured system's files aside instead of deleting them now: on ext4 without a journal
 * (this machine's disk), a new inode is not taken from those freed in the last 60 s (360 s while
 * their inode table block is dirty), and allocation scans past each of them — tens of thousands
 * of deletions right before the next system's turn made its every create (copy-up, untar)
 * several times slower. run.mjs deletes the retired dirs after the last round. The large copies
 * go at once (few inodes, much space).
 */
async function retire(base, label) {
  await run('find', [base, '-xdev', '-type', 'f', '-size', '+1M', '-delete'])
  const retired = path.join(RUN_DIR, 'retired')
  fs.mkdirSync(retired, { recursive: true })
  fs.renameSync(base, path.join(retired, label))
}

async function measure(name) {
  const sys = SYSTEMS[name]
  const base = path.join(RUN_DIR, name)
  fs.rmSync(base, { recursive: true, force: true })
  const ctx = { layers: fx.layers, upper: `${base}/upper`, work: `${base}/work`, mnt: `${base}/mnt`, log: `${base}.log` }
  for (const d of [ctx.upper, ctx.work, ctx.mnt]) fs.mkdirSync(d, { recursive: true })
  const { mnt } = ctx
  const rows = {}
  const checks = []
  const row = (key, value, ok = true, note) => { rows[key] = { value, ok, ...(note ? { note } : {}) } }
  const check = (what, ok, detail) => { checks.push({ what, ok, ...(detail ? { detail } : {}) }); if (!ok) log(`${name}: FAIL ${what}: ${detail ?? ''}`) }
  let st
  let info
  try {
    const t0 = performance.now()
    st = await sys.mount(ctx)
    row('mount', performance.now() - t0)
    if (sys.verify) {
      // Which transport/protocol really serves it (not part of the mount time).
      const v = await sys.verify(ctx, st)
      info = v.note
      check('served as configured', v.ok, v.ok ? undefined : v.detail)
    }

    // Lookups: cold (first after mount, caches dropped), warm, negative, whited out.
    const L = (k) => listFor(mnt, fx.lists[k], `${base}/${k}.txt`)
    const existing = L('existing'); const negative = L('negative'); const hidden = L('hidden'); const dirs = L('dirs')
    await dropCaches()
    let r = await probe('lstat', existing, 1, 'exist')
    row('lookup_cold', r.median_ns / 1e3, r.bad === 0); row('lookup_cold_p99', r.p99_ns / 1e3, r.bad === 0)
    row('lookup_cold_total', r.total_ns / 1e6, r.bad === 0) // the median hides where a cold tree's cost sits
    check('existing paths found', r.bad === 0, r.bad ? `${r.bad} missing, e.g. ${r.first_bad} errno ${r.first_errno}` : undefined)
    r = await probe('lstat', existing, 3, 'exist')
    row('lookup_warm', r.median_ns / 1e3, r.bad === 0); row('lookup_warm_p99', r.p99_ns / 1e3, r.bad === 0)
    r = await probe('lstat', negative, 1, 'enoent')
    row('neg_first', r.median_ns / 1e3, r.bad === 0)
    check('absent paths ENOENT', r.bad === 0, r.bad ? `${r.bad} wrong, e.g. ${r.first_bad} errno ${r.first_errno}` : undefined)
    r = await probe('lstat', negative, 3, 'enoent')
    row('neg_repeat', r.median_ns / 1e3, r.bad === 0)
    r = await probe('lstat', hidden, 1, 'enoent')
    row('hidden_first', r.median_ns / 1e3, r.bad === 0)
    check('whited-out / opaque-hidden paths ENOENT', r.bad === 0, r.bad ? `${r.bad} visible, e.g. ${r.first_bad}` : undefined)
    r = await probe('lstat', hidden, 3, 'enoent')
    row('hidden_repeat', r.median_ns / 1e3, r.bad === 0)

    // Overridden files must show the middle layer's content.
    const overrides = JSON.parse(fs.readFileSync(fx.lists.overrides, 'utf8'))
    let wrong = 0; let example
    for (const o of overrides) {
      let got = ''
      try { got = fs.readFileSync(mnt + o.rel, 'latin1').slice(0, o.prefix.length) } catch (e) { got = String(e.code) }
      if (got !== o.prefix) { wrong++; example ??= `${o.rel}: ${JSON.stringify(got.slice(0, 40))}` }
    }
    check('overridden files show the middle layer', wrong === 0, wrong ? `${wrong}/${overrides.length}, e.g. ${example}` : undefined)

    // Readdir of every merged dir, find, tar metadata walk: each after dropping caches.
    await dropCaches()
    r = await probe('readdir', dirs)
    const wantEntries = fx.counts.expectedEntries + (sys.visibleMeta ? 1 : 0)
    const entriesOk = r.bad === 0 && r.entries === wantEntries
    row('readdir', r.median_ns / 1e3, entriesOk); row('readdir_total', r.total_ns / 1e6, entriesOk)
    check('readdir entry count', entriesOk, entriesOk ? undefined : `${r.entries} entries (expected ${wantEntries}), ${r.bad} dirs failed`)
    await dropCaches()
    const f = await timed('find', [mnt])
    const expected = new Set(fs.readFileSync(fx.lists.merged, 'utf8').split('\n').filter(Boolean))
    const seen = f.stdout.split('\n').filter(Boolean).map((p) => p.slice(mnt.length))
      .filter((p) => p && !(sys.visibleMeta && (p === sys.visibleMeta || p.startsWith(sys.visibleMeta + '/'))))
    const extra = seen.filter((p) => !expected.has(p))
    const seenSet = new Set(seen)
    const missing = [...expected].filter((p) => !seenSet.has(p))
    const findOk = f.code === 0 && extra.length === 0 && missing.length === 0
    row('find', f.ms, findOk)
    check('find lists exactly the merged view', findOk, findOk ? undefined : `${missing.length} missing (${missing.slice(0, 2).join(', ')}), ${extra.length} extra (${extra.slice(0, 2).join(', ')}) ${f.stderr.slice(0, 200)}`)
    await dropCaches()
    const t = await timed('tar', ['-cf', '/dev/null', '-C', mnt, '.'])
    row('tar_walk', t.ms, t.code === 0)
    check('tar -cf /dev/null walks without error', t.code === 0, t.code ? t.stderr.slice(0, 300) : undefined)

    // Sequential read of the large file, cold then warm.
    await dropCaches()
    const big = mnt + fx.targets.large
    r = await probe('read', big, 1 << 20)
    const readOk = r.errno === 0 && r.bytes === fx.targets.largeBytes
    row('read_cold', r.bytes / r.ns * 1e3, readOk)
    r = await probe('read', big, 1 << 20)
    row('read_warm', r.bytes / r.ns * 1e3, readOk && r.bytes === fx.targets.largeBytes)
    check('large file reads in full', readOk, readOk ? undefined : JSON.stringify(r))

    // Copy-up: first open-for-write + 4 KiB write of a lower file.
    for (const [key, targets] of [['copyup_4k', fx.targets.small], ['copyup_4m', fx.targets.m4], ['copyup_large', [fx.targets.large]]]) {
      const samples = []; let ok = true
      for (const rel of targets) {
        r = await probe('copyup', mnt + rel)
        ok &&= r.ok === true && lowerIntact(rel)
        samples.push(r.ns / 1e6)
      }
      row(key, median(samples), ok)
      check(`${key}: data and size right, lower untouched`, ok)
    }

    // Renames: lower files, then a lower (merged) directory; EXDEV falls back to mv, as apps do.
    const rs = []; let renOk = true
    for (const rel of fx.targets.renameFiles) {
      r = await probe('rename', mnt + rel, `${mnt + rel}.moved`)
      renOk &&= r.errno === 0 && r.src_gone && r.dst_there
      rs.push(r.ns / 1e3)
    }
    row('rename_file', median(rs), renOk)
    check('rename of lower files', renOk)
    const src = mnt + fx.targets.renameDir; const dst = `${src}.moved`
    r = await probe('rename', src, dst)
    let dirMs = r.ns / 1e6; let note
    if (r.errno === EXDEV) {
      const mv = await timed('mv', [src, dst])
      dirMs += mv.ms
      note = 'EXDEV, then mv'
    } else if (r.errno !== 0) note = `errno ${r.errno}`
    const moved = await run('find', [dst])
    const count = moved.stdout.split('\n').filter(Boolean).length - 1
    const dirOk = !fs.existsSync(src) && count === fx.counts.renameDirCount
    row('rename_dir', dirMs, dirOk, note)
    check('rename of a lower dir', dirOk, dirOk ? note : `${count} entries moved (expected ${fx.counts.renameDirCount}), src ${fs.existsSync(src) ? 'still there' : 'gone'}; ${note ?? ''}`)

    // Untar, before create + unlink: on ext4 without a journal, creates right after many deletions
    // in the same block group are slower (see retire()), so the 10k unlinks come last.
    fs.mkdirSync(`${mnt}/untar`)
    const u = await timed('tar', ['-xf', fx.tarball, '-C', `${mnt}/untar`])
    const ucount = (await run('find', [`${mnt}/untar/tree`])).stdout.split('\n').filter(Boolean).length
    const untarOk = u.code === 0 && ucount === fx.counts.untarEntries
    row('untar', u.ms, untarOk)
    check('untar', untarOk, untarOk ? undefined : `exit ${u.code}, ${ucount} entries (expected ${fx.counts.untarEntries}) ${u.stderr.slice(0, 200)}`)

    // Create + unlink of many small files in a new dir.
    fs.mkdirSync(`${mnt}/cu`)
    r = await probe('createunlink', `${mnt}/cu`, fx.params.createUnlink)
    const cuOk = r.bad === 0 && r.left === 0
    row('create', r.create_ns / r.n / 1e3, cuOk); row('unlink', r.unlink_ns / r.n / 1e3, cuOk)
    check('create + unlink', cuOk, cuOk ? undefined : JSON.stringify(r))

    // Many small writes into one new file (a log, a compiler's output): each write(2) is a
    // request without a writeback cache, a page-cache copy with one. The close, where a
    // writeback cache sends the data, is its own row.
    r = await probe('smallwrites', `${mnt}/small-writes.log`, 100, 20000)
    const swOk = r.ok === true
    row('small_writes', r.write_ns / 1e6, swOk); row('small_writes_close', r.close_ns / 1e6, swOk)
    check('small writes: size and bytes right', swOk, swOk ? undefined : JSON.stringify(r))

    // The daemon's peak memory (kernel overlayfs has none).
    if (st?.pid) row('mem', (peakRssKiB(st.pid) ?? NaN) / 1024)
  } catch (e) {
    check('the run completed', false, String(e?.stack ?? e))
  } finally {
    try { await sys.unmount(ctx, st) } catch (e) { check('unmount', false, String(e)) }
    if (isMounted(mnt)) check('unmounted', false, `${mnt} is still mounted`)
    else await retire(base, `${name}-r${round}`)
    // A failure: show what the daemon said (its log outlives the round's dir).
    if (checks.some((c) => !c.ok) && st?.daemonLog) log(`${name}: daemon log${logTail(st.daemonLog, 4000) || ` ${st.daemonLog}: empty or gone`}`)
  }
  return { rows, checks, ...(info ? { info } : {}) }
}

const out = { round, systems: {} }
let stopping = false
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => { stopping = true; log(`${sig}: finishing the current system, then stopping`) })
for (const name of names) {
  if (stopping) break
  log(`${name} …`)
  const t0 = performance.now()
  out.systems[name] = await measure(name)
  log(`${name} done in ${((performance.now() - t0) / 1000).toFixed(1)} s`)
}
fs.writeFileSync(args.out, JSON.stringify(out, null, 1) + '\n')
