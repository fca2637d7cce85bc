// One FUSE connection served on the JS thread: each request read from /dev/fuse (by the addon's
// uv_poll) is decoded, answered from LayerFs — synchronously when it can be (lookups, stats,
// reads), when its promise settles otherwise — and the reply written back with one write(2).
// Every request except FORGET/INTERRUPT gets exactly one reply, whatever happens.
import { constants } from 'node:os'
import type { Attr } from '../../attr.js'
import { ReadAhead } from '../../branches/read-ahead.js'
import { errnoName } from '../../errors.js'
import { codeOfErrno, fs, O_ACCMODE } from '../../fs.js'
import type { LayerFs, Owner } from '../../layerfs.js'
import { createLogger } from '../../log.js'
import { checkName } from '../../paths.js'
import type { Activity } from '../activity.js'
import { failure } from '../adapter.js'
import type { NativeFuse } from './addon.js'
import { Listings } from './listing.js'
import { NodeTable, type Node } from './nodes.js'
import { Passthrough, type RwPass } from './passthrough.js'
import { ShrinkSettle } from '../shrink-settle.js'
import { Trace } from './trace.js'
import {
  ATTR_OUT_SIZE, ENTRY_OUT_SIZE, FATTR_ATIME, FATTR_ATIME_NOW, FATTR_FH,
  FATTR_GID, FATTR_KILL_SUIDGID, FATTR_MODE, FATTR_MTIME, FATTR_MTIME_NOW, FATTR_SIZE, FATTR_UID, FOPEN_CACHE_DIR, FOPEN_KEEP_CACHE, FOPEN_PASSTHROUGH, FUSE_FSYNC_FDATASYNC, FUSE_GETATTR_FH, FUSE_OPEN_KILL_SUIDGID, FUSE_WRITE_KILL_SUIDGID, FUSE_MIN_MINOR,
  FUSE_OUR_MINOR, IN_HEADER_SIZE, Init, INIT_OUT_SIZE, notifyIncEpoch, notifyInvalInode, Op,
  OPEN_OUT_SIZE, OUT_HEADER_SIZE, readInitIn, readName, RENAME_NOREPLACE,
  STATFS_OUT_SIZE, u64, writeAttrOut, writeEntry, writeInitOut, writeOpenOut,
  writeOutHeader, writeStatfs,
} from './protocol.js'

const log = createLogger('layerfs:kernel')
const ERRNO = constants.errno
const ENOENT = -ERRNO.ENOENT
const ENOSYS = -ERRNO.ENOSYS
const EINVAL = -ERRNO.EINVAL
const ERANGE = -ERRNO.ERANGE
const ENODATA = -ERRNO.ENODATA
/**
 * The most one COPY_FILE_RANGE request copies (the caller asks again for the rest): a kernel
 * copy of 4 MiB holds the JS thread for about a millisecond.
 */
const COPY_CHUNK = 4 << 20
const O_TRUNC = fs.constants.O_TRUNC

export interface SessionOptions {
  /** Seconds the kernel may keep names, attributes and negative lookups. */
  readonly entryTimeout: number
  readonly attrTimeout: number
  readonly negativeTimeout: number
  /** Keep file pages across opens (kernel_cache), and directory listings (cache_dir). */
  readonly keepCache: boolean
  /** Hand read-only opens of branch files to the kernel (FUSE passthrough), when it offers it. */
  readonly passthrough: boolean
  /** With passthrough, also root's writers of rw-branch files that need nothing from layerfs. */
  readonly passWriters?: boolean
  /** Largest read/write request, bytes (max_pages × 4 KiB). */
  readonly maxIo: number
  /** Keep reading /dev/fuse for up to this many µs after its queue empties (0: sleep at once). */
  readonly pollMicros?: number
  /** Ask for the kernel's writeback cache (docs/transport.md "Writeback cache"). */
  readonly writebackCache?: boolean
}

/** Busy polling, for status: µs now and at most, requests read while polling, returns to the event loop. */
export interface PollStats {
  readonly windowMicros: number
  readonly maxMicros: number
  readonly caught: number
  readonly loopReturns: number
}

/** What INIT settled, for status and the tests. */
export interface Negotiated {
  readonly minor: number
  readonly flags: bigint
  readonly passthrough: boolean
  /** The kernel caches writes (WRITEBACK_CACHE): opens get writebackOpenFlags(). */
  readonly writebackCache: boolean
  readonly maxWrite: number
}

type Reply = (error: number, body?: Buffer, len?: number) => void

/**
 * A served connection. `dispatch(n)` is the addon's callback: the request is in `this.request`.
 */
export class KernelSession {
  request: Buffer
  readonly nodes: NodeTable
  negotiated: Negotiated | undefined
  #out: Buffer
  /** The reply body area of #out (after the header), made once: the hot path writes into it. */
  #body: Buffer
  readonly #listings: Listings
  /** Metadata read-ahead of the subdirectories each listing shows (branches/read-ahead.ts). */
  readonly readAhead = new ReadAhead()
  /** Per-node I/O modes of open files (passthrough.ts), set at INIT. */
  #passthrough: Passthrough | undefined
  /** Short READs racing a shrink of their file wait for the kernel to learn its size (shrink-settle.ts). */
  readonly #shrinks = new ShrinkSettle()
  #session: object | undefined
  #ended = false
  #onInit: (() => void) | undefined
  #onEnd: ((err: number) => void) | undefined
  /** LAYERFS_FUSE_TRACE=FILE: every request and reply, framed (trace.ts), for fixtures and bug reports. */
  #trace: Trace | undefined = process.env.LAYERFS_FUSE_TRACE ? new Trace(process.env.LAYERFS_FUSE_TRACE) : undefined

  constructor(
    readonly core: LayerFs,
    readonly activity: Activity,
    readonly addon: NativeFuse,
    readonly fd: number,
    readonly opts: SessionOptions,
  ) {
    // A request: header + its largest argument (a write of maxIo bytes) + room for names.
    this.request = Buffer.alloc(opts.maxIo + 4096 + IN_HEADER_SIZE)
    this.#out = Buffer.alloc(opts.maxIo + 4096 + OUT_HEADER_SIZE)
    this.#body = this.#out.subarray(OUT_HEADER_SIZE)
    this.nodes = new NodeTable(core.getattr('/').ino)
    this.#listings = new Listings(core, this.nodes, opts, (node) => this.#path(node), this.readAhead)
  }

  /** Starts reading requests; resolves once INIT is answered. `onEnd` gets -errno (ENODEV: unmounted). */
  start(onEnd: (err: number) => void): Promise<void> {
    this.#onEnd = onEnd
    const ready = new Promise<void>((resolve) => (this.#onInit = resolve))
    this.#session = this.addon.start(this.fd, this.request, (n) => this.dispatch(n), this.opts.pollMicros ?? 0)
    return ready
  }

  /** The addon's busy polling (native/layerfs_fuse.c): the window now, its bound, what it caught. */
  pollStats(): PollStats | undefined {
    if (!this.#session || this.#ended) return undefined
    const [windowMicros, maxMicros, caught, loopReturns] = this.addon.pollStats(this.#session)
    return { windowMicros: windowMicros!, maxMicros: maxMicros!, caught: caught!, loopReturns: loopReturns! }
  }

  stop(): void {
    if (this.#session && !this.#ended) this.addon.stop(this.#session)
    this.#ended = true
  }

  /**
   * Tells the kernel to forget what it cached about every node (attributes, pages) and to look
   * every name up again (a branch was added or removed, a checkpoint moved the rw branch).
   */
  async invalidateAll(): Promise<number> {
    const msgs: Buffer[] = [notifyIncEpoch()]
    for (const node of this.nodes.nodes()) msgs.push(notifyInvalInode(node.id, 0, 0))
    const r = await this.addon.writeOffThread(this.fd, Buffer.concat(msgs))
    if (r < 0) log.debug('invalidation answered %d', r)
    return msgs.length
  }

  // ---- the request loop ------------------------------------------------------------------------

  /** Answers the request of `n` bytes in `this.request` (the addon's loop; the warm-up's scratch kernel). */
  dispatch(n: number): void {
    if (n < 0) {
      this.#ended = true
      this.#onEnd?.(n)
      return
    }
    const b = this.request
    this.#trace?.request(b.subarray(0, n))
    const opcode = b.readUInt32LE(4)
    // The request's unique id as two u32 halves (no BigInt on the hot path).
    const lo = b.readUInt32LE(8)
    const hi = b.readUInt32LE(12)
    const nodeid = u64(b, 16)
    if (this.#shrinks.size !== 0) this.#shrinks.seen(b.readUInt32LE(32))
    const reply: Reply = (error, body, len) => this.#reply(lo, hi, error, body, len)
    try {
      this.#handle(opcode, nodeid, b, n, reply)
    } catch (e) {
      // A decoding bug or an unexpected throw: the kernel still gets an answer.
      reply(failure(opName(opcode), String(nodeid), e))
    }
  }

  #reply(lo: number, hi: number, error: number, body?: Buffer, len = body ? body.length : 0): void {
    const total = OUT_HEADER_SIZE + (error === 0 ? len : 0)
    if (body) {
      // Bodies built elsewhere: header written separately.
      const h = Buffer.allocUnsafe(OUT_HEADER_SIZE)
      writeOutHeader(h, total, error, lo, hi)
      this.#write(error === 0 ? [h, body.subarray(0, len)] : [h])
      return
    }
    writeOutHeader(this.#out, total, error, lo, hi)
    this.#write(this.#out, total)
  }

  #write(data: Buffer | Buffer[], len?: number): void {
    if (this.#ended) return
    this.#trace?.reply(Array.isArray(data) ? Buffer.concat(data) : data.subarray(0, len))
    let failed: string | undefined
    try {
      if (Array.isArray(data)) fs.writevSync(this.fd, data)
      else {
        const r = this.addon.reply(this.fd, data, len ?? data.length)
        if (r < 0) failed = codeOfErrno(r)
      }
    } catch (e) {
      failed = errnoName(e) ?? 'EIO'
    }
    // ENOENT: the request was interrupted and is gone; ENODEV: the mount is gone.
    if (failed && failed !== 'ENOENT' && failed !== 'ENODEV') log.warnOnce('reply-write', 'writing a FUSE reply failed: %s', failed)
  }

  #node(id: number): Node {
    const node = this.nodes.get(id)
    if (!node) throw Object.assign(new Error(`unknown node ${id}`), { code: 'ESTALE' })
    return node
  }

  /**
   * A node's path: made of names checked when the kernel first sent them. ENOENT for a node
   * whose last name was removed: its old name may belong to another file by now. ESTALE for a
   * retired node whose name leads elsewhere now: the kernel looks the name up again and retries.
   */
  #path(node: Node): string {
    const p = this.#livePath(node)
    if (p !== undefined) return p
    throw Object.assign(new Error('no path'), { code: gone(node) })
  }

  /**
   * The path that leads to `node` now, if one does. A retired node (passthrough.ts) is still
   * reached through dentries the kernel has not looked up again: its old name serves while it
   * leads to the same file.
   */
  #livePath(node: Node): string | undefined {
    if (node.links.length > 0 || node === this.nodes.root) return this.nodes.path(node)
    if (node.retired && this.core.tryGetattr(node.lastPath)?.ino === node.ino) return node.lastPath
    return undefined
  }

  /** Attributes of `node`, through open handle `fh` when given (the only way to a removed file). */
  #attrOf(node: Node, fh: number | undefined): Attr {
    const p = this.#livePath(node)
    if (p !== undefined) return fh !== undefined ? this.core.fgetattr(p, fh) : this.core.getattr(p)
    if (fh === undefined) throw Object.assign(new Error('no path'), { code: gone(node) })
    // From the descriptor; its number is the node's (the old name may now be another file's).
    return { ...this.core.fgetattr(node.lastPath, fh), ino: node.ino }
  }

  #child(parent: Node, name: string): string {
    return this.nodes.childPath(parent, checkName(name))
  }

  /** Runs a changing operation through the activity gate (held during a stack change). */
  #gated(op: string, path: string, reply: Reply, fn: () => unknown, answer: (v: any) => void): void {
    this.activity.count(op)
    this.activity.gate(() => this.#settle(op, path, reply, fn, answer))
  }

  #settle(op: string, path: string, reply: Reply, fn: () => unknown, answer: (v: any) => void, keepRequest = false): unknown {
    try {
      const r = fn()
      if (r instanceof Promise) {
        if (keepRequest) this.#keepRequest()
        return r.then((v) => this.#answer(op, path, reply, answer, v), (e) => reply(failure(op, path, e)))
      }
      this.#answer(op, path, reply, answer, r)
    } catch (e) {
      reply(failure(op, path, e))
    }
    return undefined
  }

  #answer(op: string, path: string, reply: Reply, answer: (v: any) => void, v: unknown): void {
    try {
      answer(v)
    } catch (e) {
      reply(failure(op, path, e))
    }
  }

  /** The current request buffer is still needed: read the next requests into a fresh one. */
  #keepRequest(): void {
    this.request = Buffer.alloc(this.request.length)
    if (this.#session) this.addon.setBuffer(this.#session, this.request)
  }

  #entryReply(reply: Reply, parent: Node, name: string, p: string, a: Attr): Node {
    const node = this.nodes.found(parent, name, a.ino, (a.mode & 0o170000) === 0o040000, p)
    writeEntry(this.#body, 0, node.id, a, this.opts.entryTimeout, this.opts.attrTimeout)
    reply(0, undefined, ENTRY_OUT_SIZE)
    return node
  }

  /** A gated operation that makes the name `parent/name` (path `p`), answered with its entry. */
  #makeEntry(op: string, parent: Node, name: string, p: string, reply: Reply, make: () => Promise<void>): void {
    this.#gated(op, p, reply, make, () => this.#entryReply(reply, parent, name, p, this.core.getattr(p)))
  }

  #attrReply(reply: Reply, a: Attr): void {
    writeAttrOut(this.#body, 0, a, this.opts.attrTimeout)
    reply(0, undefined, ATTR_OUT_SIZE)
  }

  #handle(opcode: number, nodeid: number, b: Buffer, n: number, reply: Reply): void {
    const core = this.core
    const A = IN_HEADER_SIZE
    switch (opcode) {
      case Op.INIT: return this.#init(b, n, reply)
      case Op.LOOKUP: {
        this.activity.count('lookup')
        const parent = this.#node(nodeid)
        const [name] = readName(b, A, n)
        const p = this.#child(parent, name)
        const a = core.tryGetattr(p)
        if (a) return void this.#entryReply(reply, parent, name, p, a)
        if (this.opts.negativeTimeout <= 0) return reply(ENOENT)
        writeEntry(this.#body, 0, 0, undefined, this.opts.negativeTimeout, 0)
        return reply(0, undefined, ENTRY_OUT_SIZE)
      }
      case Op.FORGET:
        this.nodes.forget(nodeid, u64(b, A))
        return
      case Op.BATCH_FORGET: {
        const count = b.readUInt32LE(A)
        for (let i = 0, off = A + 8; i < count && off + 16 <= n; i++, off += 16) this.nodes.forget(u64(b, off), u64(b, off + 8))
        return
      }
      case Op.GETATTR: {
        this.activity.count('getattr')
        const node = this.#node(nodeid)
        const fh = b.readUInt32LE(A) & FUSE_GETATTR_FH ? u64(b, A + 8) : openHandle(node)
        return this.#attrReply(reply, this.#attrOf(node, fh))
      }
      case Op.SETATTR: return this.#setattr(this.#node(nodeid), b, reply)
      case Op.READLINK: {
        this.activity.count('readlink')
        const target = Buffer.from(core.readlink(this.#path(this.#node(nodeid))))
        return reply(0, target)
      }
      case Op.SYMLINK: {
        const parent = this.#node(nodeid)
        const [name, next] = readName(b, A, n)
        const [target] = readName(b, next, n)
        const p = this.#child(parent, name)
        const who = owner(b) // read now: a gated call may run after the buffer is reused
        return this.#makeEntry('symlink', parent, name, p, reply, () => core.symlink(target, p, who))
      }
      case Op.MKNOD: {
        const parent = this.#node(nodeid)
        const mode = b.readUInt32LE(A)
        const rdev = b.readUInt32LE(A + 4)
        const [name] = readName(b, A + 16, n)
        const p = this.#child(parent, name)
        const who = owner(b)
        return this.#makeEntry('mknod', parent, name, p, reply, () => core.mknod(p, mode, rdev, who))
      }
      case Op.MKDIR: {
        const parent = this.#node(nodeid)
        const mode = b.readUInt32LE(A)
        const [name] = readName(b, A + 8, n)
        const p = this.#child(parent, name)
        const who = owner(b)
        return this.#makeEntry('mkdir', parent, name, p, reply, () => core.mkdir(p, mode, who))
      }
      case Op.UNLINK:
      case Op.RMDIR: {
        const parent = this.#node(nodeid)
        const [name] = readName(b, A, n)
        const p = this.#child(parent, name)
        const op = opcode === Op.UNLINK ? 'unlink' : 'rmdir'
        return this.#gated(op, p, reply, () => (opcode === Op.UNLINK ? core.unlink(p) : core.rmdir(p)), () => {
          this.nodes.removed(parent, name)
          reply(0)
        })
      }
      case Op.RENAME:
      case Op.RENAME2: {
        const from = this.#node(nodeid)
        const to = this.#node(u64(b, A))
        const flags = opcode === Op.RENAME2 ? b.readUInt32LE(A + 8) : 0
        const [oldName, next] = readName(b, A + (opcode === Op.RENAME2 ? 16 : 8), n)
        const [newName] = readName(b, next, n)
        const src = this.#child(from, oldName)
        const dst = this.#child(to, newName)
        // RENAME_EXCHANGE and RENAME_WHITEOUT have no union meaning layerfs implements.
        if (flags & ~RENAME_NOREPLACE) return reply(EINVAL)
        return this.#gated('rename', src, reply, () => {
          if (flags & RENAME_NOREPLACE && core.tryGetattr(dst)) return Promise.reject(Object.assign(new Error('exists'), { code: 'EEXIST' }))
          return core.rename(src, dst)
        }, () => {
          this.nodes.renamed(from, oldName, to, newName)
          reply(0)
        })
      }
      case Op.LINK: {
        const source = this.#node(u64(b, A))
        const parent = this.#node(nodeid)
        const [name] = readName(b, A + 8, n)
        const src = this.#path(source)
        const dst = this.#child(parent, name)
        return this.#makeEntry('link', parent, name, dst, reply, () => core.link(src, dst))
      }
      case Op.OPEN: {
        const node = this.#node(nodeid)
        // Reached through a dentry not looked up again since the node was retired: a second
        // kernel inode for the file would keep a page cache of its own, out of step with the
        // current node's (a reader saw zeros after a truncation through the other). The kernel
        // retries the open after a fresh lookup, which leads to the current node.
        if (node.retired) return reply(-ERRNO.ESTALE)
        const flags = b.readUInt32LE(A)
        const kill = (b.readUInt32LE(A + 4) & FUSE_OPEN_KILL_SUIDGID) !== 0
        const pid = b.readUInt32LE(32)
        const uid = b.readUInt32LE(24)
        const p = this.#path(node)
        const hostFlags = this.negotiated?.writebackCache ? writebackOpenFlags(flags) : flags
        return this.#gated('open', p, reply, () => core.open(p, hostFlags), (fh: number) => {
          if (flags & O_TRUNC) {
            // A truncating open drops privileges as a truncation does (HANDLE_KILLPRIV_V2).
            core.dropPrivileges(fh, kill)
            this.#shrinks.shrunk(node.id, pid)
          }
          this.#openReply(reply, node, fh, uid)
        })
      }
      case Op.CREATE: {
        const parent = this.#node(nodeid)
        const flags = b.readUInt32LE(A)
        const mode = b.readUInt32LE(A + 4)
        const [name] = readName(b, A + 16, n)
        const p = this.#child(parent, name)
        const who = owner(b)
        const pid = b.readUInt32LE(32)
        const hostFlags = this.negotiated?.writebackCache ? writebackOpenFlags(flags) : flags
        return this.#gated('create', p, reply, () => core.create(p, mode, hostFlags, who), (fh: number) => {
          const a = core.fgetattr(p, fh)
          // An existing file's node whose readers pass through cannot take a writer: a new node.
          const old = this.nodes.ofIno(a.ino)
          if (old && this.#passthrough?.keepsBranchFile(old)) this.nodes.retire(old)
          const node = this.nodes.found(parent, name, a.ino, false, p)
          const [openFlags, backingId] = this.#openFlags(node, fh, who.uid) ?? [0, 0] // a new node: never stale
          node.addHandle(fh)
          if (flags & O_TRUNC) this.#shrinks.shrunk(node.id, pid) // an existing file, truncated
          writeEntry(this.#body, 0, node.id, a, this.opts.entryTimeout, this.opts.attrTimeout)
          writeOpenOut(this.#body, ENTRY_OUT_SIZE, fh, openFlags, backingId)
          reply(0, undefined, ENTRY_OUT_SIZE + OPEN_OUT_SIZE)
        })
      }
      case Op.READ: {
        this.activity.count('read')
        const fh = u64(b, A)
        const offset = u64(b, A + 8)
        const size = Math.min(b.readUInt32LE(A + 16), this.#body.length)
        const got = core.read(fh, this.#body, size, offset)
        if (got < size && this.#shrinks.size !== 0) {
          const data = Buffer.from(this.#body.subarray(0, got))
          if (this.#shrinks.hold(nodeid, () => reply(0, data))) return
        }
        return reply(0, undefined, got)
      }
      case Op.WRITE: {
        const fh = u64(b, A)
        const offset = u64(b, A + 8)
        const size = b.readUInt32LE(A + 16)
        const kill = (b.readUInt32LE(A + 20) & FUSE_WRITE_KILL_SUIDGID) !== 0
        const data = b.subarray(A + 40, A + 40 + size)
        const pid = b.readUInt32LE(32)
        this.activity.count('write')
        let ran = false
        this.activity.gate(() => {
          ran = true
          return this.#settle('write', String(fh), reply, () => core.write(fh, data, size, offset), (written: number) => {
            // HANDLE_KILLPRIV_V2: after the write (a sealed handle has moved to the new upper by
            // now). The kernel does not refresh the mode after such a write: tell it, before
            // the reply (attributes only: takes no lock a pending request could hold).
            if (core.dropPrivileges(fh, kill)) this.#write(notifyInvalInode(nodeid, -1, 0))
            this.#shrinks.wrote(nodeid, pid)
            this.#body.writeUInt32LE(written, 0)
            this.#body.writeUInt32LE(0, 4)
            reply(0, undefined, 8)
          }, true)
        })
        if (!ran) this.#keepRequest()
        return
      }
      case Op.COPY_FILE_RANGE: {
        // Between two files of the union: one request instead of a READ and a WRITE per MiB,
        // and the data never passes through JS (reflink where the branch file system can).
        const fhIn = u64(b, A)
        const offIn = u64(b, A + 8)
        const nodeOut = u64(b, A + 16)
        const fhOut = u64(b, A + 24)
        const offOut = u64(b, A + 32)
        const len = Math.min(u64(b, A + 40), COPY_CHUNK)
        const pid = b.readUInt32LE(32)
        return this.#gated('copy_file_range', String(fhOut), reply, () => core.copyTargets(fhIn, fhOut), ([fdIn, fdOut]: [number, number]) => {
          const n = this.addon.copyFileRange(fdIn, offIn, fdOut, offOut, len)
          core.dropPrivileges(fhOut, false)
          this.#shrinks.wrote(nodeOut, pid)
          this.#body.writeUInt32LE(n, 0)
          this.#body.writeUInt32LE(0, 4)
          reply(0, undefined, 8)
        })
      }
      case Op.STATFS: {
        this.activity.count('statfs')
        const s = core.statfs()
        writeStatfs(this.#body, 0, { ...s, namelen: s.namemax })
        return reply(0, undefined, STATFS_OUT_SIZE)
      }
      case Op.RELEASE: {
        this.activity.count('release')
        const fh = u64(b, A)
        this.nodes.get(nodeid)?.dropHandle(fh)
        this.#passthrough?.release(fh)
        core.release(fh)
        return reply(0)
      }
      // Nothing to flush: writes go straight to the branch file. ENOSYS (what libfuse answers
      // for a file system without flush) makes the kernel stop sending FLUSH at every close.
      case Op.FLUSH: return reply(ENOSYS)
      case Op.FSYNC: {
        this.activity.count('fsync')
        core.fsync(u64(b, A), (b.readUInt32LE(A + 8) & FUSE_FSYNC_FDATASYNC) !== 0)
        return reply(0)
      }
      case Op.FSYNCDIR: {
        this.activity.count('fsyncdir')
        core.fsyncdir(this.#path(this.#node(nodeid)))
        return reply(0)
      }
      case Op.SETXATTR: {
        const node = this.#node(nodeid)
        const size = b.readUInt32LE(A)
        const flags = b.readUInt32LE(A + 4)
        const [name, next] = readName(b, A + 8, n)
        const value = Buffer.from(b.subarray(next, next + size)) // the request buffer is reused
        const p = this.#path(node)
        return this.#gated('setxattr', p, reply, () => core.setxattr(p, name, value, flags), () => reply(0))
      }
      case Op.GETXATTR: {
        this.activity.count('getxattr')
        const size = b.readUInt32LE(A)
        const [name] = readName(b, A + 8, n)
        const value = core.tryGetxattr(this.#path(this.#node(nodeid)), name)
        if (!value) return reply(ENODATA)
        return this.#sizedReply(reply, size, value)
      }
      case Op.LISTXATTR: {
        this.activity.count('listxattr')
        const size = b.readUInt32LE(A)
        const list = core.listxattr(this.#path(this.#node(nodeid)))
        return this.#sizedReply(reply, size, Buffer.from(list.map((x) => x + '\0').join('')))
      }
      case Op.REMOVEXATTR: {
        const [name] = readName(b, A, n)
        const p = this.#path(this.#node(nodeid))
        return this.#gated('removexattr', p, reply, () => core.removexattr(p, name), () => reply(0))
      }
      case Op.ACCESS: {
        this.activity.count('access')
        core.access(this.#path(this.#node(nodeid)), b.readUInt32LE(A))
        return reply(0)
      }
      case Op.OPENDIR: {
        this.activity.count('opendir')
        const fh = this.#listings.open(this.#node(nodeid))
        // Listings kept by the kernel (as file pages, unless --coherent/--revalidate): it drops
        // one when the directory changes through the mount, and at a stack change (the
        // invalidation of every node); the next `ls` of an unchanged dir asks only OPENDIR.
        writeOpenOut(this.#body, 0, fh, this.opts.keepCache ? FOPEN_CACHE_DIR | FOPEN_KEEP_CACHE : 0)
        return reply(0, undefined, OPEN_OUT_SIZE)
      }
      case Op.READDIR:
      case Op.READDIRPLUS: return this.#readdir(b, reply, opcode === Op.READDIRPLUS)
      case Op.RELEASEDIR:
        this.#listings.release(u64(b, A))
        return reply(0)
      case Op.INTERRUPT: return // every request is answered anyway, promptly or after its copy
      case Op.DESTROY:
        reply(0)
        return
      default:
        // GETLK/SETLK (the kernel keeps locks locally without POSIX_LOCKS), FALLOCATE, LSEEK,
        // COPY_FILE_RANGE, IOCTL, POLL, BMAP, TMPFILE, STATX, SYNCFS: the kernel falls back or
        // answers the caller EOPNOTSUPP/ENOSYS, and stops asking.
        return reply(ENOSYS)
    }
  }

  #init(b: Buffer, n: number, reply: Reply): void {
    const init = readInitIn(b, IN_HEADER_SIZE, n)
    if (init.major !== 7 || init.minor < FUSE_MIN_MINOR) {
      log.warnOnce('init', 'the kernel speaks FUSE %d.%d; layerfs needs 7.%d or later', init.major, init.minor, FUSE_MIN_MINOR)
      reply(-ERRNO.EPROTO)
      return
    }
    const minor = Math.min(init.minor, FUSE_OUR_MINOR)
    // HANDLE_KILLPRIV_V2: we drop setuid/setgid/capabilities on write and truncation ourselves
    // (LayerFs.dropPrivileges), so the kernel need not ask for security.capability before
    // every write, nor for fresh attributes before every chown.
    let want = Init.ASYNC_READ | Init.ATOMIC_O_TRUNC | Init.BIG_WRITES | Init.DO_READDIRPLUS | Init.HANDLE_KILLPRIV_V2 |
      Init.READDIRPLUS_AUTO | Init.PARALLEL_DIROPS | Init.MAX_PAGES | Init.CACHE_SYMLINKS |
      Init.ASYNC_DIO | Init.INIT_EXT | Init.NO_EXPORT_SUPPORT
    if (!this.opts.keepCache) want |= Init.AUTO_INVAL_DATA
    if (this.opts.passthrough) want |= Init.PASSTHROUGH
    if (this.opts.writebackCache) want |= Init.WRITEBACK_CACHE
    const flags = init.flags & want
    const passthrough = (flags & Init.PASSTHROUGH) !== 0n
    const writebackCache = (flags & Init.WRITEBACK_CACHE) !== 0n
    if (this.opts.writebackCache && !writebackCache) log.warnOnce('writeback', 'the kernel does not offer the writeback cache: every write goes to the daemon')
    const maxPages = Math.floor(this.opts.maxIo / 4096)
    writeInitOut(this.#body, 0, {
      minor, maxReadahead: init.maxReadahead, flags,
      maxBackground: 64, congestionThreshold: 48,
      maxWrite: this.opts.maxIo, timeGran: 1, maxPages,
      maxStackDepth: passthrough ? 1 : 0,
    })
    this.negotiated = { minor, flags, passthrough, writebackCache, maxWrite: this.opts.maxIo }
    this.#passthrough = new Passthrough(this.addon, this.fd, passthrough)
    reply(0, undefined, INIT_OUT_SIZE)
    log.debug('INIT: kernel 7.%d, using 7.%d, flags %s', init.minor, minor, flags.toString(16))
    this.#onInit?.()
  }

  #openReply(reply: Reply, node: Node, fh: number, uid: number): void {
    const answer = this.#openFlags(node, fh, uid)
    if (!answer) {
      // The node's readers keep another file (passthrough.ts: passthrough or `lower` mode): this
      // open gets a new node. ESTALE makes the kernel look the path up again (LOOKUP_REVAL) and retry once.
      this.core.release(fh)
      this.nodes.retire(node)
      log.debug('open of node %d answered ESTALE: its readers keep another file', node.id)
      return reply(-ERRNO.ESTALE)
    }
    node.addHandle(fh)
    writeOpenOut(this.#body, 0, fh, answer[0], answer[1])
    reply(0, undefined, OPEN_OUT_SIZE)
  }

  /**
   * FOPEN_* flags and passthrough backing id for a new handle opened by `uid`; undefined: stale
   * (ESTALE). A handle of a rw-branch file passes through when its writes need nothing from
   * layerfs (passthrough.ts; LayerFs.mayPassThrough): no setuid/setgid bit to drop and the
   * writer is root (the kernel drops nothing for a writer with CAP_FSETID; HANDLE_KILLPRIV_V2
   * leaves it to us otherwise, and a passthrough write never reaches us).
   */
  #openFlags(node: Node, fh: number, uid: number): [number, number] | undefined {
    const keep = this.opts.keepCache ? FOPEN_KEEP_CACHE : 0
    if (!this.#passthrough) return [keep, 0]
    const core = this.core
    const rw = core.onRwBranch(fh)
    const d = this.#passthrough.open(node, fh, core.hostFd(fh), rw, rw ? this.#rwPass(this.#passthrough, node, fh, uid) : 'no')
    if (d.kind === 'stale') return undefined
    if (d.kind !== 'passthrough') return [keep, 0]
    if (rw) core.passedThrough(fh)
    return [FOPEN_PASSTHROUGH, d.backingId]
  }

  /** Whether handle `fh` of a rw-branch file, opened by `uid`, may pass through (passthrough.ts RwPass). */
  #rwPass(table: Passthrough, node: Node, fh: number, uid: number): RwPass {
    if (!this.opts.passWriters) return 'no'
    const writer = this.core.writable(fh)
    // A reader only joins a writer already passing through (else it must follow its file
    // across a checkpoint); a writer must be root (above).
    if (writer ? uid !== 0 : !table.passesThrough(node)) return 'no'
    if (!this.core.mayPassThrough(fh)) return 'no'
    return writer ? 'start' : 'join'
  }

  #sizedReply(reply: Reply, size: number, value: Buffer): void {
    if (size === 0) {
      this.#body.writeUInt32LE(value.length, 0)
      this.#body.writeUInt32LE(0, 4)
      return reply(0, undefined, 8)
    }
    if (value.length > size) return reply(ERANGE)
    reply(0, value)
  }

  #setattr(node: Node, b: Buffer, reply: Reply): void {
    const A = IN_HEADER_SIZE
    const valid = b.readUInt32LE(A)
    const fh = valid & FATTR_FH ? u64(b, A + 8) : undefined
    const size = u64(b, A + 16)
    const atimeMs = u64(b, A + 32) * 1000 + b.readUInt32LE(A + 56) / 1e6
    const mtimeMs = u64(b, A + 40) * 1000 + b.readUInt32LE(A + 60) / 1e6
    const mode = b.readUInt32LE(A + 68)
    const uid = b.readUInt32LE(A + 76)
    const gid = b.readUInt32LE(A + 80)
    const pid = b.readUInt32LE(32)
    const core = this.core
    const handle = fh ?? openHandle(node)
    // A removed file that is still open can only be truncated, through its handle (the host
    // ftruncate sets its times); its mode and owner cannot change any more (ENOENT).
    const live = this.#livePath(node)
    const removed = live === undefined
    if (removed && (fh === undefined || valid & (FATTR_MODE | FATTR_UID | FATTR_GID))) return reply(-ERRNO[gone(node)])
    const p = live ?? node.lastPath
    const op = valid & FATTR_SIZE ? (fh !== undefined ? 'ftruncate' : 'truncate') : valid & FATTR_MODE ? 'chmod' : valid & (FATTR_UID | FATTR_GID) ? 'chown' : 'utimens'
    this.#gated(op, p, reply, async () => {
      if (valid & FATTR_MODE) await core.chmod(p, mode)
      if (valid & (FATTR_UID | FATTR_GID)) await core.chown(p, valid & FATTR_UID ? uid : -1, valid & FATTR_GID ? gid : -1)
      if (valid & FATTR_SIZE) {
        const kill = (valid & FATTR_KILL_SUIDGID) !== 0
        if (fh !== undefined) {
          await core.ftruncate(fh, size)
          core.dropPrivileges(fh, kill)
        } else {
          await core.truncate(p, size)
          core.dropPrivilegesAt(p, kill)
        }
        this.#shrinks.shrunk(node.id, pid)
      }
      // Its reply sets the kernel's size without the attr_version check (fuse_do_setattr): a
      // shrink by another task right after must wait as after a write (shrink-settle.ts).
      this.#shrinks.wrote(node.id, pid)
      if (!removed && valid & (FATTR_ATIME | FATTR_MTIME | FATTR_ATIME_NOW | FATTR_MTIME_NOW)) {
        const now = Date.now()
        const a = valid & FATTR_ATIME_NOW ? now : valid & FATTR_ATIME ? atimeMs : undefined
        const m = valid & FATTR_MTIME_NOW ? now : valid & FATTR_MTIME ? mtimeMs : undefined
        await core.utimens(p, a, m)
      }
    }, () => this.#attrReply(reply, this.#attrOf(node, handle)))
  }

  #readdir(b: Buffer, reply: Reply, plus: boolean): void {
    this.activity.count(plus ? 'readdirplus' : 'readdir')
    const A = IN_HEADER_SIZE
    const size = Math.min(b.readUInt32LE(A + 16), this.#body.length)
    const used = this.#listings.read(u64(b, A), u64(b, A + 8), size, plus, this.#body)
    if (used === undefined) return reply(-ERRNO.EBADF)
    reply(0, undefined, used)
  }
}

/**
 * The flags a branch file is opened with under the writeback cache (as libfuse's
 * passthrough_ll): read-write for a write-only open, since the kernel reads around a partial
 * page it caches; no O_APPEND, since the kernel places appended data itself and its WRITEs carry
 * the offsets (the branch's O_APPEND would move them to the file's end, out of order).
 */
export function writebackOpenFlags(flags: number): number {
  const f = flags & ~fs.constants.O_APPEND
  return (f & O_ACCMODE) === fs.constants.O_WRONLY ? (f & ~O_ACCMODE) | fs.constants.O_RDWR : f
}

/** The caller of request `b` (struct fuse_in_header uid, gid), who owns what it creates. */
function owner(b: Buffer): Owner {
  return { uid: b.readUInt32LE(24), gid: b.readUInt32LE(28) }
}

/**
 * What a request by path answers for a node no name leads to: ENOENT when its file was removed,
 * ESTALE when it was retired (the kernel looks the name up again and retries).
 */
function gone(node: Node): 'ENOENT' | 'ESTALE' {
  return node.retired ? 'ESTALE' : 'ENOENT'
}

/** An open handle of `node`, if any (an unlinked file is reached through it; a retired one by its name). */
function openHandle(node: Node): number | undefined {
  return node.links.length > 0 || node.retired ? undefined : node.anyHandle()
}


const OP_NAMES: Record<number, string> = {
  1: 'lookup', 3: 'getattr', 4: 'setattr', 5: 'readlink', 6: 'symlink', 8: 'mknod', 9: 'mkdir', 10: 'unlink',
  11: 'rmdir', 12: 'rename', 13: 'link', 14: 'open', 15: 'read', 16: 'write', 17: 'statfs', 18: 'release',
  20: 'fsync', 21: 'setxattr', 22: 'getxattr', 23: 'listxattr', 24: 'removexattr', 26: 'init', 27: 'opendir',
  28: 'readdir', 29: 'releasedir', 30: 'fsyncdir', 34: 'access', 35: 'create', 44: 'readdirplus', 45: 'rename2',
}

function opName(opcode: number): string {
  return OP_NAMES[opcode] ?? `op${opcode}`
}
