// The native transport's warm-up: before the real session starts, a scratch session answers the
// requests a mount's first seconds bring (lookups, getattr, a listing, a read, an open for
// writing that copies up, the kernel's security.capability getxattr, write, release, create,
// setattr as tar sends them, mkdir, renames, unlinks, symlink, link), once each, for a scratch
// stack (lib/warm-up.ts). It runs the core's operations too: the native transport needs no
// other warm-up (fuse-native runs lib/warm-up.ts's). Its replies go to a scratch file, where the nodes and handles are read back.
// V8 compiles the dispatcher's and the codec's paths then, instead of in the first requests of
// the mount: those took 0.15–1.2 ms each against 0.01–0.2 ms for fuse-overlayfs
// (docs/benchmarks.md §6, "The first requests of a daemon").
import { fs } from '../../fs.js'
import { withScratchStack } from '../../warm-up.js'
import { Activity } from '../activity.js'
import type { NativeFuse } from './addon.js'
import {
  ENTRY_OUT_SIZE, FATTR_ATIME, FATTR_GID, FATTR_MODE, FATTR_MTIME, FATTR_UID, IN_HEADER_SIZE, Op, OUT_HEADER_SIZE, u64, writeU64,
} from './protocol.js'
import { KernelSession, type SessionOptions } from './session.js'

const { O_RDONLY, O_WRONLY, O_RDWR, O_TRUNC } = fs.constants
const ROOT = 1

/** Runs the scratch session under `dir` (created and removed); never throws; whether every request succeeded. */
export async function warmUpSession(addon: NativeFuse, dir: string, opts: SessionOptions): Promise<boolean> {
  if (process.env.LAYERFS_WARM_UP === '0') return false
  return withScratchStack(dir, 'session', async (core) => {
    const fd = fs.openSync(`${dir}/replies`, 'w+')
    try {
      await talk(new ScratchKernel(new KernelSession(core, new Activity(), addon, fd, opts), fd))
    } finally {
      fs.closeSync(fd)
    }
  })
}

/** The kernel's side of the scratch session: builds requests, reads their replies back. */
class ScratchKernel {
  #unique = 1
  #offset = 0

  constructor(readonly session: KernelSession, readonly fd: number) {}

  /** Sends one request; resolves with its reply's body. An error reply rejects, unless `errorOk`. */
  async send(opcode: number, nodeid: number, args: Buffer, errorOk = false): Promise<Buffer> {
    const b = this.session.request
    const len = IN_HEADER_SIZE + args.length
    b.fill(0, 0, IN_HEADER_SIZE) // uid, gid, pid 0: root, as the daemon
    b.writeUInt32LE(len, 0)
    b.writeUInt32LE(opcode, 4)
    b.writeUInt32LE(this.#unique++, 8)
    writeU64(b, nodeid, 16)
    args.copy(b, IN_HEADER_SIZE)
    this.session.dispatch(len)
    // Most requests are answered before dispatch returns; a copy-up or a create settles promises.
    const header = Buffer.alloc(OUT_HEADER_SIZE)
    for (let i = 0; i < 100 && fs.readSync(this.fd, header, 0, OUT_HEADER_SIZE, this.#offset) < OUT_HEADER_SIZE; i++) {
      await new Promise((r) => setImmediate(r))
    }
    const size = header.readUInt32LE(0)
    if (size < OUT_HEADER_SIZE) throw new Error(`warm-up: no reply to opcode ${opcode}`)
    const error = header.readInt32LE(4)
    const body = Buffer.alloc(size - OUT_HEADER_SIZE)
    fs.readSync(this.fd, body, 0, body.length, this.#offset + OUT_HEADER_SIZE)
    this.#offset += size
    if (error !== 0 && !errorOk) throw new Error(`warm-up: opcode ${opcode} answered ${error}`)
    return body
  }

  /** An entry's node id (LOOKUP, CREATE, MKDIR reply: fuse_entry_out starts with it). */
  async lookup(parent: number, name: string): Promise<number> {
    return u64(await this.send(Op.LOOKUP, parent, cstr(name)), 0)
  }
}

/** A NUL-terminated name, as the kernel sends it. */
function cstr(...names: string[]): Buffer {
  return Buffer.concat(names.map((n) => Buffer.from(n + '\0')))
}

function u32s(...v: number[]): Buffer {
  const b = Buffer.alloc(v.length * 4)
  v.forEach((x, i) => b.writeUInt32LE(x >>> 0, i * 4))
  return b
}

/** fuse_read_in / fuse_write_in (40 bytes): fh, offset, size, then zeros. */
function io(fh: number, offset: number, size: number): Buffer {
  const b = Buffer.alloc(40)
  writeU64(b, fh, 0)
  writeU64(b, offset, 8)
  b.writeUInt32LE(size, 16)
  return b
}

/** fuse_release_in (24 bytes). */
function release(fh: number): Buffer {
  const b = Buffer.alloc(24)
  writeU64(b, fh, 0)
  return b
}

/** fuse_setattr_in (88 bytes) with `valid` and the fields it names. */
function setattr(valid: number, f: { mode?: number; uid?: number; gid?: number; atime?: number; mtime?: number }): Buffer {
  const b = Buffer.alloc(88)
  b.writeUInt32LE(valid, 0)
  writeU64(b, f.atime ?? 0, 32)
  writeU64(b, f.mtime ?? 0, 40)
  b.writeUInt32LE(f.mode ?? 0, 68)
  b.writeUInt32LE(f.uid ?? 0, 76)
  b.writeUInt32LE(f.gid ?? 0, 80)
  return b
}

/** The requests, in the order a container's first seconds bring them. */
async function talk(k: ScratchKernel): Promise<void> {
  const d = await k.lookup(ROOT, 'd')
  await k.send(Op.GETATTR, d, Buffer.alloc(16))
  await k.send(Op.ACCESS, d, u32s(1, 0))
  // A listing: OPENDIR, READDIRPLUS, READDIR at the end, RELEASEDIR.
  const dh = u64(await k.send(Op.OPENDIR, d, u32s(O_RDONLY, 0)), 0)
  await k.send(Op.READDIRPLUS, d, io(dh, 0, 4096))
  await k.send(Op.READDIR, d, io(dh, 100, 4096))
  await k.send(Op.RELEASEDIR, d, release(dh))
  // A read of a lower file, a symlink.
  const f = await k.lookup(d, 'f')
  let fh = u64(await k.send(Op.OPEN, f, u32s(O_RDONLY, 0)), 0)
  await k.send(Op.READ, f, io(fh, 0, 4096))
  await k.send(Op.FLUSH, f, release(fh), true) // ENOSYS
  await k.send(Op.RELEASE, f, release(fh))
  await k.send(Op.READLINK, await k.lookup(d, 'l'), Buffer.alloc(0))
  await k.send(Op.LOOKUP, d, cstr('missing'), true)
  // An open for writing: copy-up, the kernel's capability check, a write.
  const g = await k.lookup(d, 'g')
  fh = u64(await k.send(Op.OPEN, g, u32s(O_WRONLY, 0)), 0)
  await k.send(Op.GETXATTR, g, Buffer.concat([u32s(0, 0), cstr('security.capability')]), true) // ENODATA
  await k.send(Op.WRITE, g, Buffer.concat([io(fh, 0, 4096), Buffer.alloc(4096, 2)]))
  await k.send(Op.RELEASE, g, release(fh))
  // tar: create, write, release, then mode, owner and times.
  const created = await k.send(Op.CREATE, d, Buffer.concat([u32s(O_RDWR, 0o100644, 0, 0), cstr('new')]))
  const n = u64(created, 0)
  fh = u64(created, ENTRY_OUT_SIZE)
  await k.send(Op.WRITE, n, Buffer.concat([io(fh, 0, 100), Buffer.alloc(100, 3)]))
  await k.send(Op.RELEASE, n, release(fh))
  await k.send(Op.SETATTR, n, setattr(FATTR_MODE, { mode: 0o100640 }))
  await k.send(Op.SETATTR, n, setattr(FATTR_UID | FATTR_GID, { uid: 0, gid: 0 }))
  await k.send(Op.SETATTR, n, setattr(FATTR_ATIME | FATTR_MTIME, { atime: 1_000_000, mtime: 2_000_000 }))
  await k.send(Op.STATFS, d, Buffer.alloc(0))
  // mkdir, renames (an rw file; a lower file: copy-up and whiteout), unlinks, rmdir.
  const sub = u64(await k.send(Op.MKDIR, d, Buffer.concat([u32s(0o755, 0), cstr('sub')])), 0)
  await k.send(Op.RENAME, d, Buffer.concat([u64buf(sub), cstr('new', 'moved')]))
  await k.lookup(d, 'r')
  await k.send(Op.RENAME, d, Buffer.concat([u64buf(d), cstr('r', 'r2')]))
  await k.send(Op.UNLINK, sub, cstr('moved'))
  await k.send(Op.RMDIR, d, cstr('sub'))
  await k.send(Op.UNLINK, d, cstr('r2'))
  await k.send(Op.UNLINK, d, cstr('f')) // a lower file: a whiteout
  // A truncating open of a lower file (copy-up without the data), a symlink, a hard link.
  const h = await k.lookup(await k.lookup(d, 'e'), 'h')
  fh = u64(await k.send(Op.OPEN, h, u32s(O_WRONLY | O_TRUNC, 0)), 0)
  await k.send(Op.RELEASE, h, release(fh))
  await k.send(Op.SYMLINK, d, cstr('s', 'g'))
  await k.send(Op.LINK, d, Buffer.concat([u64buf(g), cstr('g2')]))
}

function u64buf(v: number): Buffer {
  const b = Buffer.alloc(8)
  writeU64(b, v, 0)
  return b
}
