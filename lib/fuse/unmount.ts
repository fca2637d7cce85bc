// Unmounting a FUSE mount point: umount(2) as root, fusermount otherwise; retried while busy.
import { execFile } from 'node:child_process'
import { isMountpoint } from '../options.js'

function run(cmd: string, args: string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, (err, _out, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stderr: String(stderr) })
    })
  })
}

export interface UnmountOptions {
  /** Detach now even while busy (umount -l): open files keep working until closed. */
  readonly lazy?: boolean
  /** How long to retry a busy mount point before giving up with EBUSY. */
  readonly busyRetryMs?: number
}

/**
 * Unmounts `mnt` (a real path). Resolves once it is no longer a mount point; rejects with an
 * error whose code is EBUSY (still in use), EINVAL (not mounted) or EIO.
 */
export async function unmountPath(mnt: string, opts: UnmountOptions = {}): Promise<void> {
  if (!isMountpoint(mnt)) throw Object.assign(new Error(`'${mnt}' is not mounted`), { code: 'EINVAL' })
  const root = process.getuid?.() === 0
  const deadline = Date.now() + (opts.busyRetryMs ?? 2000)
  let delay = 20
  for (;;) {
    const r = root
      ? await run('umount', opts.lazy ? ['-l', mnt] : [mnt])
      : await run('fusermount', opts.lazy ? ['-uz', mnt] : ['-u', mnt])
    if (!isMountpoint(mnt)) return
    const busy = /busy/i.test(r.stderr)
    if (!busy || Date.now() > deadline) {
      const code = busy ? 'EBUSY' : 'EIO'
      throw Object.assign(new Error(`cannot unmount '${mnt}': ${r.stderr.trim() || 'still mounted'}`), { code })
    }
    await new Promise((res) => setTimeout(res, delay))
    delay = Math.min(delay * 2, 200)
  }
}
