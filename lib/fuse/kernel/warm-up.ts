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
import { ENTRY_OUT_SIZE, FATTR_ATIME, FATTR_GID, FATTR_MODE, FATTR_MTIME, FATTR_UID, Op, u64 } from './protocol.js'
import { cstr, io, release, ScratchKernel, setattr, u32s, u64buf } from './scratch-kernel.js'
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
  // Its parent is up now: the common copy-up, at once (copyUpSingle).
  const kf = await k.lookup(d, 'k')
  fh = u64(await k.send(Op.OPEN, kf, u32s(O_WRONLY, 0)), 0)
  await k.send(Op.GETXATTR, kf, Buffer.concat([u32s(0, 0), cstr('security.capability')]), true) // ENODATA
  await k.send(Op.WRITE, kf, Buffer.concat([io(fh, 0, 1), Buffer.alloc(1, 2)]))
  await k.send(Op.RELEASE, kf, release(fh))
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
