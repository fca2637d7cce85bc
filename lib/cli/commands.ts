// The CLI's commands, as functions returning an exit code; bin/layerfs.ts only parses argv.
import * as path from 'node:path'
import { fs } from '../fs.js'
import { enableDebug } from '../log.js'
import {
  ConfigError, checkMountpoint, isMountpoint, parseBranches, parseMountOptions, resolveStack, type BranchInput,
} from '../options.js'
import { unmountPath } from '../fuse/unmount.js'
import { checkWriteback, chooseTransport, parseBusyPoll, parseTransport } from '../fuse/mount.js'
import { isAlive, logFileFor, readRecord, removeRecord } from '../daemon/registry.js'
import { runMountDaemon } from '../daemon/run-daemon.js'
import { startDaemon } from '../daemon/start.js'

export interface MountCommandOptions {
  foreground?: boolean
  upper?: string
  o?: string[]
  debug?: boolean
  ipc?: boolean
  watchParent?: boolean
  allowOther?: boolean
  entryTimeout?: string
  attrTimeout?: string
  negativeTimeout?: string
  coherent?: boolean
  /** --revalidate [SECONDS] (added by lib/cli/control-commands.ts); true means the default bound. */
  revalidate?: string | boolean
  transport?: string
  passthrough?: boolean
  busyPoll?: string
  writebackCache?: boolean
}

function fail(message: string): number {
  process.stderr.write(`layerfs: ${message}\n`)
  return 1
}

/** The stack from "BRANCHES" and/or -o lowerdir=,upperdir= (overlayfs style, lowerdir top first). */
function stackFrom(spec: string | undefined, o: readonly string[], upperFlag?: string): { branches: BranchInput[]; upper?: string; passThrough: string[] } {
  const mo = parseMountOptions(o)
  if (spec === undefined && mo.lowerdir === undefined) throw new ConfigError('EINVAL', 'no branches given (BRANCHES or -o lowerdir=…)')
  if (upperFlag !== undefined && mo.upperdir !== undefined) throw new ConfigError('EINVAL', 'give the rw branch either as --upper or as -o upperdir=, not both')
  if (mo.lowerdir !== undefined) {
    // mount(8) style: "layerfs SOURCE MOUNTPOINT -o lowerdir=…": SOURCE is only a name.
    const lowers = parseBranches(mo.lowerdir).map((b) => {
      if (b.mode === 'rw') throw new ConfigError('EINVAL', `lowerdir '${b.path}' cannot be rw`)
      return { path: b.path, mode: 'ro' as const }
    })
    return { branches: lowers, upper: mo.upperdir, passThrough: mo.other }
  }
  return { branches: parseBranches(spec!), upper: upperFlag ?? mo.upperdir, passThrough: mo.other }
}

/** The bound of a bare --revalidate, in seconds (docs/control.md "Changes underneath"). */
export const REVALIDATE_DEFAULT_SECONDS = 1

const seconds = (v: string | undefined): number | undefined => {
  if (v === undefined) return undefined
  const n = Number(v)
  if (!Number.isFinite(n) || n < 0) throw new ConfigError('EINVAL', `'${v}' is not a number of seconds`)
  return n
}

/** layerfs mount [BRANCHES] MOUNTPOINT */
export async function mountCommand(positional: string[], opts: MountCommandOptions, rawArgs: string[]): Promise<number> {
  try {
    if (opts.debug) enableDebug()
    if (positional.length < 1 || positional.length > 2) throw new ConfigError('EINVAL', 'usage: layerfs mount [options] BRANCHES MOUNTPOINT')
    const mountpoint = positional[positional.length - 1]!
    const spec = positional.length === 2 ? positional[0] : undefined
    const { branches, upper, passThrough } = stackFrom(spec, opts.o ?? [], opts.upper)
    const unknown = passThrough.filter((o) => !['rw', 'ro', 'allow_other', 'default_permissions', 'suid', 'dev', 'nosuid', 'nodev', 'exec', 'noexec', 'auto', 'noauto', 'user', 'nouser', 'defaults', '_netdev'].includes(o))
    if (unknown.length > 0) throw new ConfigError('EINVAL', `unknown mount option '${unknown[0]}'`)
    const readOnly = passThrough.includes('ro')
    const inputs = readOnly ? branches.map((b) => ({ path: b.path, mode: 'ro' as const })) : branches
    // dev/suid are opt-in (FUSE mounts are nodev,nosuid by default): the daemon makes every new
    // file as itself (root), so suid would let any user make a setuid-root program. Only for
    // stacks whose users are all trusted (layerfs run).
    const serveOpts = {
      dev: passThrough.includes('dev'), suid: passThrough.includes('suid'),
      allowOther: opts.allowOther ?? (passThrough.includes('allow_other') ? true : undefined),
      entryTimeout: seconds(opts.entryTimeout), attrTimeout: seconds(opts.attrTimeout), negativeTimeout: seconds(opts.negativeTimeout),
      coherent: opts.coherent,
      transport: opts.transport !== undefined ? parseTransport(opts.transport) : undefined,
      passthrough: opts.passthrough,
      busyPoll: opts.busyPoll !== undefined ? parseBusyPoll(opts.busyPoll) : undefined,
      writebackCache: opts.writebackCache,
      revalidate: opts.revalidate === undefined || opts.revalidate === false ? undefined : opts.revalidate === true ? REVALIDATE_DEFAULT_SECONDS : seconds(opts.revalidate),
    }
    if (opts.foreground) {
      return await runMountDaemon({ branches: inputs, upper: readOnly ? undefined : upper, mountpoint, ipc: !!opts.ipc, watchParent: !!opts.watchParent, serve: serveOpts })
    }
    // Check everything here first, so a bad stack fails in the user's terminal and nothing starts.
    resolveStack({ branches: inputs, upper: readOnly ? undefined : upper, mountpoint })
    checkWriteback(serveOpts, chooseTransport(serveOpts.transport))
    const real = checkMountpoint(mountpoint)
    const logFd = fs.openSync(logFileFor(real), 'a', 0o600)
    const args = rawArgs.filter((a) => a !== '-f' && a !== '--foreground')
    const { child } = await startDaemon(args, { detached: true, logFd })
    fs.closeSync(logFd)
    child.unref()
    return 0
  } catch (e) {
    return fail(e instanceof ConfigError ? e.message : String((e as Error)?.message ?? e))
  }
}

/** layerfs umount MOUNTPOINT: unmount, then wait for the daemon to exit. */
export async function umountCommand(mnt: string, opts: { lazy?: boolean }): Promise<number> {
  // path.resolve, not realpath: resolving inside a dead mount would hang or fail.
  const mountpoint = path.resolve(mnt)
  const rec = readRecord(mountpoint)
  if (!isMountpoint(mountpoint)) {
    if (rec && !isAlive(rec.pid)) removeRecord(mountpoint)
    return fail(`'${mountpoint}' is not mounted`)
  }
  const stale = rec === undefined || !isAlive(rec.pid)
  try {
    await unmountPath(mountpoint, { lazy: opts.lazy })
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    if (code === 'EBUSY') return fail(`'${mountpoint}' is busy (files open or a process inside); close them or use --lazy`)
    return fail((e as Error).message)
  }
  if (stale) {
    process.stderr.write(`layerfs: cleaned up a stale mount on '${mountpoint}' (its daemon was gone)\n`)
  } else {
    const deadline = Date.now() + 10_000
    while (isAlive(rec.pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
    if (isAlive(rec.pid)) return fail(`unmounted '${mountpoint}', but daemon ${rec.pid} did not exit`)
  }
  removeRecord(mountpoint)
  return 0
}
