// Real mounts for integration tests: the daemon runs in its own process (the built CLI), the
// test touches the mount only from child programs or async fs, and teardown always unmounts.
import { execFile, spawn } from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { fileURLToPath } from 'node:url'

export const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../dist/bin/layerfs.js')

/**
 * The FUSE transport the CLI mounts with in this run: LAYERFS_TRANSPORT, else the native one
 * when its addon is built (we are root here). Where the transports differ (kernel cache
 * invalidation), tests expect what this one does.
 */
export function transportUnderTest(): 'native' | 'fuse-native' {
  const env = process.env.LAYERFS_TRANSPORT
  if (env === 'native' || env === 'fuse-native') return env
  const addon = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../native/build/Release/layerfs_fuse.node')
  return fs.existsSync(addon) ? 'native' : 'fuse-native'
}

/** Why FUSE tests cannot run here, or undefined when they can. */
export function fuseUnavailable(): string | undefined {
  if (process.platform !== 'linux') return 'not Linux'
  if (!fs.existsSync('/dev/fuse')) return '/dev/fuse is missing'
  if (process.getuid?.() !== 0) return 'integration tests mount as root'
  if (!fs.existsSync(CLI)) return `CLI not built (${CLI}): run npm run build`
  return undefined
}

export interface RunResult { code: number; stdout: string; stderr: string }

/** Runs a program (never synchronously: the test process must stay responsive). */
export function run(cmd: string, args: readonly string[], opts: { cwd?: string; input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args as string[], { cwd: opts.cwd, env: opts.env ?? process.env, timeout: opts.timeoutMs ?? 30_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as NodeJS.ErrnoException).code === 'number' ? Number((err as NodeJS.ErrnoException).code) : 1) : 0
      resolve({ code, stdout: String(stdout), stderr: String(stderr) })
    })
    if (opts.input !== undefined) child.stdin?.end(opts.input)
  })
}

/** sh -c SCRIPT, for ordinary programs against the mount. */
export function sh(script: string, opts: { cwd?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  return run('sh', ['-c', script], opts)
}

/** The CLI (node dist/bin/layerfs.js ARGS). */
export function cli(args: readonly string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<RunResult> {
  return run(process.execPath, [CLI, ...args], opts)
}

export function isMounted(mnt: string): boolean {
  return fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === mnt)
}

/** Mounts with the CLI in the background (the daemon keeps serving); throws with its stderr. */
export async function mountCli(args: readonly string[], opts: { cwd?: string } = {}): Promise<void> {
  const r = await cli(['mount', ...args], opts)
  if (r.code !== 0) throw new Error(`layerfs mount ${args.join(' ')} failed (${r.code}): ${r.stderr}`)
}

/**
 * Unmounts if mounted, whatever state the test left: `layerfs umount`, then a lazy umount as
 * the last resort, so no test ever leaves a mount behind. Safe to call twice.
 */
export async function cleanupMount(mnt: string): Promise<void> {
  if (!isMounted(mnt)) return
  const r = await cli(['umount', mnt])
  if (r.code === 0 && !isMounted(mnt)) return
  for (let i = 0; i < 50 && isMounted(mnt); i++) {
    await run('umount', [mnt])
    if (isMounted(mnt)) await new Promise((res) => setTimeout(res, 100))
  }
  if (isMounted(mnt)) await run('umount', ['-l', mnt])
}

/** A foreground daemon (layerfs mount -f) as a child process, for signal and lifecycle tests. */
export function spawnForeground(args: readonly string[]) {
  return spawn(process.execPath, [CLI, 'mount', '-f', ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
}
