// The bytes of a layer tar for a rw branch: node-tar's Header encodes every 512-byte header;
// this module chooses the fields (deterministic ones only) and adds the PAX records node-tar
// cannot write (SCHILY.xattr.*). See docs/images.md "commit" for why not tar.Pack.
import * as path from 'node:path'
import { Header } from 'tar'
import { fs, listXattrs, getXattr, type Stats } from '../fs.js'
import { ConfigError } from '../options.js'
import { compareNames, walkUpper, type UpperItem, type WalkOptions } from './upper-walk.js'

/** The entry types a rw branch can hold (node-tar's EntryTypeName spellings). */
type EntryTypeName = 'File' | 'Directory' | 'SymbolicLink' | 'Link' | 'CharacterDevice' | 'BlockDevice' | 'FIFO' | 'ExtendedHeader'

const BLOCK = 512
const CHUNK = 1 << 20
/** ustar's octal field limits; beyond them a PAX record carries the value. */
const MAX_ID = 0o7777777
const MAX_SIZE = 0o77777777777

/**
 * Xattrs never written to a layer: overlayfs' private ones (they would change the meaning of
 * the layer in an overlayfs lower) and SELinux labels (host-specific; podman/buildah drop them).
 */
export function isExportedXattr(name: string): boolean {
  return !name.startsWith('trusted.overlay.') && name !== 'security.selinux'
}

/** One PAX record: '<len> <key>=<value>\n', where <len> counts the whole record in bytes. */
export function paxRecord(key: string, value: Uint8Array | string): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`), Buffer.from(value), Buffer.from('\n')])
  let digits = String(body.length).length
  if (String(body.length + digits).length > digits) digits += 1
  return Buffer.concat([Buffer.from(String(body.length + digits)), body])
}

function padding(n: number): Buffer {
  const r = n % BLOCK
  return Buffer.alloc(r === 0 ? 0 : BLOCK - r)
}

function typeOf(st: Stats): EntryTypeName | undefined {
  if (st.isFile()) return 'File'
  if (st.isDirectory()) return 'Directory'
  if (st.isSymbolicLink()) return 'SymbolicLink'
  if (st.isCharacterDevice()) return 'CharacterDevice'
  if (st.isBlockDevice()) return 'BlockDevice'
  if (st.isFIFO()) return 'FIFO'
  return undefined
}

/** Linux dev_t → (major, minor), as glibc's gnu_dev_major/minor. */
function devNumbers(rdev: number): [number, number] {
  const big = BigInt(rdev)
  const major = Number(((big >> 8n) & 0xfffn) | ((big >> 32n) & ~0xfffn))
  const minor = Number((big & 0xffn) | ((big >> 12n) & ~0xffn))
  return [major, minor]
}

/** Whole seconds: tar's header has no fraction, and a PAX one would vary with the file system. */
function seconds(ms: number): Date {
  return new Date(Math.floor(ms / 1000) * 1000)
}

interface HeaderFields {
  path: string
  type: EntryTypeName
  mode: number
  uid: number
  gid: number
  size: number
  mtime: Date
  linkpath?: string
  devmaj?: number
  devmin?: number
}

/**
 * The header block(s) of one entry: a PAX 'x' header when needed (long or non-ASCII names,
 * big ids or sizes, xattrs), then the ustar header. Fixed fields: empty uname/gname (owners are
 * numeric), no atime/ctime, no dev/ino: the bytes depend only on what the layer means.
 */
export function headerBlocks(f: HeaderFields, xattrs: ReadonlyArray<readonly [string, Buffer]> = []): Buffer {
  const h = new Header({
    path: f.path, type: f.type, mode: f.mode, uid: f.uid, gid: f.gid, size: f.size, mtime: f.mtime,
    linkpath: f.linkpath ?? '', uname: '', gname: '', devmaj: f.devmaj ?? 0, devmin: f.devmin ?? 0,
  })
  const needPax = h.encode()
  const block = h.block!
  if (!needPax && xattrs.length === 0) return block
  const records: Buffer[] = []
  if (needPax) {
    // One 'x' header carries everything: readers (Go's archive/tar) keep only the last one.
    if (f.uid > MAX_ID) records.push(paxRecord('uid', String(f.uid)))
    if (f.gid > MAX_ID) records.push(paxRecord('gid', String(f.gid)))
    if (f.linkpath) records.push(paxRecord('linkpath', f.linkpath))
    const t = f.mtime.getTime() / 1000
    if (t < 0 || t > MAX_SIZE) records.push(paxRecord('mtime', String(t)))
    records.push(paxRecord('path', f.path))
    if (f.size > MAX_SIZE) records.push(paxRecord('size', String(f.size)))
  }
  for (const [name, value] of xattrs) records.push(paxRecord(`SCHILY.xattr.${name}`, value))
  const body = Buffer.concat(records)
  const base = path.posix.basename(f.path.replace(/\/$/, '')).replace(/[^\x20-\x7e]/g, '_')
  const x = new Header({
    path: `PaxHeader/${base}`.slice(0, 99), type: 'ExtendedHeader', mode: 0o644, uid: 0, gid: 0,
    size: body.length, mtime: f.mtime, uname: '', gname: '', linkpath: '', devmaj: 0, devmin: 0,
  })
  x.encode()
  return Buffer.concat([x.block!, body, padding(body.length), block])
}

/** Xattrs of a branch entry worth exporting, sorted by name (l*xattr: links are not followed). */
function xattrsOf(host: string): Array<[string, Buffer]> {
  let names: string[]
  try {
    names = listXattrs(host)
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    if (code === 'ENOTSUP' || code === 'EOPNOTSUPP') return []
    throw e
  }
  const out: Array<[string, Buffer]> = []
  for (const n of names.filter(isExportedXattr).sort(compareNames)) {
    const v = getXattr(host, n)
    if (v !== undefined) out.push([n, Buffer.from(v)])
  }
  return out
}

/** What {@link layerTar} wrote, counted as it went. */
export interface LayerTarStats { entries: number }

/**
 * The uncompressed layer tar of the rw branch `upper`, as a stream of chunks (order of
 * {@link walkUpper}; whiteouts and opaque markers as empty regular files with fixed metadata:
 * mode 0600, owner 0:0, mtime 0). Hard links within the branch become 'Link' entries to the
 * first path (in tar order) of the inode. Throws ConfigError EIO when a file changes size while
 * being read (commit a quiescent branch: unmounted, or no writer).
 */
export async function* layerTar(upper: string, opts: WalkOptions = {}, stats: LayerTarStats = { entries: 0 }): AsyncGenerator<Buffer> {
  const links = new Map<string, string>()
  const marker = (p: string): Buffer => headerBlocks({ path: p, type: 'File', mode: 0o600, uid: 0, gid: 0, size: 0, mtime: new Date(0) })
  for (const it of walkUpper(upper, opts) as Iterable<UpperItem>) {
    stats.entries++
    if (it.kind !== 'entry') { yield marker(it.path); continue }
    const st = it.stats
    const type = typeOf(st)
    if (type === undefined) continue // sockets are dropped by walkUpper already
    const base = { mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtime: seconds(st.mtimeMs), size: 0 }
    const xattrs = xattrsOf(it.host)
    if (type === 'File' && st.nlink > 1) {
      const key = `${st.dev}:${st.ino}`
      const first = links.get(key)
      if (first !== undefined) {
        yield headerBlocks({ ...base, path: it.path, type: 'Link', linkpath: first }) // xattrs: on the first path
        continue
      }
      links.set(key, it.path)
    }
    if (type === 'Directory') { yield headerBlocks({ ...base, path: it.path + '/', type }, xattrs); continue }
    if (type === 'SymbolicLink') { yield headerBlocks({ ...base, path: it.path, type, linkpath: fs.readlinkSync(it.host) }, xattrs); continue }
    if (type === 'CharacterDevice' || type === 'BlockDevice') {
      const [devmaj, devmin] = devNumbers(st.rdev)
      yield headerBlocks({ ...base, path: it.path, type, devmaj, devmin }, xattrs)
      continue
    }
    if (type === 'FIFO') { yield headerBlocks({ ...base, path: it.path, type }, xattrs); continue }
    yield headerBlocks({ ...base, path: it.path, type, size: st.size }, xattrs)
    yield* fileData(it.host, it.path, st.size)
  }
  yield Buffer.alloc(2 * BLOCK) // end of archive
}

async function* fileData(host: string, rel: string, size: number): AsyncGenerator<Buffer> {
  const fh = await fs.promises.open(host, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW)
  try {
    let pos = 0
    while (pos < size) {
      const buf = Buffer.allocUnsafe(Math.min(CHUNK, size - pos))
      const { bytesRead } = await fh.read(buf, 0, buf.length, pos)
      if (bytesRead === 0) throw new ConfigError('EIO', `'${rel}' shrank while being committed (commit a branch nobody writes to)`)
      pos += bytesRead
      yield bytesRead === buf.length ? buf : buf.subarray(0, bytesRead)
    }
    const more = await fh.read(Buffer.alloc(1), 0, 1, size)
    if (more.bytesRead !== 0) throw new ConfigError('EIO', `'${rel}' grew while being committed (commit a branch nobody writes to)`)
  } finally {
    await fh.close()
  }
  yield padding(size)
}
