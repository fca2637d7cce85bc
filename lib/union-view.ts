// UnionView: the merged view in-process, without FUSE, with the same semantics as the mount
// (same LayerFs core). For tools and tests that want to read or change a stack directly.
import type { Attr } from './attr.js'
import type { BranchSpec } from './branches/stack.js'
import { FsError } from './errors.js'
import { fs } from './fs.js'
import { LayerFs, toUnionPath } from './layerfs.js'
import { resolveStack, parseBranches, type BranchInput } from './options.js'
import { joinUnion, parentOf, type UnionPath } from './paths.js'

const { O_RDONLY, O_WRONLY, O_CREAT, O_TRUNC, O_APPEND, S_IFMT, S_IFDIR, S_IFREG, S_IFLNK } = fs.constants
const MAX_SYMLINKS = 40

/** What stat/lstat return: the merged attributes plus the usual predicates. */
export interface UnionStats extends Attr {
  isFile(): boolean
  isDirectory(): boolean
  isSymbolicLink(): boolean
}

function withPredicates(a: Attr): UnionStats {
  return {
    ...a,
    isFile: () => (a.mode & S_IFMT) === S_IFREG,
    isDirectory: () => (a.mode & S_IFMT) === S_IFDIR,
    isSymbolicLink: () => (a.mode & S_IFMT) === S_IFLNK,
  }
}

export interface UnionViewOptions {
  /** A rw branch to put on top of an all-ro stack. */
  readonly upper?: string
}

/**
 * The merged view of a stack, in this process. Paths are union paths ('/etc/hosts' or
 * 'etc/hosts'). Methods reject with FsError (code ENOENT, EROFS…), like node:fs.
 */
export class UnionView {
  readonly core: LayerFs

  /** `branches`: "A:B" / "A=rw:B=ro", parsed inputs, or checked specs. */
  constructor(branches: string | readonly BranchInput[], opts: UnionViewOptions = {}) {
    const inputs = typeof branches === 'string' ? parseBranches(branches) : branches
    const specs: BranchSpec[] = resolveStack({ branches: inputs, upper: opts.upper })
    this.core = new LayerFs(specs)
  }

  async lstat(p: string): Promise<UnionStats> {
    return withPredicates(this.core.getattr(toUnionPath(p, 'lstat')))
  }

  /** stat, following symlinks inside the union (an absolute target means the union root). */
  async stat(p: string): Promise<UnionStats> {
    return withPredicates(this.core.getattr(this.#follow(toUnionPath(p, 'stat'), 'stat')))
  }

  async exists(p: string): Promise<boolean> {
    try {
      return this.core.tryGetattr(toUnionPath(p)) !== undefined
    } catch {
      return false
    }
  }

  async readdir(p: string): Promise<string[]> {
    return this.core.readdir(this.#follow(toUnionPath(p, 'scandir'), 'scandir')).filter((n) => n !== '.' && n !== '..')
  }

  async readlink(p: string): Promise<string> {
    return this.core.readlink(toUnionPath(p, 'readlink'))
  }

  async readFile(p: string): Promise<Buffer>
  async readFile(p: string, encoding: BufferEncoding): Promise<string>
  async readFile(p: string, encoding?: BufferEncoding): Promise<Buffer | string> {
    const up = this.#follow(toUnionPath(p, 'open'), 'open')
    const fh = await this.core.open(up, O_RDONLY)
    try {
      const chunks: Buffer[] = []
      let pos = 0
      for (;;) {
        const buf = Buffer.allocUnsafe(128 * 1024)
        const n = this.core.read(fh, buf, buf.length, pos)
        if (n === 0) break
        chunks.push(buf.subarray(0, n))
        pos += n
      }
      const data = Buffer.concat(chunks)
      return encoding ? data.toString(encoding) : data
    } finally {
      this.core.release(fh)
    }
  }

  /** Creates or replaces a file's content (copying a lower file up, truncated). */
  async writeFile(p: string, data: string | Uint8Array, opts: { mode?: number; append?: boolean } = {}): Promise<void> {
    const up = toUnionPath(p, 'open')
    const buf = typeof data === 'string' ? Buffer.from(data) : Buffer.from(data)
    const flags = O_WRONLY | (opts.append ? O_APPEND : O_TRUNC)
    const exists = this.core.tryGetattr(up) !== undefined
    const fh = exists ? await this.core.open(up, flags) : await this.core.create(up, opts.mode ?? 0o644, O_WRONLY | O_CREAT)
    try {
      let pos = opts.append ? this.core.fgetattr(up, fh).size : 0
      let off = 0
      while (off < buf.length) {
        const n = await this.core.write(fh, buf.subarray(off), buf.length - off, pos)
        off += n
        pos += n
      }
    } finally {
      this.core.release(fh)
    }
  }

  async appendFile(p: string, data: string | Uint8Array): Promise<void> {
    return this.writeFile(p, data, { append: true })
  }

  async mkdir(p: string, opts: { mode?: number; recursive?: boolean } = {}): Promise<void> {
    const up = toUnionPath(p, 'mkdir')
    if (opts.recursive) {
      if (up !== '/' && this.core.tryGetattr(parentOf(up)) === undefined) await this.mkdir(parentOf(up), opts)
      if (this.core.tryGetattr(up)?.mode !== undefined) return
    }
    await this.core.mkdir(up, opts.mode ?? 0o755)
  }

  async rmdir(p: string): Promise<void> {
    await this.core.rmdir(toUnionPath(p, 'rmdir'))
  }

  async unlink(p: string): Promise<void> {
    await this.core.unlink(toUnionPath(p, 'unlink'))
  }

  /** rm -r: removes a tree through the union (whiteouts for lower content). */
  async rm(p: string, opts: { recursive?: boolean; force?: boolean } = {}): Promise<void> {
    const up = toUnionPath(p, 'rm')
    const a = this.core.tryGetattr(up)
    if (!a) {
      if (opts.force) return
      throw new FsError('ENOENT', 'rm', up)
    }
    if ((a.mode & S_IFMT) !== S_IFDIR) return this.core.unlink(up)
    if (!opts.recursive) throw new FsError('EISDIR', 'rm', up)
    for (const name of await this.readdir(up)) await this.rm(joinUnion(up, name), opts)
    await this.core.rmdir(up)
  }

  async rename(from: string, to: string): Promise<void> {
    await this.core.rename(toUnionPath(from, 'rename'), toUnionPath(to, 'rename'))
  }

  async symlink(target: string, p: string): Promise<void> {
    await this.core.symlink(target, toUnionPath(p, 'symlink'))
  }

  async link(existing: string, p: string): Promise<void> {
    await this.core.link(toUnionPath(existing, 'link'), toUnionPath(p, 'link'))
  }

  async chmod(p: string, mode: number): Promise<void> {
    await this.core.chmod(toUnionPath(p, 'chmod'), mode)
  }

  async chown(p: string, uid: number, gid: number): Promise<void> {
    await this.core.chown(toUnionPath(p, 'chown'), uid, gid)
  }

  /** Times as Date or seconds since the epoch (like fs.utimes). */
  async utimes(p: string, atime: Date | number, mtime: Date | number): Promise<void> {
    const ms = (t: Date | number): number => (typeof t === 'number' ? t * 1000 : t.getTime())
    await this.core.utimens(toUnionPath(p, 'utime'), ms(atime), ms(mtime))
  }

  async truncate(p: string, len = 0): Promise<void> {
    await this.core.truncate(toUnionPath(p, 'truncate'), len)
  }

  async getxattr(p: string, name: string): Promise<Buffer> {
    return this.core.getxattr(toUnionPath(p, 'getxattr'), name)
  }

  async setxattr(p: string, name: string, value: string | Uint8Array): Promise<void> {
    await this.core.setxattr(toUnionPath(p, 'setxattr'), name, typeof value === 'string' ? Buffer.from(value) : value)
  }

  async listxattr(p: string): Promise<string[]> {
    return this.core.listxattr(toUnionPath(p, 'listxattr'))
  }

  async removexattr(p: string, name: string): Promise<void> {
    await this.core.removexattr(toUnionPath(p, 'removexattr'), name)
  }

  /** Follows symlinks in every component of `p`, within the union. ELOOP after 40 links. */
  #follow(p: UnionPath, syscall: string): UnionPath {
    let hops = 0
    const parts = p.split('/').filter(Boolean)
    let cur: UnionPath = '/'
    while (parts.length > 0) {
      const part = parts.shift()!
      if (part === '.') continue
      if (part === '..') { cur = parentOf(cur); continue } // never above the union root
      const next = joinUnion(cur, part)
      const a = this.core.tryGetattr(next)
      if (a && (a.mode & S_IFMT) === S_IFLNK) {
        if (++hops > MAX_SYMLINKS) throw new FsError('ELOOP', syscall, p)
        const target = this.core.readlink(next)
        parts.unshift(...target.split('/').filter(Boolean))
        if (target.startsWith('/')) cur = '/'
        continue
      }
      cur = next
    }
    return toUnionPath(cur, syscall)
  }
}
