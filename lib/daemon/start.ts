// Starting a mount daemon in its own process (the CLI in the foreground, talking over IPC), so
// the process that asked for the mount may use it freely, even synchronously.
import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { fs } from '../fs.js'
import { ConfigError } from '../options.js'

/** The compiled CLI entry next to this module (dist/bin/layerfs.js). */
export function cliPath(): string {
  return fileURLToPath(new URL('../../bin/layerfs.js', import.meta.url))
}

/** Messages a daemon sends its parent over IPC. */
export type DaemonMessage =
  | { type: 'ready'; mountpoint: string; pid: number }
  | { type: 'error'; code: string; message: string }

export interface StartedDaemon {
  readonly child: ChildProcess
  readonly mountpoint: string
}

/**
 * Runs `layerfs mount --foreground ARGS` as a child and resolves when its mount is ready;
 * rejects with a ConfigError carrying the daemon's own one-line message otherwise.
 * `logFd`: where the daemon's stderr goes (a file descriptor), or 'inherit'.
 */
export function startDaemon(args: readonly string[], opts: { detached?: boolean; logFd?: number | 'inherit'; watchParent?: boolean } = {}): Promise<StartedDaemon> {
  const cli = cliPath()
  if (!fs.existsSync(cli)) throw new ConfigError('ENOENT', `the layerfs CLI is not built (${cli}): run npm run build`)
  const out = opts.logFd ?? 'inherit'
  // --watch-parent: the daemon keeps the IPC channel and unmounts when it closes, so the mount
  // never outlives the process that asked for it (not even after SIGKILL of that process).
  const flags = ['--foreground', '--ipc', ...(opts.watchParent ? ['--watch-parent'] : [])]
  const child = spawn(process.execPath, [cli, 'mount', ...flags, ...args], {
    stdio: ['ignore', out, out, 'ipc'],
    detached: opts.detached ?? false,
    env: { ...process.env, UV_THREADPOOL_SIZE: process.env.UV_THREADPOOL_SIZE ?? '16' },
  })
  return new Promise((resolve, reject) => {
    const onExit = (code: number | null, signal: string | null): void => {
      reject(new ConfigError('EIO', `the mount daemon exited before the mount was ready (${signal ?? `exit code ${code}`})`))
    }
    child.once('exit', onExit)
    child.once('error', (e) => reject(new ConfigError('EIO', `cannot start the mount daemon: ${e.message}`)))
    child.on('message', (m: DaemonMessage) => {
      child.off('exit', onExit)
      if (m.type === 'ready') {
        // The open channel must not keep this process alive: its close is the daemon's signal.
        if (opts.watchParent) (child.channel as unknown as { unref?: () => void } | undefined)?.unref?.()
        resolve({ child, mountpoint: m.mountpoint })
      }
      else reject(new ConfigError(m.code, m.message))
    })
  })
}
