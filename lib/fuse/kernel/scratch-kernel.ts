// A kernel stand-in for a KernelSession: builds requests byte by byte as the kernel sends them,
// dispatches them, and reads the replies back from the file the session writes them to. The
// native transport's warm-up talks to a scratch session through it (warm-up.ts); unit tests
// drive the dispatcher with it.
import { fs } from '../../fs.js'
import { IN_HEADER_SIZE, Op, OUT_HEADER_SIZE, u64, writeU64 } from './protocol.js'
import type { KernelSession } from './session.js'

/** The kernel's side of the scratch session: builds requests, reads their replies back. */
export class ScratchKernel {
  #unique = 1
  #offset = 0

  constructor(readonly session: KernelSession, readonly fd: number) {}

  /** Sends one request; resolves with its reply's body. An error reply rejects, unless `errorOk`. */
  async send(opcode: number, nodeid: number, args: Buffer, errorOk = false): Promise<Buffer> {
    const { error, body } = await this.exchange(opcode, nodeid, args)
    if (error !== 0 && !errorOk) throw new Error(`scratch kernel: opcode ${opcode} answered ${error}`)
    return body
  }

  /** Sends one request; resolves with its reply: the (negative) errno and the body. */
  async exchange(opcode: number, nodeid: number, args: Buffer, pid = 0): Promise<{ error: number; body: Buffer }> {
    this.post(opcode, nodeid, args, pid)
    // Most requests are answered before dispatch returns; a copy-up or a create settles promises.
    const r = await this.nextReply()
    if (r === undefined) throw new Error(`scratch kernel: no reply to opcode ${opcode}`)
    return r
  }

  /** Dispatches one request from task `pid` (0: as the daemon) without waiting; its unique id. */
  post(opcode: number, nodeid: number, args: Buffer, pid = 0): number {
    const b = this.session.request
    const len = IN_HEADER_SIZE + args.length
    const unique = this.#unique++
    b.fill(0, 0, IN_HEADER_SIZE) // uid, gid 0: root, as the daemon
    b.writeUInt32LE(len, 0)
    b.writeUInt32LE(opcode, 4)
    b.writeUInt32LE(unique, 8)
    writeU64(b, nodeid, 16)
    b.writeUInt32LE(pid, 32)
    args.copy(b, IN_HEADER_SIZE)
    this.session.dispatch(len)
    return unique
  }

  /** The next reply written, after up to `turns` event-loop turns; undefined if none came. */
  async nextReply(turns = 100): Promise<{ error: number; body: Buffer; unique: number } | undefined> {
    const header = Buffer.alloc(OUT_HEADER_SIZE)
    for (let i = 0; i < turns && fs.readSync(this.fd, header, 0, OUT_HEADER_SIZE, this.#offset) < OUT_HEADER_SIZE; i++) {
      await new Promise((r) => setImmediate(r))
    }
    const size = header.readUInt32LE(0)
    if (size < OUT_HEADER_SIZE) return undefined
    const error = header.readInt32LE(4)
    const body = Buffer.alloc(size - OUT_HEADER_SIZE)
    fs.readSync(this.fd, body, 0, body.length, this.#offset + OUT_HEADER_SIZE)
    this.#offset += size
    return { error, body, unique: header.readUInt32LE(8) }
  }

  /** An entry's node id (LOOKUP, CREATE, MKDIR reply: fuse_entry_out starts with it). */
  async lookup(parent: number, name: string): Promise<number> {
    return u64(await this.send(Op.LOOKUP, parent, cstr(name)), 0)
  }
}

/** A NUL-terminated name, as the kernel sends it. */
export function cstr(...names: string[]): Buffer {
  return Buffer.concat(names.map((n) => Buffer.from(n + '\0')))
}

export function u32s(...v: number[]): Buffer {
  const b = Buffer.alloc(v.length * 4)
  v.forEach((x, i) => b.writeUInt32LE(x >>> 0, i * 4))
  return b
}

/** fuse_read_in / fuse_write_in (40 bytes): fh, offset, size, then zeros. */
export function io(fh: number, offset: number, size: number): Buffer {
  const b = Buffer.alloc(40)
  writeU64(b, fh, 0)
  writeU64(b, offset, 8)
  b.writeUInt32LE(size, 16)
  return b
}

/** fuse_init_in (64 bytes) from a 7.`minor` kernel offering `flags` (bits above 31 in flags2, with INIT_EXT). */
export function initIn(minor: number, flags = 0n): Buffer {
  const b = Buffer.alloc(64)
  b.writeUInt32LE(7, 0)
  b.writeUInt32LE(minor, 4)
  b.writeUInt32LE(1 << 20, 8) // max_readahead
  b.writeUInt32LE(Number(flags & 0xffffffffn), 12)
  b.writeUInt32LE(Number(flags >> 32n), 16)
  return b
}

/** fuse_release_in (24 bytes). */
export function release(fh: number): Buffer {
  const b = Buffer.alloc(24)
  writeU64(b, fh, 0)
  return b
}

/** fuse_setattr_in (88 bytes) with `valid` and the fields it names. */
export function setattr(valid: number, f: { size?: number; mode?: number; uid?: number; gid?: number; atime?: number; mtime?: number }): Buffer {
  const b = Buffer.alloc(88)
  b.writeUInt32LE(valid, 0)
  writeU64(b, f.size ?? 0, 16)
  writeU64(b, f.atime ?? 0, 32)
  writeU64(b, f.mtime ?? 0, 40)
  b.writeUInt32LE(f.mode ?? 0, 68)
  b.writeUInt32LE(f.uid ?? 0, 76)
  b.writeUInt32LE(f.gid ?? 0, 80)
  return b
}

export function u64buf(v: number): Buffer {
  const b = Buffer.alloc(8)
  writeU64(b, v, 0)
  return b
}
