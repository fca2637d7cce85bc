// The mount daemon (layerfs mount --foreground): check the stack, mount, serve until unmounted
// or signalled, then clean up. Its stderr is never inside the mount (style guide §4.4).
import { fs } from '../fs.js'
import type { BranchInput } from '../options.js'
import { ConfigError, resolveStack } from '../options.js'
import { LayerFs } from '../layerfs.js'
import { serve, type ServeOptions, type ServedMount } from '../fuse/mount.js'
import { startControlServer, type ControlServer } from '../control/server.js'
import { tuneV8ForDaemon } from './v8-tuning.js'
import { removeEmptyLog, removeRecord, socketFileFor, writeRecord } from './registry.js'
import type { DaemonMessage } from './start.js'

export interface DaemonArgs {
  readonly branches: readonly BranchInput[]
  readonly upper?: string
  readonly mountpoint: string
  /** Started by startDaemon(): report ready/error over IPC instead of stderr. */
  readonly ipc: boolean
  /** Keep the IPC channel and unmount when it closes (the parent exited or was killed). */
  readonly watchParent?: boolean
  readonly serve: ServeOptions
}

function send(m: DaemonMessage): void {
  if (process.send) process.send(m)
}

/** Runs the daemon to the end; resolves with the process exit code. */
export async function runMountDaemon(args: DaemonArgs): Promise<number> {
  tuneV8ForDaemon()
  let mounted: ServedMount
  let control: ControlServer | undefined
  try {
    const specs = resolveStack({ branches: args.branches, upper: args.upper, mountpoint: args.mountpoint })
    process.umask(0) // the kernel already applied the caller's umask to every mode it sends
    const rv = args.serve.revalidate
    const core = new LayerFs(specs, { cacheTtlMs: rv !== undefined ? rv * 1000 : undefined })
    try {
      mounted = await serve(core, fs.realpathSync(args.mountpoint), args.serve)
    } catch (e) {
      core.close() // nothing mounted: leave the rw branch as it was (no work area)
      throw e
    }
    const started = new Date()
    const m = mounted
    writeRecord({ pid: process.pid, mountpoint: m.mountpoint, branches: specs, started: started.toISOString() })
    // The control channel (docs/control.md); the stack it changes is recorded at once.
    control = await startControlServer(m, socketFileFor(m.mountpoint), {
      started,
      onStackChange: (now) => writeRecord({ pid: process.pid, mountpoint: m.mountpoint, branches: now, started: started.toISOString() }),
    }).catch((e) => {
      // The mount works without it; only `layerfs which/status/branch/checkpoint` do not.
      process.stderr.write(`layerfs: no control channel for '${m.mountpoint}': ${(e as Error).message}\n`)
      return undefined
    })
  } catch (e) {
    const code = (e as ConfigError).code ?? 'EIO'
    const message = e instanceof ConfigError ? e.message : String((e as Error)?.message ?? e)
    if (args.ipc && process.send) {
      send({ type: 'error', code, message })
      process.disconnect?.()
    } else {
      process.stderr.write(`layerfs: ${message}\n`)
    }
    return 1
  }
  if (args.ipc) {
    send({ type: 'ready', mountpoint: mounted.mountpoint, pid: process.pid })
    if (!args.watchParent) process.disconnect?.()
  }
  let stopping = false
  const stop = (): void => {
    if (stopping) return
    stopping = true
    // Clean end on SIGTERM/SIGINT: a normal unmount, then a lazy one if it stays busy, so the
    // daemon never exits leaving a dead mount behind.
    mounted.unmount({ busyRetryMs: 2000 }).catch(() => mounted.unmount({ lazy: true })).catch((e) => {
      process.stderr.write(`layerfs: ${(e as Error).message}\n`)
    })
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
  process.on('SIGHUP', stop)
  if (args.ipc && args.watchParent) process.on('disconnect', stop)
  await mounted.closed
  await control?.close()
  removeRecord(mounted.mountpoint)
  removeEmptyLog(mounted.mountpoint)
  return 0
}
