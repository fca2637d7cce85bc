// Warm-up: the core's operations run once on a throw-away stack before a mount serves (the
// fuse-native transport; the native one sends its scratch session requests instead, which run
// these operations too: lib/fuse/kernel/warm-up.ts, on the same scratch stack). V8
// compiles a function at its first call and runs it in its interpreter for a while, so a fresh
// daemon's first copy-up took 2–4 ms against 0.1–0.3 ms for the next ones (docs/benchmarks.md,
// "The first requests of a daemon"). Paying that here, on scratch files, keeps it out of the
// first requests. Nothing of the real stack is touched: the scratch stack lives in the work area
// (never visible in the merged view, emptied at every mount) and is removed at the end.
import { fs } from './fs.js'
import { LayerFs } from './layerfs.js'
import { createLogger } from './log.js'

const log = createLogger('layerfs:warm-up')
const { O_RDONLY, O_WRONLY, O_RDWR, O_TRUNC } = fs.constants

/**
 * Runs the usual operations on a scratch stack under `dir` (created and removed here); never
 * throws. Resolves with whether every operation succeeded. LAYERFS_WARM_UP=0 skips it (to
 * measure what it saves), and the native transport's warm-up too (lib/fuse/kernel/warm-up.ts).
 */
export async function warmUp(dir: string): Promise<boolean> {
  if (process.env.LAYERFS_WARM_UP === '0') return false
  return withScratchStack(dir, 'core', exercise)
}

/**
 * Builds a small stack under `dir` (a lower dir `d` with files f (4 KiB), g, k, r, a symlink l
 * and a subdir e with h; an empty upper), runs `use` on it, and removes it all; never throws.
 * Resolves with whether `use` completed.
 */
export async function withScratchStack(dir: string, what: string, use: (core: LayerFs) => Promise<void>): Promise<boolean> {
  const started = process.hrtime.bigint()
  try {
    fs.mkdirSync(`${dir}/lower/d/e`, { recursive: true })
    fs.mkdirSync(`${dir}/upper`)
    fs.writeFileSync(`${dir}/lower/d/f`, Buffer.alloc(4096, 1))
    fs.writeFileSync(`${dir}/lower/d/g`, 'g')
    fs.writeFileSync(`${dir}/lower/d/k`, 'k')
    fs.writeFileSync(`${dir}/lower/d/e/h`, 'h')
    fs.writeFileSync(`${dir}/lower/d/r`, 'r')
    fs.symlinkSync('f', `${dir}/lower/d/l`)
    const core = new LayerFs([{ path: `${dir}/upper`, mode: 'rw' }, { path: `${dir}/lower`, mode: 'ro' }], { cacheSize: 64 })
    try {
      await use(core)
    } finally {
      core.close()
    }
    log.debug('%s warm-up took %d ms', what, Number(process.hrtime.bigint() - started) / 1e6)
    return true
  } catch (e) {
    log.debug('%s warm-up stopped: %s', what, (e as Error).message) // only a slower first request follows
    return false
  } finally {
    try {
      fs.rmSync(dir, { recursive: true, force: true })
    } catch {
      // Left to the next mount's emptying of the work area.
    }
  }
}

/** What a container's first seconds do: look up, list, read, copy up, write, create, rename, link, delete. */
async function exercise(core: LayerFs): Promise<void> {
  const buf = Buffer.alloc(4096)
  for (const p of ['/', '/d', '/d/f', '/d/e', '/d/e/h', '/d/l']) core.getattr(p)
  core.tryGetattr('/d/missing')
  core.readdir('/d')
  core.readlink('/d/l')
  let fh = await core.open('/d/g', O_RDONLY)
  core.read(fh, buf, 4096, 0)
  core.release(fh)
  fh = await core.open('/d/f', O_WRONLY) // copy-up of a file and its parent
  await core.write(fh, buf, 4096, 0)
  core.fgetattr('/d/f', fh)
  core.release(fh)
  fh = await core.open('/d/k', O_WRONLY) // its parent is up now: the copy-up at once (copyUpSingle)
  await core.write(fh, buf, 1, 0)
  core.release(fh)
  core.release(await core.open('/d/e/h', O_RDWR | O_TRUNC)) // copy-up without the data
  fh = await core.create('/d/new', 0o644, O_RDWR)
  await core.write(fh, buf, 100, 0)
  core.release(fh)
  await core.mkdir('/d/dir', 0o755)
  await core.chmod('/d/g', 0o600)
  await core.utimens('/d/g', 1_000_000, 2_000_000)
  await core.rename('/d/new', '/d/dir/moved')
  await core.unlink('/d/dir/moved')
  await core.rmdir('/d/dir')
  await core.unlink('/d/g') // a whiteout
  await core.rename('/d/r', '/d/e/r2') // a lower file: copy-up, whiteout, rename
  await core.symlink('r2', '/d/e/s')
  await core.link('/d/e/r2', '/d/e/r3')
  core.readdir('/d')
}
