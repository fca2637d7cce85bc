// I/O of markers in the rw branch: create/remove whiteouts, mark a directory opaque.
import { fs, lstatOrUndefined, mutate } from '../fs.js'
import { OPAQUE_MARKER, whitedOutName, whiteoutNameFor } from './encoding.js'

/** Writes `.wh.NAME` in the host directory `dir` (an empty 0600 file, as aufs and OCI tools do). */
export function createWhiteout(dir: string, name: string): void {
  const host = dir + '/' + whiteoutNameFor(name)
  mutate('whiteout', host, () => fs.writeFileSync(host, '', { mode: 0o600 }))
}

/** Removes `.wh.NAME` in `dir` if present; returns whether there was one. */
export function removeWhiteout(dir: string, name: string): boolean {
  const host = dir + '/' + whiteoutNameFor(name)
  if (!whiteoutFits(name) || !lstatOrUndefined(host)) return false
  mutate('unlink whiteout', host, () => fs.rmSync(host, { force: true }))
  return true
}

/**
 * Whether `.wh.NAME` exists in the host directory `dir`. A name of more than NAME_MAX - 4 bytes
 * has no whiteout that fits on disk (asking the host fails with ENAMETOOLONG): it is never
 * whited out, and looking it up or creating it must still work like on a plain file system.
 */
export function hasWhiteout(dir: string, name: string): boolean {
  return whiteoutFits(name) && lstatOrUndefined(dir + '/' + whiteoutNameFor(name)) !== undefined
}

const NAME_MAX = 255

function whiteoutFits(name: string): boolean {
  return Buffer.byteLength(whiteoutNameFor(name)) <= NAME_MAX
}

/** Writes the opaque marker into the host directory `dir`. */
export function markOpaque(dir: string): void {
  const host = dir + '/' + OPAQUE_MARKER
  mutate('mark opaque', host, () => fs.writeFileSync(host, '', { mode: 0o600 }))
}

/**
 * Removes every whiteout below the rw-branch directory `dir` (recursively). Only for a directory
 * that has just been made opaque: nothing merges below it any more, so they hide nothing.
 */
export function dropWhiteoutsBelow(dir: string): void {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const host = dir + '/' + e.name
    if (e.isDirectory()) dropWhiteoutsBelow(host)
    else if (whitedOutName(e.name) !== undefined) mutate('unlink whiteout', host, () => fs.unlinkSync(host))
  }
}
