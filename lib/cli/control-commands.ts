// The commands that see into and steer a live mount over its control channel (docs/control.md):
// which, ls --layers, status, branch add/remove, checkpoint. Argument parsing and output only.
import * as path from 'node:path'
import type { Command } from 'commander'
import type { BranchEntry } from '../branches/explain.js'
import { controlRequest, flushKernelWrites, liveMounts, locate } from '../control/client.js'
import type { LsEntry, StackChangeResult, StatusResult, WhichResult } from '../control/protocol.js'
import { fs } from '../fs.js'
import { ConfigError } from '../options.js'

function fail(e: unknown): number {
  process.stderr.write(`layerfs: ${e instanceof ConfigError ? e.message : String((e as Error)?.message ?? e)}\n`)
  return 1
}

function out(s: string): void {
  process.stdout.write(s)
}

/** A colour per branch index on a terminal (NO_COLOR respected), nothing otherwise. */
const COLOURS = [32, 34, 33, 35, 36, 31, 92, 94, 93, 95, 96]
function painter(): (index: number, s: string) => string {
  const on = process.stdout.isTTY && !process.env.NO_COLOR
  return (i, s) => (on ? `\x1b[${COLOURS[i % COLOURS.length]}m${s}\x1b[0m` : s)
}

function describeBranch(b: { index: number; mode: string; path: string }): string {
  return `branch ${b.index} (${b.mode}) ${b.path}`
}

function hiddenLine(e: BranchEntry): string {
  const h = e.hiddenBy
  if (!h) return `${describeBranch({ ...e, path: e.root })}: hidden (reserved name)`
  const what = h.kind === 'whiteout' ? `whited out by ${h.host}`
    : h.kind === 'opaque' ? `below the opaque directory ${h.at} (${h.host})`
    : h.kind === 'file' ? `below ${h.at}, which is not a directory in branch ${h.index} (${h.host})`
    : `shadowed by ${h.host}`
  return `${describeBranch({ ...e, path: e.root })}: hidden, ${what} [branch ${h.index}]`
}

/** layerfs which MNT/PATH [--why] [--json] */
export async function whichCommand(p: string, opts: { why?: boolean; json?: boolean }): Promise<number> {
  try {
    const loc = await locate(p)
    const r = await controlRequest<WhichResult>(loc.mountpoint, { op: 'which', path: loc.unionPath })
    if (opts.json) {
      out(JSON.stringify(r, null, 2) + '\n')
      return r.visible ? 0 : 1
    }
    if (r.visible) {
      const merged = r.merged && r.merged.length > 1 ? ` (merged directory: branches ${r.merged.join(', ')})` : ''
      const host = r.path === '/' ? r.origin!.path : r.origin!.path + r.path
      out(`${host}\t${describeBranch(r.origin!)}${merged}\n`)
    } else if (!opts.why) {
      process.stderr.write(`layerfs: '${p}' is not in the merged view (--why tells what hides it)\n`)
    } else {
      out(`${p}: not in the merged view\n`)
    }
    if (opts.why) {
      const hidden = r.explanation.entries.filter((e) => e.hiddenBy !== undefined || (!r.visible))
      for (const e of hidden) out(`  ${hiddenLine(e)}\n`)
      if (!r.visible && hidden.length === 0) out('  no branch has an entry of that name\n')
    }
    return r.visible ? 0 : 1
  } catch (e) {
    return fail(e)
  }
}

/** layerfs ls --layers MNT/DIR [--json] */
export async function lsCommand(dir: string, opts: { layers?: boolean; json?: boolean }): Promise<number> {
  try {
    const loc = await locate(dir)
    const entries = await controlRequest<LsEntry[]>(loc.mountpoint, { op: 'ls', path: loc.unionPath })
    if (opts.json) {
      const branches = loc.record.branches
      out(JSON.stringify(entries.map((e) => ({ ...e, branch: branches[e.index]?.path })), null, 2) + '\n')
      return 0
    }
    const paint = painter()
    for (const e of entries) {
      const name = e.type === 'dir' ? e.name + '/' : e.type === 'symlink' ? e.name + '@' : e.name
      if (!opts.layers) { out(name + '\n'); continue }
      const origin = e.merged && e.merged.length > 1 ? e.merged.join(',') : String(e.index)
      out(`${origin.padEnd(6)} ${paint(e.index, name)}\n`)
    }
    if (opts.layers && process.stdout.isTTY) {
      out(loc.record.branches.map((b, i) => paint(i, `${i}=${b.mode}:${b.path}`)).join('  ') + '\n')
    }
    return 0
  } catch (e) {
    return fail(e)
  }
}

function duration(s: number): string {
  const d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60
  return d ? `${d}d${h}h` : h ? `${h}h${m}m` : m ? `${m}m${s % 60}s` : `${s}s`
}

/** layerfs status [MNT] [--json] */
export async function statusCommand(mnt: string | undefined, opts: { json?: boolean }): Promise<number> {
  try {
    const points = mnt !== undefined ? [(await locate(mnt)).mountpoint] : liveMounts().map((r) => r.mountpoint)
    const all: StatusResult[] = []
    let failed = 0
    for (const p of points) {
      try {
        all.push(await controlRequest<StatusResult>(p, { op: 'status' }, { timeoutMs: 10_000 }))
      } catch (e) {
        if (mnt !== undefined) throw e
        failed++
        process.stderr.write(`layerfs: ${p}: ${(e as Error).message}\n`)
      }
    }
    if (opts.json) {
      out(JSON.stringify(mnt !== undefined ? all[0] : all, null, 2) + '\n')
      return failed ? 1 : 0
    }
    if (all.length === 0 && failed === 0) out('no layerfs mounts\n')
    for (const s of all) {
      const o = s.options
      out(`${s.mountpoint}  pid ${s.pid}  up ${duration(s.uptimeSeconds)}  ${s.openFiles} open file${s.openFiles === 1 ? '' : 's'}\n`)
      for (const b of s.branches) out(`  ${String(b.index).padStart(2)} ${b.mode} ${b.path}${b.openFiles ? `  (${b.openFiles} open)` : ''}\n`)
      out(`  transport: ${s.transport}${s.protocol ? ` (FUSE 7.${s.protocol.minor}${s.protocol.passthrough ? ', passthrough' : ''}${s.protocol.writebackCache ? ', writeback cache' : ''}, ${s.protocol.kernelNodes} kernel nodes)` : ''}\n`)
      const bp = s.protocol?.busyPoll
      if (bp) out(`  busy poll: ${bp.maxMicros ? `up to ${bp.maxMicros} µs (now ${bp.windowMicros} µs), ${bp.caught} requests caught, ${bp.loopReturns} returns to the event loop` : 'off'}\n`)
      if (s.protocol) {
        const ra = s.protocol.readAhead
        out(`  read-ahead: ${ra ? `${ra.dirs} branch dirs, ${ra.entries} entries lstat'ed${ra.kept ? `, ${ra.kept} dirs kept for their listing` : ''}${ra.dropped ? `, ${ra.dropped} dropped` : ''}` : 'off'}\n`)
      }
      out(`  cache: ${s.cache.resolutions} resolutions, ${s.cache.inodes} inode numbers; kernel timeouts: entry ${o.entryTimeout}s, attr ${o.attrTimeout}s, negative ${o.negativeTimeout}s${o.revalidate !== undefined ? `; --revalidate ${o.revalidate}s` : ''}${o.coherent ? '; coherent' : ''}\n`)
      const cu = s.copyUps
      out(`  copy-ups: ${cu.files} file${cu.files === 1 ? '' : 's'}${cu.filesOffThread ? ` (${cu.filesOffThread} copied on a worker thread)` : ''}, ${cu.dirs} dir${cu.dirs === 1 ? '' : 's'}${cu.others ? `, ${cu.others} other${cu.others === 1 ? '' : 's'}` : ''}\n`)
      const ops = Object.entries(s.operations).sort((a, b) => b[1] - a[1])
      out(`  operations: ${ops.length ? ops.map(([k, v]) => `${k} ${v}`).join(', ') : 'none'}\n`)
    }
    return failed ? 1 : 0
  } catch (e) {
    return fail(e)
  }
}

function printStack(r: StackChangeResult): void {
  for (const b of r.branches) out(`  ${String(b.index).padStart(2)} ${b.mode} ${b.path}${b.openFiles ? `  (${b.openFiles} open)` : ''}\n`)
}

/**
 * The kernel-cache caveat of a stack change (docs/control.md "Kernel caches"). fuse-native
 * cannot invalidate kernel entries; `--drop-caches` asks the kernel to drop every unused dentry
 * and inode, system-wide (echo 2 > /proc/sys/vm/drop_caches): in-use ones stay until their timeout.
 */
async function cacheNote(r: StackChangeResult, dropCaches?: boolean): Promise<void> {
  if (dropCaches) {
    await fs.promises.writeFile('/proc/sys/vm/drop_caches', '2')
    return
  }
  if (r.kernelCacheSeconds > 0) {
    process.stderr.write(`layerfs: note: names and attributes the kernel looked up before may be served from its cache for up to ${r.kernelCacheSeconds}s (mount with --revalidate for a shorter bound)\n`)
  }
}

/** A real (symlink-free) absolute path for a host directory the daemon will use. */
async function realHostPath(p: string, mustExist: boolean): Promise<string> {
  const abs = path.resolve(p)
  if (mustExist) {
    try {
      return await fs.promises.realpath(abs)
    } catch (e) {
      throw new ConfigError((e as NodeJS.ErrnoException).code ?? 'EIO', `'${p}': ${(e as Error).message}`)
    }
  }
  return path.join(await fs.promises.realpath(path.dirname(abs)).catch(() => path.dirname(abs)), path.basename(abs))
}

function index(v: string, what: string): number {
  if (!/^\d+$/.test(v)) throw new ConfigError('EINVAL', `${what} '${v}' is not a branch index (0 is the top)`)
  return Number(v)
}

/** layerfs branch add MNT DIR [--below N | --top-ro] */
export async function branchAddCommand(mnt: string, dir: string, opts: { below?: string; topRo?: boolean; dropCaches?: boolean }): Promise<number> {
  try {
    if (opts.below !== undefined && opts.topRo) throw new ConfigError('EINVAL', 'give --below N or --top-ro, not both')
    const loc = await locate(mnt)
    const real = await realHostPath(dir, true)
    const r = await controlRequest<StackChangeResult>(loc.mountpoint, {
      op: 'branch-add', dir: real, below: opts.below !== undefined ? index(opts.below, '--below') : undefined, topRo: !!opts.topRo,
    })
    printStack(r)
    await cacheNote(r, opts.dropCaches)
    return 0
  } catch (e) {
    return fail(e)
  }
}

/** layerfs branch remove MNT N */
export async function branchRemoveCommand(mnt: string, n: string, opts: { dropCaches?: boolean } = {}): Promise<number> {
  try {
    const loc = await locate(mnt)
    const r = await controlRequest<StackChangeResult>(loc.mountpoint, { op: 'branch-remove', index: index(n, 'N') })
    printStack(r)
    await cacheNote(r, opts.dropCaches)
    return 0
  } catch (e) {
    return fail(e)
  }
}

/** layerfs checkpoint MNT [--to DIR] */
export async function checkpointCommand(mnt: string, opts: { to?: string }): Promise<number> {
  try {
    const loc = await locate(mnt)
    const to = opts.to !== undefined ? await realHostPath(opts.to, false) : undefined
    await flushKernelWrites(loc.mountpoint)
    const r = await controlRequest<StackChangeResult>(loc.mountpoint, { op: 'checkpoint', to })
    out(`sealed the rw branch as ${r.sealed}\n`)
    printStack(r)
    return 0
  } catch (e) {
    return fail(e)
  }
}

export const CONTROL_HELP = `
These commands talk to the daemon of a running mount over its control socket
(root only). MNT is the mount point or any path inside it. Branch indexes count
from 0, the top. See docs/control.md.`

/** Adds which, ls, status, branch and checkpoint to the CLI. */
export function registerControlCommands(program: Command): void {
  // `layerfs mount --revalidate`: picks up changes made directly in branch directories.
  program.commands.find((c) => c.name() === 'mount')?.option('--revalidate <seconds>',
    'pick up changes made directly in the branches (and stack changes) within SECONDS (e.g. 1): short kernel and daemon cache lifetimes')
  program
    .command('which')
    .description('print the branch that supplies PATH (a path inside a mount)')
    .argument('<path>')
    .option('--why', 'also tell which whiteout, opaque dir or entry hides the other branches\' entries')
    .option('--json', 'machine-readable output')
    .action(async (p: string, opts) => { process.exitCode = await whichCommand(p, opts) })
  program
    .command('ls')
    .description('list directory DIR of a mount; with --layers, each entry with the branch it comes from')
    .argument('<dir>')
    .option('--layers', 'show each entry\'s origin branch (coloured on a terminal)')
    .option('--json', 'machine-readable output (name, type, index, branch, merged)')
    .action(async (d: string, opts) => { process.exitCode = await lsCommand(d, opts) })
  program
    .command('status')
    .description('running mounts: branches, modes, pid, uptime, open files, caches, operation counts')
    .argument('[mnt]')
    .option('--json', 'machine-readable output')
    .action(async (m: string | undefined, opts) => { process.exitCode = await statusCommand(m, opts) })
  const branch = program
    .command('branch')
    .description('change the branches of a running mount')
    .addHelpText('after', CONTROL_HELP)
  branch
    .command('add')
    .description('add DIR as a ro branch (at the bottom by default)')
    .argument('<mnt>')
    .argument('<dir>')
    .option('--below <n>', 'just below branch N')
    .option('--top-ro', 'as the top ro branch (just below the rw branch)')
    .option('--drop-caches', 'then drop the kernel\'s unused dentries and inodes, system-wide (no stale names)')
    .action(async (m: string, d: string, opts) => { process.exitCode = await branchAddCommand(m, d, opts) })
  branch
    .command('remove')
    .alias('rm')
    .description('remove ro branch N (EBUSY while files from it are open)')
    .argument('<mnt>')
    .argument('<n>')
    .option('--drop-caches', 'then drop the kernel\'s unused dentries and inodes, system-wide (no stale names)')
    .action(async (m: string, n: string, opts) => { process.exitCode = await branchRemoveCommand(m, n, opts) })
  program
    .command('checkpoint')
    .description('seal the rw branch as a new ro branch (moved to DIR) and start an empty rw branch, live')
    .argument('<mnt>')
    .option('--to <dir>', 'where the sealed layer goes (default: UPPER.ckpt-N); same file system as the rw branch')
    .action(async (m: string, opts) => { process.exitCode = await checkpointCommand(m, opts) })
}
