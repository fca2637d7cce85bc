// `layerfs run`: mount [rw branch, init layer, image…] through a daemon process, run CMD in new
// mount and PID namespaces rooted in the merged view (unshare.ts), forward signals, return its
// exit code, and unmount everything afterwards, whatever way CMD ended.
import { spawn, type StdioOptions } from 'node:child_process'
import * as os from 'node:os'
import * as path from 'node:path'
import { fs } from '../fs.js'
import { ConfigError, isMountpoint, parseBranches, resolveStack, type BranchInput } from '../options.js'
import { startDaemon } from '../daemon/start.js'
import { unmountPath } from '../fuse/unmount.js'
import { UnionView } from '../union-view.js'
import { initLayerEntries, readHostResolvConf, writeInitLayer, type DirAttrs } from './init-layer.js'
import { CONTAINER_PATH, containerEnv, unshareArgv, type NetMode } from './unshare.js'

export interface RunOptions {
  /** The image, top first ("app:base" or parsed inputs). Every branch is used read-only. */
  readonly branches: string | readonly BranchInput[]
  /** CMD and its arguments; CMD is looked up in the image's PATH. */
  readonly cmd: readonly string[]
  /** The rw branch (created when missing, never removed). Default: a temp dir, removed afterwards unless `keep`. */
  readonly upper?: string
  /** A UTS namespace with this host name. */
  readonly hostname?: string
  /** Where to generate the init layer (kept). Default: a temp dir, removed afterwards. */
  readonly initLayer?: string
  /** Keep the temporary rw branch for inspection (see `onReady` for where it is). */
  readonly keep?: boolean
  /** 'none': a network namespace with only a loopback device. Default 'host'. */
  readonly net?: NetMode
  /**
   * Serve the container's root with the kernel's writeback cache (`mount --writeback-cache`):
   * much faster small writes (builds, logs); write errors then show at close or fsync.
   */
  readonly writebackCache?: boolean
  /** The command's stdio, as child_process.spawn takes it. Default 'inherit' (terminal passes through). */
  readonly stdio?: StdioOptions
  /** Called once CMD has started, with the paths in use and the host pid of unshare(1) (stage 1 after its exec). */
  readonly onReady?: (info: RunInfo) => void
}

export interface RunInfo {
  readonly upper: string
  readonly initLayer: string
  readonly mountpoint: string
  readonly pid: number
}

/** Signals forwarded to the container's PID 1. A third one of the same kind sends SIGKILL. */
const FORWARDED = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT'] as const

const HOSTNAME_RE = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/

/** Whether `prog` is an executable file on the host's PATH. */
async function onHostPath(prog: string): Promise<boolean> {
  const dirs = prog.includes('/') ? [''] : (process.env.PATH ?? CONTAINER_PATH).split(':')
  for (const d of dirs) {
    try {
      await fs.promises.access(d === '' ? prog : path.join(d, prog), fs.constants.X_OK)
      return true
    } catch {
      // not in this directory: try the next one
    }
  }
  return false
}

/**
 * Checks everything that can be checked before mounting, so bad input costs one line and
 * leaves nothing behind. Throws ConfigError.
 */
async function checkRequest(opts: RunOptions): Promise<{ image: BranchInput[]; net: NetMode }> {
  if (opts.cmd.length === 0 || opts.cmd[0] === '') {
    throw new ConfigError('EINVAL', 'no command given (usage: layerfs run [options] BRANCHES -- CMD [ARGS...])')
  }
  const net = opts.net ?? 'host'
  if (net !== 'host' && net !== 'none') throw new ConfigError('EINVAL', `--net '${String(net)}' is not supported: use 'none' (or leave it out to share the host's network)`)
  if (opts.hostname !== undefined && (!HOSTNAME_RE.test(opts.hostname) || opts.hostname.length > 64)) {
    throw new ConfigError('EINVAL', `'${opts.hostname}' is not a valid host name`)
  }
  if (process.platform !== 'linux') throw new ConfigError('ENOSYS', 'layerfs run needs Linux (mount and PID namespaces)')
  if (process.getuid?.() !== 0) {
    throw new ConfigError('EPERM', 'layerfs run needs root: it mounts with FUSE and creates mount and PID namespaces (try sudo)')
  }
  if (!(await onHostPath('unshare'))) throw new ConfigError('ENOENT', 'unshare(1) not found on the host: install util-linux')
  const inputs = typeof opts.branches === 'string' ? parseBranches(opts.branches) : opts.branches
  const rw = inputs.find((b) => b.mode === 'rw')
  if (rw) throw new ConfigError('EINVAL', `image branch '${rw.path}' is rw: the image is read-only in layerfs run (give the rw branch with --upper)`)
  const image = inputs.map((b) => ({ path: b.path, mode: 'ro' as const }))
  resolveStack({ branches: image }) // missing, duplicate, overlapping branches: one line, nothing made
  return { image, net }
}

/** The union path CMD resolves to in `view` (PATH search as execvp), or undefined. */
async function findProgram(view: UnionView, prog: string): Promise<string | undefined> {
  const candidates = prog.includes('/') ? [path.posix.resolve('/', prog)] : CONTAINER_PATH.split(':').map((d) => `${d}/${prog}`)
  for (const c of candidates) {
    try {
      const st = await view.stat(c)
      if (st.isFile() && (st.mode & 0o111) !== 0) return c
    } catch {
      // ENOENT, ELOOP, ENOTDIR…: not here
    }
  }
  return undefined
}

/** The host pid of stage 1's one child (unshare execs stage 1): the container's PID 1. */
async function containerInit(unsharePid: number): Promise<number | undefined> {
  try {
    const kids = (await fs.promises.readFile(`/proc/${unsharePid}/task/${unsharePid}/children`, 'utf8')).trim()
    if (kids !== '') return Number(kids.split(/\s+/)[0])
  } catch {
    // no /proc children file (CONFIG_PROC_CHILDREN off): scan the process table below
  }
  for (const name of await fs.promises.readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(name)) continue
    const stat = await fs.promises.readFile(`/proc/${name}/stat`, 'utf8').catch(() => '')
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
    if (ppid === unsharePid) return Number(name)
  }
  return undefined
}

/**
 * Runs `cmd` in a container made of `branches` and resolves with its exit code (128+N when it
 * was killed by signal N; 125 when the container could not be set up, 127 when CMD is missing).
 * Rejects with ConfigError, before anything is mounted, for bad input: no command, a bad stack,
 * CMD not in the image, no root. Whatever happens after the mount, it is unmounted, the daemon
 * has exited and the temporary directories are gone (the rw branch stays with `keep`).
 */
export async function run(opts: RunOptions): Promise<number> {
  const { image, net } = await checkRequest(opts)
  const upperExists = opts.upper !== undefined && fs.existsSync(opts.upper)
  const view = new UnionView([...(upperExists ? [{ path: opts.upper!, mode: 'ro' as const }] : []), ...image])
  const prog = opts.cmd[0]!
  if ((await findProgram(view, prog)) === undefined) {
    throw new ConfigError('ENOENT', `'${prog}' not found in the image${prog.includes('/') ? '' : ` (PATH ${CONTAINER_PATH})`}`)
  }

  const work = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'layerfs-run-'))
  const upper = opts.upper ?? path.join(work, 'upper')
  const initLayer = opts.initLayer ?? path.join(work, 'init')
  const mountpoint = path.join(work, 'root')
  let daemon: { exited: Promise<void> } | undefined
  try {
    await fs.promises.mkdir(upper, { recursive: true, mode: 0o755 })
    if (opts.upper === undefined) await fs.promises.chmod(upper, 0o755) // the container's '/' takes the rw branch's mode
    await fs.promises.mkdir(mountpoint)
    const hostname = opts.hostname ?? os.hostname()
    const imageDir = (p: string): DirAttrs | undefined => {
      const a = view.core.tryGetattr(p)
      return a && (a.mode & fs.constants.S_IFMT) === fs.constants.S_IFDIR ? { mode: a.mode, uid: a.uid, gid: a.gid, mtime: new Date(a.mtimeMs) } : undefined
    }
    await writeInitLayer(initLayer, initLayerEntries({ hostname, net, hostResolvConf: await readHostResolvConf(), imageDir }))

    // Top first: the rw branch (index 0), the init layer (ro), then the image (union-contract.md).
    const esc = (p: string): string => p.replace(/:/g, '\\:')
    const spec = [`${esc(upper)}=rw`, `${esc(initLayer)}=ro`, ...image.map((b) => `${esc(b.path)}=ro`)].join(':')
    // Detached: a Ctrl-C meant for CMD must not reach the daemon and unmount the container's root.
    const mountArgs = opts.writebackCache ? ['--writeback-cache'] : []
    const started = await startDaemon([...mountArgs, spec, mountpoint], { detached: true, logFd: 'inherit', watchParent: true })
    const child = started.child
    daemon = { exited: new Promise<void>((r) => (child.exitCode !== null || child.signalCode !== null ? r() : child.once('exit', () => r()))) }
    return await launch(opts, started.mountpoint, net, { upper, initLayer, mountpoint: started.mountpoint })
  } finally {
    await cleanup({ mountpoint, daemon, work, removeUpper: opts.upper === undefined && !opts.keep, upper })
  }
}

/** Spawns unshare and waits for it, forwarding signals to the container's PID 1. */
async function launch(opts: RunOptions, root: string, net: NetMode, paths: Omit<RunInfo, 'pid'>): Promise<number> {
  // setpriv: if this process is SIGKILLed, unshare's stage 1 gets SIGKILL too, and with it (its
  // own parent-death signal) the container's PID 1 and so the whole PID namespace.
  const setpriv = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => fs.existsSync(p))
  const argv = [
    ...(setpriv ? [setpriv, '--pdeathsig', 'KILL', '--'] : []),
    ...unshareArgv({ root, cmd: opts.cmd, hostname: opts.hostname, net, arch: process.arch }),
  ]
  const stdio = opts.stdio ?? 'inherit'
  const child = spawn(argv[0]!, argv.slice(1), {
    stdio,
    env: containerEnv({ hostname: opts.hostname, term: process.env.TERM }),
  })
  // When the terminal is shared, it already sends ^C and ^\ to CMD (same process group).
  const fromTty = stdio === 'inherit' && process.stdin.isTTY === true
  const counts = new Map<string, number>()
  const forward = (sig: NodeJS.Signals): void => {
    const n = (counts.get(sig) ?? 0) + 1
    counts.set(sig, n)
    if (child.pid === undefined) return
    if (n >= 3) {
      child.kill('SIGKILL') // stage 1: its parent-death signal takes the whole PID namespace with it
      return
    }
    if (fromTty && (sig === 'SIGINT' || sig === 'SIGQUIT')) return
    void containerInit(child.pid).then((pid) => {
      if (pid === undefined) return
      try {
        process.kill(pid, sig)
      } catch {
        // already gone: its exit is on the way
      }
    })
  }
  const handlers = FORWARDED.map((sig) => [sig, () => forward(sig)] as const)
  for (const [sig, h] of handlers) process.on(sig, h)
  try {
    return await new Promise<number>((resolve, reject) => {
      child.once('error', (e) => reject(new ConfigError('EIO', `cannot start unshare: ${e.message}`)))
      child.once('spawn', () => opts.onReady?.({ ...paths, pid: child.pid! }))
      child.once('exit', (code, signal) => {
        if (code !== null) resolve(code)
        else resolve(128 + (os.constants.signals[signal as NodeJS.Signals] ?? 0))
      })
    })
  } finally {
    for (const [sig, h] of handlers) process.off(sig, h)
  }
}

/** Unmount (lazily if still busy), wait for the daemon, remove what was temporary. Never throws. */
async function cleanup(c: { mountpoint: string; daemon?: { exited: Promise<void> }; work: string; removeUpper: boolean; upper: string }): Promise<void> {
  if (isMountpoint(c.mountpoint)) {
    await unmountPath(c.mountpoint, { busyRetryMs: 5000 }).catch(() => unmountPath(c.mountpoint, { lazy: true })).catch(() => undefined)
  }
  if (c.daemon) await c.daemon.exited
  if (isMountpoint(c.mountpoint)) return // never delete a tree through a live mount
  const fsp = fs.promises
  await fsp.rmdir(c.mountpoint).catch(() => undefined)
  if (!c.removeUpper) {
    // The kept rw branch: everything else under the work dir goes.
    for (const name of await fsp.readdir(c.work).catch(() => [] as string[])) {
      if (path.join(c.work, name) !== c.upper) await fsp.rm(path.join(c.work, name), { recursive: true, force: true }).catch(() => undefined)
    }
    if ((await fsp.readdir(c.work).catch(() => ['?'])).length === 0) await fsp.rmdir(c.work).catch(() => undefined)
    return
  }
  await fsp.rm(c.work, { recursive: true, force: true }).catch(() => undefined)
}

