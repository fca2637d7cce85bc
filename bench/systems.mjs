// The union file systems under test: how to tell whether each is installed, mount it on the
// fixture with a fresh upper, find its daemon, and unmount it (always, also after a failure).
import { execFile, spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { fileURLToPath } from 'node:url'

const HERE = path.dirname(fileURLToPath(import.meta.url))
/** The layerfs CLI under test; LAYERFS_BENCH_CLI (run.mjs --cli) points at another build for A/B runs. */
export const CLI = path.resolve(process.env.LAYERFS_BENCH_CLI ?? path.join(HERE, '../dist/bin/layerfs.js'))

/** Runs a program; `env` adds to this process's environment. */
export function run(cmd, args, { timeoutMs = 600_000, input, env } = {}) {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 256 << 20, env: env ? { ...process.env, ...env } : process.env }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout: String(stdout), stderr: String(stderr) })
    })
    if (input !== undefined) child.stdin.end(input)
  })
}

export function isMounted(mnt) {
  return fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === mnt)
}

const which = (bin) => process.env.PATH.split(':').some((d) => fs.existsSync(path.join(d, bin)))
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

async function waitFor(pred, ms, what) {
  const deadline = Date.now() + ms
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(10)
  }
}

function alive(pid) {
  try { process.kill(pid, 0); return true } catch { return false }
}

/** A FUSE daemon run in the foreground as our child (detached: its own process group). */
async function spawnDaemon(cmd, args, mnt, logFile) {
  const out = fs.openSync(logFile, 'a')
  const child = spawn(cmd, args, { detached: true, stdio: ['ignore', out, out] })
  fs.closeSync(out)
  child.unref()
  let exited = false
  child.on('exit', () => { exited = true })
  await waitFor(() => isMounted(mnt) || exited, 15_000, `${cmd} to mount ${mnt}`)
  if (!isMounted(mnt)) throw new Error(`${cmd} exited without mounting: ${fs.readFileSync(logFile, 'utf8').slice(-2000)}`)
  return child.pid
}

async function fuseUnmount(bin, mnt, pid) {
  for (let i = 0; i < 100 && isMounted(mnt); i++) {
    const r = await run(bin, ['-u', mnt])
    if (r.code === 0) break
    await sleep(100)
  }
  if (isMounted(mnt)) await run('umount', ['-l', mnt])
  if (pid) await waitFor(() => !alive(pid), 10_000, `daemon ${pid} to exit`).catch(() => process.kill(pid, 'SIGKILL'))
}

/** The layerfs CLI's registry dir (lib/daemon/registry.ts): <sha1(mountpoint)[:16]>.{json,log}. */
const RUN_DIR = process.env.LAYERFS_RUN_DIR ?? (process.getuid?.() === 0 ? '/run/layerfs' : `${process.env.TMPDIR ?? '/tmp'}/layerfs-${process.getuid?.()}`)
const registryFile = (mnt, ext) => `${RUN_DIR}/${createHash('sha1').update(mnt).digest('hex').slice(0, 16)}.${ext}`

/**
 * layerfs through the CLI (a background daemon), with the FUSE transport named explicitly so a
 * result never depends on the default or on $LAYERFS_TRANSPORT: 'native' (layerfs's own /dev/fuse
 * loop, root only) or 'fuse-native' (libfuse 2.9 through fuse-native).
 */
function layerfsSystem(transport, label, env, args = [], cli = CLI) {
  // The native transport's addon, as that CLI would load it (dist/bin → native/build).
  const addon = path.resolve(path.dirname(cli), '../../native/build/Release/layerfs_fuse.node')
  return {
    label,
    transport,
    available: () => fs.existsSync(cli) && fs.existsSync('/dev/fuse') &&
      (transport !== 'native' || (process.getuid?.() === 0 && fs.existsSync(addon))),
    whiteoutForm: 'native (.wh. files)',
    async mount({ layers, upper, mnt }) {
      const lower = [layers.top, layers.middle, layers.base].join(':')
      const real = fs.realpathSync(mnt)
      // The daemon records its pid once it serves (the same mount point in every round: a
      // record left by a crashed round is stale, so only a live pid counts).
      const rec = registryFile(real, 'json')
      const daemonLog = registryFile(real, 'log')
      const r = await run(process.execPath, [cli, 'mount', '--transport', transport, ...args, '-o', `lowerdir=${lower},upperdir=${upper}`, 'none', mnt], { env })
      if (r.code !== 0 || !isMounted(mnt)) throw new Error(`layerfs (${transport}) mount failed (${r.code}): ${r.stderr}${logTail(daemonLog)}`)
      let pid
      await waitFor(() => {
        try { pid = JSON.parse(fs.readFileSync(rec, 'utf8')).pid } catch { pid = undefined }
        return pid !== undefined && alive(pid)
      }, 5_000, `the layerfs daemon record ${rec}`)
      return { pid, daemonLog }
    },
    /** The daemon's own account of its transport (`layerfs status --json`, the control channel). */
    async verify({ mnt }) {
      const r = await run(process.execPath, [cli, 'status', '--json', mnt], { timeoutMs: 30_000 })
      let s
      try { s = JSON.parse(r.stdout) } catch { return { ok: false, detail: `layerfs status failed (${r.code}): ${r.stderr.slice(0, 200)}` } }
      const writeback = !!s.protocol?.writebackCache
      const served = `${s.transport}${s.protocol ? `, FUSE 7.${s.protocol.minor}${s.protocol.passthrough ? ', passthrough' : ''}${writeback ? ', writeback cache' : ''}` : ''}`
      const asked = `${transport}${args.includes('--writeback-cache') ? ' with the writeback cache' : ''}`
      return { ok: s.transport === transport && writeback === args.includes('--writeback-cache'), detail: `asked for ${asked}, served by ${served}`, note: served }
    },
    async unmount({ mnt }, st) {
      if (isMounted(mnt)) {
        const r = await run(process.execPath, [cli, 'umount', mnt])
        if (r.code !== 0 && isMounted(mnt)) await fuseUnmount('fusermount', mnt)
      }
      if (st?.pid) await waitFor(() => !alive(st.pid), 10_000, 'layerfs daemon exit').catch(() => process.kill(st.pid, 'SIGKILL'))
    },
  }
}

/** The last lines of a daemon log, for an error message ('' when there is none). */
export function logTail(file, chars = 2000) {
  try {
    const t = fs.readFileSync(file, 'utf8').slice(-chars).trim()
    return t ? `\n--- ${file} (tail) ---\n${t}` : ''
  } catch {
    return ''
  }
}

/**
 * Each system: `available()`, `mount(ctx)` → { pid?, daemonLog? }, `unmount(ctx, state)`, and
 * optionally `verify(ctx, state)` → { ok, detail, note } (checked after the mount is timed).
 * ctx: { layers: fixture.layers, upper, work, mnt, log }.
 */
export const SYSTEMS = {
  layerfs: layerfsSystem('native', 'layerfs (native)'),
  'layerfs-fuse-native': layerfsSystem('fuse-native', 'layerfs (fuse-native)'),
  /** The writeback cache, opt-in (docs/transport.md): the mode fuse-overlayfs runs in by default. */
  'layerfs-writeback': layerfsSystem('native', 'layerfs (native, --writeback-cache)', undefined, ['--writeback-cache']),
  overlayfs: {
    label: 'kernel overlayfs',
    available: () => fs.readFileSync('/proc/filesystems', 'utf8').includes('overlay') && process.getuid() === 0,
    whiteoutForm: 'converted (0/0 char devices, trusted.overlay.opaque)',
    async mount({ layers, upper, work, mnt }) {
      const lower = [layers.top, layers.middleOvl, layers.base].join(':')
      const r = await run('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${lower},upperdir=${upper},workdir=${work}`, mnt])
      if (r.code !== 0) throw new Error(`overlay mount failed: ${r.stderr}`)
      return {}
    },
    async unmount({ mnt }) {
      for (let i = 0; i < 50 && isMounted(mnt); i++) {
        if ((await run('umount', [mnt])).code === 0) break
        await sleep(100)
      }
      if (isMounted(mnt)) await run('umount', ['-l', mnt])
    },
  },
  'fuse-overlayfs': {
    label: 'fuse-overlayfs',
    available: () => which('fuse-overlayfs') && which('fusermount3'),
    whiteoutForm: 'native (.wh. files)',
    async mount({ layers, upper, work, mnt, log }) {
      const lower = [layers.top, layers.middle, layers.base].join(':')
      return { pid: await spawnDaemon('fuse-overlayfs', ['-f', '-o', `lowerdir=${lower},upperdir=${upper},workdir=${work}`, mnt], mnt, log) }
    },
    async unmount({ mnt }, st) { await fuseUnmount('fusermount3', mnt, st?.pid) },
  },
  'unionfs-fuse': {
    label: 'unionfs-fuse',
    available: () => which('unionfs') && which('fusermount'),
    whiteoutForm: 'converted (.unionfs-fuse/…_HIDDEN~; opaque dirs as hidden children)',
    /** Its metadata dir shows in the merged view (it lives in a lower branch here): not counted. */
    visibleMeta: '/.unionfs-fuse',
    async mount({ layers, upper, mnt, log }) {
      const branches = `${upper}=RW:${layers.top}=RO:${layers.middleUnionfs}=RO:${layers.base}=RO`
      return { pid: await spawnDaemon('unionfs', ['-f', '-o', 'cow', branches, mnt], mnt, log) }
    },
    async unmount({ mnt }, st) { await fuseUnmount('fusermount', mnt, st?.pid) },
  },
}

/** VmHWM (peak resident set) of a process in KiB, or undefined. */
export function peakRssKiB(pid) {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m ? Number(m[1]) : undefined
  } catch {
    return undefined
  }
}

/** KEY=VAL,… as an environment object. */
function variantEnv(spec) {
  return Object.fromEntries(spec.split(',').map((kv) => {
    const i = kv.indexOf('=')
    if (i <= 0) throw new Error(`--variant wants KEY=VALUE[,KEY=VALUE…], not '${kv}'`)
    return [kv.slice(0, i), kv.slice(i + 1)]
  }))
}

/**
 * run.mjs --variant KEY=VAL,…: layerfs's native transport once more as 'layerfs-variant', its
 * daemon under that environment (LAYERFS_SPARKPLUG=0, LAYERFS_WARM_UP=0…): an A/B of a knob in
 * one interleaved run. CLI=PATH (not an environment variable) runs that build's CLI instead: an
 * A/B of two builds. The rounds' processes find it in $LAYERFS_BENCH_VARIANT.
 */
export function addVariant(spec) {
  process.env.LAYERFS_BENCH_VARIANT = spec
  const { CLI: cli, ...env } = variantEnv(spec)
  SYSTEMS['layerfs-variant'] = layerfsSystem('native', `layerfs (native, ${spec})`, env, [], cli === undefined ? CLI : path.resolve(cli))
}
if (process.env.LAYERFS_BENCH_VARIANT) addVariant(process.env.LAYERFS_BENCH_VARIANT)
