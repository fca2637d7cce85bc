// npm run bench: layerfs (both FUSE transports: native and fuse-native) against kernel
// overlayfs, fuse-overlayfs and unionfs-fuse on one generated fixture (docs/benchmarks.md).
// Builds the probe, makes the fixture (cached), runs the rounds, each one under the shared FUSE
// lock, and writes bench/results/.
import { execFileSync, spawn } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { fileURLToPath } from 'node:url'
import { ensureFixture } from './fixture.mjs'
import { aggregate, isLayerfs, markdown, svgChart } from './report.mjs'
import { SYSTEMS, addVariant, isMounted, run } from './systems.mjs'

const HERE = path.dirname(fileURLToPath(import.meta.url))
const ROOT = path.resolve(HERE, '..')

const USAGE = `usage: npm run bench -- [options]
  --quick              small fixture, 2 rounds: under 2 minutes
  --reps N             rounds (default 3; quick 2)
  --systems a,b        subset of: ${Object.keys(SYSTEMS).join(', ')} (default: all present)
  --install-peers      apt-get install fuse-overlayfs unionfs-fuse attr first (root, Debian)
  --cache DIR          fixture cache (default /var/tmp/layerfs-bench, or $LAYERFS_BENCH_CACHE)
  --lock FILE          lock taken around each round (default /tmp/layerfs-fuse.lock)
  --publish            also copy the chart to docs/img/benchmarks-PROFILE.svg
  --cli PATH           the layerfs CLI to measure (default dist/bin/layerfs.js): A/B a patched build
  --variant K=V,…      also measure layerfs (native) with its daemon under K=V (e.g.
                       LAYERFS_SPARKPLUG=0): an A/B of a knob, interleaved in one run
  --report FILE.json   only re-render the results of an earlier run
`

function parseArgs(argv) {
  const o = { quick: false, reps: undefined, systems: undefined, installPeers: false, publish: false,
    cache: process.env.LAYERFS_BENCH_CACHE ?? '/var/tmp/layerfs-bench', lock: '/tmp/layerfs-fuse.lock', report: undefined }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (a === '--quick') o.quick = true
    else if (a === '--reps') o.reps = Number(argv[++i])
    else if (a === '--systems') o.systems = argv[++i].split(',')
    else if (a === '--install-peers') o.installPeers = true
    else if (a === '--publish') o.publish = true
    else if (a === '--cache') o.cache = argv[++i]
    else if (a === '--lock') o.lock = argv[++i]
    else if (a === '--report') o.report = argv[++i]
    else if (a === '--cli') process.env.LAYERFS_BENCH_CLI = path.resolve(argv[++i])
    else if (a === '--variant') addVariant(argv[++i])
    else if (a === '-h' || a === '--help') { process.stdout.write(USAGE); process.exit(0) }
    else { process.stderr.write(`unknown option ${a}\n${USAGE}`); process.exit(2) }
  }
  return o
}

const log = (m) => process.stderr.write(`bench: ${m}\n`)

function machineInfo(cache, reps) {
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU'
  const version = (cmd, args) => { try { return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).split('\n')[0].trim() } catch (e) { return String(e.stdout ?? '').split('\n')[0].trim() || undefined } }
  let fsType = 'unknown fs'; let disk = ''
  try { [fsType, disk] = execFileSync('findmnt', ['-n', '-o', 'FSTYPE,SOURCE', '-T', cache], { encoding: 'utf8' }).trim().split(/\s+/) } catch {}
  const rev = version('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD'])
  const dirty = version('git', ['-C', ROOT, 'status', '--porcelain', 'lib']) ? '+lib changes' : ''
  // Both print fusermount's version too: keep their own line.
  const line = (cmd, re) => { try { return execFileSync('sh', ['-c', `${cmd} --version 2>&1`], { encoding: 'utf8' }).split('\n').find((l) => re.test(l))?.trim() } catch { return undefined } }
  const deb = (pkg) => version('dpkg-query', ['-W', '-f=${Version}', pkg])
  const fo = deb('fuse-overlayfs') ? `fuse-overlayfs ${deb('fuse-overlayfs')}` : line('fuse-overlayfs', /^fuse-overlayfs/)
  const uf = deb('unionfs-fuse') ? `unionfs-fuse ${deb('unionfs-fuse')}` : line('unionfs', /^unionfs/)
  return {
    cpu, nproc: os.cpus().length, memGiB: Math.round(os.totalmem() / 2 ** 30), kernel: os.release(), node: process.version,
    fs: fsType, disk, reps, layerfs: `${rev}${dirty}`, cli: process.env.LAYERFS_BENCH_CLI,
    peers: [`layerfs ${rev}${dirty}`, fo, uf].filter(Boolean).join(', '),
    date: new Date().toISOString(),
  }
}

function render(result, resultsDir, publish) {
  // Results carry their labels; older ones predate the native transport: 'layerfs' was fuse-native.
  const labels = result.labels ?? Object.fromEntries(result.systems.map((s) => [s, s === 'layerfs' ? 'layerfs' : SYSTEMS[s]?.label ?? s]))
  const agg = aggregate(result.rounds, result.systems)
  const args = { ...result, agg, labels }
  const md = markdown(args)
  const svg = svgChart(args)
  const stem = `bench-${result.profile}-${result.machine.date.replace(/[:.]/g, '-')}`
  fs.mkdirSync(resultsDir, { recursive: true })
  fs.writeFileSync(path.join(resultsDir, `${stem}.json`), JSON.stringify({ ...result, aggregate: agg }, null, 1) + '\n')
  fs.writeFileSync(path.join(resultsDir, `${stem}.md`), md)
  fs.writeFileSync(path.join(resultsDir, `${stem}.svg`), svg)
  for (const ext of ['md', 'json', 'svg']) fs.copyFileSync(path.join(resultsDir, `${stem}.${ext}`), path.join(resultsDir, `latest-${result.profile}.${ext}`))
  if (publish) {
    fs.mkdirSync(path.join(ROOT, 'docs/img'), { recursive: true })
    fs.copyFileSync(path.join(resultsDir, `${stem}.svg`), path.join(ROOT, `docs/img/benchmarks-${result.profile}.svg`))
  }
  process.stdout.write(md)
  log(`results: ${path.join(resultsDir, stem)}.{md,json,svg}`)
}

/** Unmounts whatever a crashed round left under the run dir. */
async function sweep(runDir) {
  const left = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4]).filter((m) => m && m.startsWith(runDir + '/'))
  for (const m of left.reverse()) {
    log(`cleaning up a mount left behind: ${m}`)
    await run('fusermount', ['-u', m]); if (isMounted(m)) await run('umount', [m]); if (isMounted(m)) await run('umount', ['-l', m])
  }
}

async function main() {
  const o = parseArgs(process.argv.slice(2))
  const resultsDir = path.join(HERE, 'results')
  if (o.report) return render(JSON.parse(fs.readFileSync(o.report, 'utf8')), resultsDir, o.publish)
  if (process.getuid?.() !== 0) { log('run as root: the bench mounts kernel overlayfs and drops the page cache'); process.exit(1) }
  if (o.installPeers) {
    log('installing the peers with apt-get …')
    execFileSync('sh', ['-c', 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fuse-overlayfs unionfs-fuse attr'], { stdio: 'inherit' })
  }
  const profile = o.quick ? 'quick' : 'full'
  const reps = o.reps ?? (o.quick ? 2 : 3)
  const wanted = o.systems ?? Object.keys(SYSTEMS)
  const systems = wanted.filter((s) => {
    if (!SYSTEMS[s]) { log(`unknown system ${s}`); process.exit(2) }
    if (!SYSTEMS[s].available()) { log(`${s} is not installed: skipped (--install-peers installs the peers)`); return false }
    return true
  })
  if (!systems.some(isLayerfs)) { log('no layerfs system to measure: run npm run build (the native transport also needs root and native/build)'); process.exit(1) }

  fs.mkdirSync(o.cache, { recursive: true })
  const probe = path.join(o.cache, 'probe')
  execFileSync('cc', ['-O2', '-Wall', '-o', probe, path.join(HERE, 'probe.c')], { stdio: 'inherit' })
  const fixture = ensureFixture(profile, o.cache, log)
  const runDir = path.join(o.cache, 'run')
  fs.mkdirSync(runDir, { recursive: true })
  await sweep(runDir)
  if (fs.existsSync(path.join(runDir, 'retired'))) {
    // Left by an interrupted run: deleting them frees many inodes; wait until ext4 reuses them
    // freely again (see retire() in round.mjs) before measuring anything.
    log('removing the files of an interrupted run, then waiting 65 s (ext4 inode reuse)')
    fs.rmSync(path.join(runDir, 'retired'), { recursive: true, force: true })
    await new Promise((r) => setTimeout(r, 65_000))
  }
  const machine = machineInfo(o.cache, reps)

  const rounds = []
  let interrupted = false
  process.on('SIGINT', () => { interrupted = true; log('interrupted: stopping after this round') })
  try {
    for (let r = 0; r < reps && !interrupted; r++) {
      // Interleave: rotate the order each round, so no system always runs first (or last).
      const order = systems.map((_, i) => systems[(i + r) % systems.length])
      const out = path.join(runDir, `round-${r}.json`)
      fs.rmSync(out, { force: true })
      log(`round ${r + 1}/${reps}: ${order.join(', ')} (waiting for ${o.lock})`)
      const code = await new Promise((resolve) => {
        const child = spawn('flock', [o.lock, process.execPath, path.join(HERE, 'round.mjs'),
          '--fixture', path.join(fixture.root, 'fixture.json'), '--probe', probe, '--dir', runDir,
          '--systems', order.join(','), '--round', String(r), '--out', out], { stdio: ['ignore', 'inherit', 'inherit'] })
        child.on('exit', (c) => resolve(c ?? 1))
      })
      await sweep(runDir)
      if (code !== 0 || !fs.existsSync(out)) { log(`round ${r + 1} failed (exit ${code})`); continue }
      rounds.push(JSON.parse(fs.readFileSync(out, 'utf8')))
    }
  } finally {
    await sweep(runDir)
    fs.rmSync(path.join(runDir, 'retired'), { recursive: true, force: true })
  }
  if (rounds.length === 0) { log('no round completed'); process.exit(1) }
  const labels = Object.fromEntries(systems.map((s) => [s, SYSTEMS[s].label]))
  render({ profile, reps: rounds.length, machine: { ...machine, reps: rounds.length }, systems, labels, fixture, rounds }, resultsDir, o.publish)
}

main().catch((e) => { process.stderr.write(`bench: ${e?.stack ?? e}\n`); process.exit(1) })
