// Safe extraction of one (uncompressed) layer tar into an empty directory: node-tar parses, this
// module writes, refusing anything that could reach outside the directory (hostile layers).
import { once } from 'node:events'
import * as path from 'node:path'
import type { Readable } from 'node:stream'
import { Parser, type ReadEntry } from 'tar'
import { fs, mknod, setXattr } from '../fs.js'
import { createLogger } from '../log.js'
import { ConfigError } from '../options.js'

const log = createLogger('layerfs:image')
const isRoot = process.getuid?.() === 0

/** A refused or broken entry: one line naming it. */
function refuse(code: string, entry: string, why: string): ConfigError {
  return new ConfigError(code, `entry '${entry}' ${why}`)
}

/**
 * The member name as a relative path inside the layer ('' for the root), or a refusal:
 * absolute names and any '..' component are errors, not stripped (a layer that needs that is
 * hostile or broken; OCI layer.md names are relative to the root).
 */
export function safeEntryPath(name: string): string {
  if (name.includes('\0')) throw refuse('EINVAL', name, 'has a NUL byte in its name')
  if (name.startsWith('/')) throw refuse('EINVAL', name, 'has an absolute path')
  const parts = name.split('/').filter((p) => p !== '' && p !== '.')
  if (parts.includes('..')) throw refuse('EINVAL', name, "escapes the layer root ('..')")
  return parts.join('/')
}

/** Xattrs from the body of a PAX header ('SCHILY.xattr.NAME=VALUE' records). */
export function paxXattrs(body: string, entryHint: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>()
  if (!body.includes('SCHILY.xattr.')) return out
  const buf = Buffer.from(body)
  let pos = 0
  while (pos < buf.length) {
    const sp = buf.indexOf(0x20, pos)
    const len = sp === -1 ? NaN : Number(buf.subarray(pos, sp).toString())
    if (!Number.isInteger(len) || len <= 0 || pos + len > buf.length || buf[pos + len - 1] !== 0x0a) {
      // node-tar hands PAX bodies over as UTF-8 text: a binary value does not survive that.
      log.warnOnce(`pax:${entryHint}`, "xattrs of '%s' dropped: a PAX record is not valid UTF-8", entryHint)
      return out
    }
    const rec = buf.subarray(sp + 1, pos + len - 1)
    const eq = rec.indexOf(0x3d)
    const key = rec.subarray(0, eq).toString()
    if (eq > 0 && key.startsWith('SCHILY.xattr.')) out.set(key.slice('SCHILY.xattr.'.length), Buffer.from(rec.subarray(eq + 1)))
    pos += len
  }
  return out
}

interface DirMeta { host: string; mode: number; uid?: number; gid?: number; mtime?: Date }

/** What unpackTar() extracted. */
export interface UnpackStats { entries: number }

/**
 * Extracts the uncompressed layer tar `source` into `dest` (an existing empty directory that
 * nobody else uses). Entries keep mode, owner (when running as root), mtime and xattrs;
 * whiteouts and opaque markers stay as the '.wh.' files a branch holds. Refused with a
 * ConfigError naming the entry (EINVAL): absolute names, '..', a path through a symlink or a
 * non-directory, a hard link to anything but a regular file of this layer; (EPERM) device
 * files; (EIO) a corrupt or truncated tar. On failure `dest` is left half-filled: the caller
 * owns it and removes it (the store unpacks into a temp dir for that reason).
 */
export async function unpackTar(source: Readable, dest: string, stats: UnpackStats = { entries: 0 }): Promise<void> {
  const verified = new Set<string>(['']) // dirs known to be real directories (not symlinks)
  const dirs = new Map<string, DirMeta>() // rel → metadata, in tar order (a repeat moves to the end)
  const setDir = (rel: string, m: DirMeta): void => { dirs.delete(rel); dirs.set(rel, m) }
  // FIFOs need mknod(2), which Node only has asynchronously (lib/fs.ts): made after the parse.
  const fifos = new Map<string, DirMeta>()
  let pendingXattrs = new Map<string, Buffer>()
  let failed: unknown
  const host = (rel: string): string => (rel ? path.join(dest, rel) : dest)

  const forget = (rel: string): void => {
    for (const d of verified) if (d === rel || d.startsWith(rel + '/')) verified.delete(d)
    for (const d of dirs.keys()) if (d === rel || d.startsWith(rel + '/')) dirs.delete(d)
    for (const d of fifos.keys()) if (d === rel || d.startsWith(rel + '/')) fifos.delete(d)
  }
  /** Checks (and creates, 0755) every parent of `rel`, never through a symlink. */
  const parents = (rel: string, name: string, create: boolean): void => {
    const parts = rel.split('/')
    for (let i = 1; i < parts.length; i++) {
      const d = parts.slice(0, i).join('/')
      if (verified.has(d)) continue
      const st = fs.lstatSync(host(d), { throwIfNoEntry: false })
      if (st === undefined) {
        if (!create) throw refuse('EINVAL', name, `needs '${d}', which this layer does not hold`)
        fs.mkdirSync(host(d), 0o755)
      } else if (st.isSymbolicLink()) {
        throw refuse('EINVAL', name, `goes through the symlink '${d}'`)
      } else if (!st.isDirectory()) {
        throw refuse('EINVAL', name, `goes through the non-directory '${d}'`)
      }
      verified.add(d)
    }
  }
  const chownQuiet = (fn: () => void): void => {
    try {
      fn()
    } catch (e) {
      if (isRoot || (e as NodeJS.ErrnoException).code !== 'EPERM') throw e
      log.warnOnce('unpack-chown', 'not root: layer files keep your own uid/gid')
    }
  }
  const applyXattrs = (h: string, name: string, xattrs: Map<string, Buffer>): void => {
    for (const [k, v] of xattrs) {
      if (k.startsWith('trusted.overlay.')) continue // would change how the branch is read
      try {
        setXattr(h, k, v)
      } catch (e) {
        log.warnOnce(`xattr:${k}`, "xattr '%s' of '%s' not kept: %s", k, name, (e as Error).message)
      }
    }
  }

  const onEntry = (entry: ReadEntry): void => {
    const xattrs = pendingXattrs
    pendingXattrs = new Map()
    if (failed) { entry.resume(); return }
    try {
      stats.entries++
      handle(entry, xattrs)
    } catch (e) {
      failed = e
      entry.resume()
    }
  }

  const handle = (entry: ReadEntry, xattrs: Map<string, Buffer>): void => {
    const name = entry.path
    const rel = safeEntryPath(name)
    const type = entry.type
    const mode = (entry.mode ?? 0o644) & 0o7777
    if (type === 'CharacterDevice' || type === 'BlockDevice') throw refuse('EPERM', name, 'is a device file (refused in image layers)')
    if (!['File', 'OldFile', 'ContiguousFile', 'Directory', 'SymbolicLink', 'Link', 'FIFO'].includes(type)) {
      throw refuse('EINVAL', name, `has an unsupported type (${type})`)
    }
    if (rel === '') {
      if (type !== 'Directory') throw refuse('EINVAL', name, 'replaces the layer root')
      setDir('', { host: dest, mode, uid: entry.uid, gid: entry.gid, mtime: entry.mtime })
      applyXattrs(dest, name, xattrs)
      entry.resume()
      return
    }
    parents(rel, name, true)
    const h = host(rel)
    fifos.delete(rel) // a later member of the same name wins
    const old = fs.lstatSync(h, { throwIfNoEntry: false })
    if (old && !(old.isDirectory() && type === 'Directory')) {
      // A later member replaces an earlier one of the same name (tar semantics: last wins).
      fs.rmSync(h, { recursive: true, force: true })
      forget(rel)
    }
    switch (type) {
      case 'Directory': {
        if (!old) fs.mkdirSync(h, 0o700) // writable by us until the end: its real mode comes last
        verified.add(rel)
        setDir(rel, { host: h, mode, uid: entry.uid, gid: entry.gid, mtime: entry.mtime })
        applyXattrs(h, name, xattrs)
        entry.resume()
        return
      }
      case 'SymbolicLink': {
        const target = entry.linkpath ?? ''
        if (target === '' || target.includes('\0')) throw refuse('EINVAL', name, 'is a symlink without a valid target')
        // Stored as is, absolute or not: nothing ever follows a link inside a branch.
        fs.symlinkSync(target, h)
        chownQuiet(() => fs.lchownSync(h, entry.uid ?? 0, entry.gid ?? 0))
        if (entry.mtime) fs.lutimesSync(h, entry.mtime, entry.mtime)
        applyXattrs(h, name, xattrs)
        entry.resume()
        return
      }
      case 'Link': {
        const target = safeEntryPath(entry.linkpath ?? '')
        if (target === '') throw refuse('EINVAL', name, 'is a hard link without a target')
        parents(target, name, false)
        const t = fs.lstatSync(host(target), { throwIfNoEntry: false })
        if (!t?.isFile()) throw refuse('EINVAL', name, `is a hard link to '${entry.linkpath}', which is not a file of this layer`)
        fs.linkSync(host(target), h)
        entry.resume()
        return
      }
      case 'FIFO': {
        fifos.set(rel, { host: h, mode, uid: entry.uid, gid: entry.gid, mtime: entry.mtime })
        entry.resume()
        return
      }
      default: {
        const fd = fs.openSync(h, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600)
        let open = true
        const close = (): void => { if (open) { open = false; fs.closeSync(fd) } }
        entry.on('data', (chunk: Buffer) => {
          if (failed || !open) return
          try {
            fs.writeSync(fd, chunk)
          } catch (e) {
            failed = e
            close()
          }
        })
        entry.on('end', () => {
          if (!open) return
          try {
            chownQuiet(() => fs.fchownSync(fd, entry.uid ?? 0, entry.gid ?? 0))
            fs.fchmodSync(fd, mode) // after chown: chown clears setuid/setgid
            if (entry.mtime) fs.futimesSync(fd, entry.mtime, entry.mtime)
            close()
            applyXattrs(h, name, xattrs)
          } catch (e) {
            failed ??= e
            close()
          }
        })
      }
    }
  }

  const parser = new Parser({ strict: true })
  parser.on('meta', (body: string) => {
    const x = paxXattrs(body, `entry #${stats.entries + 1}`)
    for (const [k, v] of x) pendingXattrs.set(k, v)
  })
  parser.on('entry', onEntry)
  let parseError: unknown
  parser.on('error', (e: Error) => { parseError ??= e })
  const ended = new Promise<void>((resolve) => { parser.on('end', () => resolve()); parser.on('close', () => resolve()) })
  let sawData = false
  for await (const chunk of source) {
    if (failed || parseError) break
    sawData ||= (chunk as Buffer).length > 0
    parser.write(chunk as Buffer)
  }
  if (!failed && !parseError) {
    parser.end()
    await Promise.race([ended, once(parser, 'error').catch(() => undefined)])
  }
  if (failed) throw failed
  if (parseError || !sawData) {
    const msg = parseError ? String((parseError as Error).message) : 'empty input'
    throw new ConfigError('EIO', `not a valid tar (${msg})`)
  }
  for (const [rel, f] of fifos) {
    try {
      await mknod(f.host, fs.constants.S_IFIFO | f.mode, 0)
    } catch (e) {
      throw refuse((e as NodeJS.ErrnoException).code ?? 'EIO', rel, `(a FIFO) could not be created: ${(e as Error).message}`)
    }
    chownQuiet(() => fs.lchownSync(f.host, f.uid ?? 0, f.gid ?? 0))
    fs.chmodSync(f.host, f.mode)
    if (f.mtime) fs.utimesSync(f.host, f.mtime, f.mtime)
  }
  // Directories last, children before parents: creating their entries changed their mtimes.
  for (const d of [...dirs.values()].reverse()) {
    chownQuiet(() => fs.lchownSync(d.host, d.uid ?? 0, d.gid ?? 0))
    fs.chmodSync(d.host, d.mode)
    if (d.mtime) fs.utimesSync(d.host, d.mtime, d.mtime)
  }
}
