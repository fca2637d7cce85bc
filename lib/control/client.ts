// The client end of the control channel: find the mount a path lies in (from the records in the
// run directory, without touching the mount), send one request, return its result.
import { execFile } from 'node:child_process'
import * as net from 'node:net'
import * as path from 'node:path'
import { fs } from '../fs.js'
import { isAlive, listRecords, socketFileFor, type MountRecord } from '../daemon/registry.js'
import { ConfigError } from '../options.js'
import type { ControlRequest, ControlResponse } from './protocol.js'

export interface Located {
  readonly mountpoint: string
  /** The path inside the union ('/' for the mount point itself). */
  readonly unionPath: string
  readonly record: MountRecord
}

function inside(child: string, parent: string): boolean {
  return child === parent || child.startsWith(parent === '/' ? '/' : parent + '/')
}

/** The live layerfs mounts recorded in the run directory. */
export function liveMounts(): MountRecord[] {
  return listRecords().filter((r) => isAlive(r.pid)).sort((a, b) => a.mountpoint.localeCompare(b.mountpoint))
}

/**
 * The mount that `p` lies in, and `p` as a union path. Tries the path as given (made absolute),
 * then with its parent directory's symlinks resolved (the last component is never followed,
 * so `which MNT/link` asks about the link). ENOENT-like ConfigError when no mount holds it.
 */
export async function locate(p: string): Promise<Located> {
  const mounts = liveMounts()
  const find = (abs: string): Located | undefined => {
    let best: MountRecord | undefined
    for (const r of mounts) if (inside(abs, r.mountpoint) && (!best || r.mountpoint.length > best.mountpoint.length)) best = r
    if (!best) return undefined
    const rest = abs.slice(best.mountpoint.length)
    return { mountpoint: best.mountpoint, unionPath: rest === '' ? '/' : rest, record: best }
  }
  const abs = path.resolve(p)
  const direct = find(abs)
  if (direct) return direct
  try {
    const real = path.join(await fs.promises.realpath(path.dirname(abs)), path.basename(abs))
    const found = find(real)
    if (found) return found
  } catch {
    // fall through
  }
  throw new ConfigError('ENOENT', `'${p}' is not inside a running layerfs mount`)
}

/**
 * Makes the kernel send the mount's cached writes to the daemon now (syncfs(2), by coreutils'
 * `sync -f` in a child process, so even a process that serves the mount itself waits without
 * blocking). A checkpoint does this first: with the writeback cache (and for writes through a
 * shared mmap) data written before the checkpoint may still be in the page cache, and would
 * otherwise reach the daemon afterwards and land in the new rw branch, not in the sealed layer.
 */
export function flushKernelWrites(mountpoint: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('sync', ['-f', mountpoint], { timeout: 120_000 }, (err, _out, stderr) => {
      if (!err) return resolve()
      const why = String(stderr).trim() || err.message
      reject(new ConfigError('EIO', `cannot flush the kernel's cached writes of '${mountpoint}': ${why}`))
    })
  })
}

/**
 * Sends one request to the daemon serving `mountpoint` and resolves with its result; rejects
 * with a ConfigError carrying the daemon's errno code and message.
 */
export function controlRequest<T = unknown>(mountpoint: string, req: ControlRequest, opts: { timeoutMs?: number } = {}): Promise<T> {
  const sockPath = socketFileFor(mountpoint)
  return new Promise<T>((resolve, reject) => {
    const sock = net.createConnection(sockPath)
    let buf = ''
    const timer = setTimeout(() => {
      sock.destroy()
      reject(new ConfigError('ETIMEDOUT', `the daemon of '${mountpoint}' did not answer`))
    }, opts.timeoutMs ?? 60_000)
    sock.setEncoding('utf8')
    sock.on('connect', () => sock.write(JSON.stringify(req) + '\n'))
    sock.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer)
      const why = e.code === 'ENOENT' || e.code === 'ECONNREFUSED' ? 'no control socket (daemon gone, or started by an older layerfs)' : e.message
      reject(new ConfigError(e.code ?? 'EIO', `cannot reach the daemon of '${mountpoint}': ${why}`))
    })
    sock.on('data', (chunk: string) => {
      buf += chunk
      const nl = buf.indexOf('\n')
      if (nl < 0) return
      clearTimeout(timer)
      sock.end()
      let res: ControlResponse
      try {
        res = JSON.parse(buf.slice(0, nl)) as ControlResponse
      } catch {
        return reject(new ConfigError('EIO', 'malformed answer from the daemon'))
      }
      if (res.ok) resolve(res.result as T)
      else reject(new ConfigError(res.code, res.message))
    })
  })
}
