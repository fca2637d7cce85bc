// The daemon's end of the control channel: a root-only unix socket beside the mount's record
// (RUNDIR/<hash>.sock, mode 0600), one JSON request per line, one JSON response per line.
// Requests run on the daemon's event loop between FUSE requests and never touch the mount.
import * as net from 'node:net'
import { errnoName } from '../errors.js'
import { fs } from '../fs.js'
import type { ServedMount } from '../fuse/mount.js'
import { createLogger } from '../log.js'
import type { ControlRequest, ControlResponse } from './protocol.js'
import { handleRequest, type ServiceHooks } from './service.js'

const log = createLogger('layerfs:control')
/** A request line longer than this closes the connection (requests are small). */
const MAX_LINE = 1 << 20

export interface ControlServer {
  readonly socketPath: string
  close(): Promise<void>
}

/**
 * Listens on `socketPath` (a stale socket file there is replaced) and answers requests for `m`.
 * The socket is made 0600 before it is announced: only its owner (root) can connect.
 */
export async function startControlServer(m: ServedMount, socketPath: string, hooks: ServiceHooks): Promise<ControlServer> {
  fs.rmSync(socketPath, { force: true })
  const server = net.createServer((sock) => serveConnection(m, sock, hooks))
  const oldMask = process.umask(0o177) // the socket is created 0600, with no window before chmod
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(socketPath, () => resolve())
    })
  } finally {
    process.umask(oldMask)
  }
  fs.chmodSync(socketPath, 0o600)
  server.unref() // the mount, not the socket, keeps the daemon alive
  return {
    socketPath,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve())
      fs.rmSync(socketPath, { force: true })
    }),
  }
}

function serveConnection(m: ServedMount, sock: net.Socket, hooks: ServiceHooks): void {
  let buf = ''
  let chain = Promise.resolve()
  sock.setEncoding('utf8')
  sock.on('error', () => sock.destroy())
  sock.on('data', (chunk: string) => {
    buf += chunk
    if (buf.length > MAX_LINE && !buf.includes('\n')) return sock.destroy()
    let nl: number
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl)
      buf = buf.slice(nl + 1)
      if (line.trim() === '') continue
      // One at a time per connection, answered in order.
      chain = chain.then(() => answer(m, line, hooks)).then((res) => {
        if (!sock.destroyed) sock.write(JSON.stringify(res) + '\n')
      })
    }
  })
}

async function answer(m: ServedMount, line: string, hooks: ServiceHooks): Promise<ControlResponse> {
  let req: ControlRequest
  try {
    req = JSON.parse(line) as ControlRequest
  } catch {
    return { ok: false, code: 'EINVAL', message: 'malformed request (one JSON object per line)' }
  }
  try {
    const result = await handleRequest(m, req, hooks)
    return { ok: true, result: result ?? null }
  } catch (e) {
    const code = errnoName(e) ?? (e as { code?: string }).code ?? 'EIO'
    if (errnoName(e) === undefined && !(e as { code?: string }).code) log.warnOnce(`bug:${req.op}`, 'control %s failed: %s', req.op, (e as Error)?.stack ?? e)
    return { ok: false, code, message: (e as Error)?.message ?? String(e) }
  }
}
