// Root file systems for the launcher tests, built once and cached under $TMPDIR between runs:
// a tiny one from Debian's busybox-static, and (opt-in, slow) a debootstrap minbase.
import { execFile } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'

export const CACHE_DIR = process.env.LAYERFS_TEST_CACHE ?? path.join(os.tmpdir(), 'layerfs-test-cache')
const BUSYBOX = '/bin/busybox'

/** Why the busybox rootfs cannot be built, or undefined when it can. */
export function busyboxUnavailable(): string | undefined {
  if (!fs.existsSync(BUSYBOX)) return `${BUSYBOX} is missing: apt-get install busybox-static (listed in .ci/apt-packages)`
  return undefined
}

function busyboxApplets(): Promise<string[]> {
  return new Promise((resolve, reject) => {
    execFile(BUSYBOX, ['--list'], (err, out) => (err ? reject(err) : resolve(String(out).split('\n').filter((a) => a !== '' && a !== 'busybox'))))
  })
}

/**
 * A rootfs dir: /bin/busybox with a symlink per applet (sh, ps, echo, ls, cat, rm, hostname,
 * mount…), /etc/passwd, /etc/group and /etc/motd. Cached by the busybox binary's size and
 * mtime; built in a temp dir and renamed into place, so a crash never leaves half a rootfs.
 */
export async function busyboxRootfs(): Promise<string> {
  const st = fs.statSync(BUSYBOX)
  const dir = path.join(CACHE_DIR, `busybox-rootfs-${st.size}-${Math.floor(st.mtimeMs)}`)
  if (fs.existsSync(dir)) return dir
  fs.mkdirSync(CACHE_DIR, { recursive: true })
  const tmp = fs.mkdtempSync(path.join(CACHE_DIR, '.build-'))
  fs.chmodSync(tmp, 0o755)
  for (const d of ['bin', 'etc', 'root', 'var/log']) fs.mkdirSync(path.join(tmp, d), { recursive: true })
  fs.copyFileSync(BUSYBOX, path.join(tmp, 'bin/busybox'))
  fs.chmodSync(path.join(tmp, 'bin/busybox'), 0o755)
  for (const a of await busyboxApplets()) fs.symlinkSync('busybox', path.join(tmp, 'bin', a))
  fs.writeFileSync(path.join(tmp, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n')
  fs.writeFileSync(path.join(tmp, 'etc/group'), 'root:x:0:\nnogroup:x:65534:\n')
  fs.writeFileSync(path.join(tmp, 'etc/motd'), 'busybox rootfs\n')
  fs.writeFileSync(path.join(tmp, 'var/log/old.log'), 'old\n')
  try {
    fs.renameSync(tmp, dir)
  } catch {
    fs.rmSync(tmp, { recursive: true, force: true }) // another run made it first
  }
  return dir
}

/** Why a debootstrap rootfs is not tried: it is opt-in (LAYERFS_TEST_DEBOOTSTRAP=1) and slow. */
export function debootstrapUnavailable(): string | undefined {
  const cached = path.join(CACHE_DIR, 'debootstrap-minbase')
  if (fs.existsSync(cached)) return undefined
  if (process.env.LAYERFS_TEST_DEBOOTSTRAP !== '1') return 'debootstrap rootfs not cached: set LAYERFS_TEST_DEBOOTSTRAP=1 to build it (minutes, needs a Debian mirror)'
  if (!['/usr/sbin/debootstrap', '/sbin/debootstrap'].some((p) => fs.existsSync(p))) return 'debootstrap is not installed (apt-get install debootstrap)'
  return undefined
}

/** `debootstrap --variant=minbase` of the host's Debian suite, cached; rejects when it fails. */
export async function debootstrapRootfs(): Promise<string> {
  const dir = path.join(CACHE_DIR, 'debootstrap-minbase')
  if (fs.existsSync(dir)) return dir
  const suite = (/VERSION_CODENAME=(\w+)/.exec(fs.readFileSync('/etc/os-release', 'utf8'))?.[1]) ?? 'stable'
  fs.mkdirSync(CACHE_DIR, { recursive: true })
  const tmp = fs.mkdtempSync(path.join(CACHE_DIR, '.debootstrap-'))
  await new Promise<void>((resolve, reject) => {
    execFile('debootstrap', ['--variant=minbase', suite, tmp], { maxBuffer: 64 << 20, timeout: 30 * 60_000 }, (err, _o, stderr) =>
      err ? reject(new Error(`debootstrap failed: ${String(stderr).slice(-2000)}`)) : resolve())
  }).catch((e) => {
    fs.rmSync(tmp, { recursive: true, force: true })
    throw e
  })
  fs.renameSync(tmp, dir)
  return dir
}
