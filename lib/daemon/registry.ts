// Where running daemons are recorded (pid per mount point), so `layerfs umount` can wait for
// the daemon to exit. Root: /run/layerfs; others: $TMPDIR/layerfs-UID; LAYERFS_RUN_DIR overrides.
import { createHash } from 'node:crypto'
import * as os from 'node:os'
import { fs } from '../fs.js'

export interface MountRecord {
  readonly pid: number
  readonly mountpoint: string
  readonly branches: readonly { path: string; mode: string }[]
  readonly started: string
}

export function runDir(): string {
  if (process.env.LAYERFS_RUN_DIR) return process.env.LAYERFS_RUN_DIR
  return process.getuid?.() === 0 ? '/run/layerfs' : `${os.tmpdir()}/layerfs-${process.getuid?.() ?? 0}`
}

function fileFor(mountpoint: string, ext: string): string {
  return `${runDir()}/${createHash('sha1').update(mountpoint).digest('hex').slice(0, 16)}.${ext}`
}

/** The daemon's log file for a mount point (stderr of a background daemon). */
export function logFileFor(mountpoint: string): string {
  fs.mkdirSync(runDir(), { recursive: true, mode: 0o700 })
  return fileFor(mountpoint, 'log')
}

/** The control socket of a mount's daemon (lib/control/server.ts). */
export function socketFileFor(mountpoint: string): string {
  return fileFor(mountpoint, 'sock')
}

/** Every mount record in the run directory (whether or not its daemon still runs). */
export function listRecords(): MountRecord[] {
  let names: string[]
  try {
    names = fs.readdirSync(runDir())
  } catch {
    return []
  }
  const out: MountRecord[] = []
  for (const n of names) {
    if (!n.endsWith('.json')) continue
    try {
      out.push(JSON.parse(fs.readFileSync(`${runDir()}/${n}`, 'utf8')) as MountRecord)
    } catch {
      // being written or removed right now
    }
  }
  return out
}

export function writeRecord(rec: MountRecord): void {
  fs.mkdirSync(runDir(), { recursive: true, mode: 0o700 })
  fs.writeFileSync(fileFor(rec.mountpoint, 'json'), JSON.stringify(rec, null, 2) + '\n', { mode: 0o600 })
}

export function readRecord(mountpoint: string): MountRecord | undefined {
  try {
    return JSON.parse(fs.readFileSync(fileFor(mountpoint, 'json'), 'utf8')) as MountRecord
  } catch {
    return undefined
  }
}

export function removeRecord(mountpoint: string): void {
  fs.rmSync(fileFor(mountpoint, 'json'), { force: true })
}

/** Whether `pid` still runs. A zombie (exited, not yet reaped by its parent) counts as gone. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'
  }
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z'
  } catch {
    return false
  }
}

/** Drops the daemon's log file when nothing was written to it (a clean run leaves nothing behind). */
export function removeEmptyLog(mountpoint: string): void {
  const log = fileFor(mountpoint, 'log')
  try {
    if (fs.statSync(log).size === 0) fs.rmSync(log, { force: true })
  } catch {
    // no log: started in the foreground
  }
}
