// Plumbing shared by the integration suites: one fresh fixture mounted per test and always
// unmounted, ro branches hashed before and checked after, syscalls through python3 that report
// errno names, the merged view copied out with cp -a, and an OCI layer applier to compare with.
import * as fs from 'node:fs'
import * as path from 'node:path'
import { afterEach, expect } from 'vitest'
import { hashTree, makeFixture, snapshot, type Fixture, type Tree } from './fixture.js'
import { cleanupMount, cli, isMounted, mountCli, run, sh, type RunResult } from './mount.js'

export interface MountRequest {
  /** The stack as given to `layerfs mount` (default 'A=rw:B=ro'). */
  readonly spec?: string
  /** Options before the spec (e.g. ['--upper', 'U'] or ['-o', 'lowerdir=…']). */
  readonly args?: readonly string[]
  /** Leave out the spec argument (-o lowerdir=… mounts name a source instead). */
  readonly noSpec?: boolean
  /**
   * Branches that must come out of the test byte for byte unchanged (checked after the unmount).
   * Default: every tree of the fixture marked '=ro' in the spec, or all but the first without modes.
   */
  readonly ro?: readonly string[]
  /** Changes the fixture on the host before the ro branches are hashed and the stack mounted. */
  readonly prepare?: (fx: Fixture) => void
}

export interface Mounted {
  readonly fx: Fixture
  readonly root: string
  readonly mnt: string
  dir(name: string): string
  /** sh -c SCRIPT in the fixture root (so 'mnt/x' is a path in the mount). */
  sh(script: string): Promise<RunResult>
  /** Like sh, but fails the test with the program's stderr on a non-zero exit; returns stdout. */
  ok(script: string): Promise<string>
  /**
   * Runs python3 statements (each one separately, in the fixture root, with `os` and `stat`
   * imported) and returns for each 'OK' or the errno name of the OSError it raised.
   */
  errnos(statements: readonly string[]): Promise<string[]>
  errno(statement: string): Promise<string>
  /** Copies the merged view out with `cp -a` and returns its snapshot (with modes). */
  merged(): Promise<string[]>
  /** Unmounts with `layerfs umount` and expects success. */
  unmount(): Promise<void>
  /** Stop checking the ro branches (for tests that change a branch on purpose). */
  forgetRo(): void
}

/** The ro branches of a spec (see MountRequest.ro). */
function roOf(spec: string, trees: Record<string, Tree>): string[] {
  const parts = spec.split(':')
  const hasModes = parts.some((p) => p.includes('='))
  return parts
    .map((p, i) => ({ name: p.split('=')[0]!, ro: hasModes ? p.endsWith('=ro') : i > 0 }))
    .filter((b) => b.ro && b.name in trees)
    .map((b) => b.name)
}

const PY_ERRNOS = `
import os, errno, sys, json, stat
out = []
for s in json.loads(sys.argv[1]):
    try:
        exec(s, {'os': os, 'stat': stat})
        out.append('OK')
    except OSError as e:
        out.append(errno.errorcode.get(e.errno, str(e.errno)))
print(json.dumps(out))
`

/**
 * Registers an afterEach that unmounts (even when the test failed), checks the ro branches and
 * removes the fixture; returns a function that builds a fixture and mounts it with the CLI.
 */
export function useMount(): (trees: Record<string, Tree>, req?: MountRequest) => Promise<Mounted> {
  let live: { fx: Fixture; hashes: Map<string, string> | undefined } | undefined
  afterEach(async () => {
    if (!live) return
    const { fx, hashes } = live
    live = undefined
    try {
      await cleanupMount(fx.mnt)
      // union-contract.md: a ro branch is never written, renamed, chmod'ed or touched.
      for (const [name, h] of hashes ?? []) expect(hashTree(fx.dir(name)), `ro branch ${name} changed`).toBe(h)
    } finally {
      fx.cleanup()
    }
  })
  return async (trees, req = {}) => {
    const fx = makeFixture(trees)
    const spec = req.spec ?? 'A=rw:B=ro'
    live = { fx, hashes: undefined }
    req.prepare?.(fx)
    const hashes = new Map((req.ro ?? roOf(spec, trees)).map((n) => [n, hashTree(fx.dir(n))]))
    live = { fx, hashes }
    await mountCli([...(req.args ?? []), ...(req.noSpec ? [] : [spec]), './mnt'], { cwd: fx.root })
    return mountedView(fx, () => { if (live) live.hashes = undefined })
  }
}

/** The test-side handle of a mounted fixture (see Mounted). */
export function mountedView(fx: Fixture, forgetRo: () => void = () => {}): Mounted {
  let copies = 0
  const m: Mounted = {
    fx, root: fx.root, mnt: fx.mnt,
    dir: (name) => fx.dir(name),
    sh: (script) => sh(script, { cwd: fx.root }),
    async ok(script) {
      const r = await sh(script, { cwd: fx.root })
      if (r.code !== 0) throw new Error(`'${script}' failed (${r.code}): ${r.stderr}`)
      return r.stdout
    },
    async errnos(statements) {
      const r = await run('python3', ['-c', PY_ERRNOS, JSON.stringify(statements)], { cwd: fx.root })
      if (r.code !== 0) throw new Error(`python3 failed (${r.code}): ${r.stderr}`)
      return JSON.parse(r.stdout) as string[]
    },
    async errno(statement) {
      return (await m.errnos([statement]))[0]!
    },
    async merged() {
      const out = path.join(fx.root, `merged-${++copies}`)
      await m.ok(`cp -a mnt/. ${out}/`)
      return snapshot(out, { withMode: true })
    },
    async unmount() {
      const r = await cli(['umount', './mnt'], { cwd: fx.root })
      if (r.code !== 0) throw new Error(`layerfs umount failed (${r.code}): ${r.stderr}`)
      expect(isMounted(fx.mnt)).toBe(false)
    },
    forgetRo,
  }
  return m
}

/**
 * Applies branch directories as OCI layers (layer.md), bottom first, onto a fresh host dir and
 * returns it: in each directory an opaque marker empties what lies below, '.wh.N' deletes N
 * from below, then the layer's own entries are added. The reference a valid rw branch must meet.
 */
export function ociApply(dst: string, layersTopFirst: readonly string[]): string {
  fs.mkdirSync(dst, { recursive: true })
  for (const layer of [...layersTopFirst].reverse()) applyDir(layer, dst, '')
  return dst
}

function applyDir(layer: string, dst: string, rel: string): void {
  const src = path.join(layer, rel)
  const to = path.join(dst, rel)
  const names = fs.readdirSync(src)
  if (names.includes('.wh..wh..opq')) {
    for (const n of fs.readdirSync(to)) fs.rmSync(path.join(to, n), { recursive: true, force: true })
  }
  for (const n of names) {
    if (n.startsWith('.wh.') && !n.startsWith('.wh..wh.')) fs.rmSync(path.join(to, n.slice(4)), { recursive: true, force: true })
  }
  for (const n of names) {
    if (n.startsWith('.wh.')) continue
    const s = path.join(src, n)
    const d = path.join(to, n)
    const st = fs.lstatSync(s)
    const have = fs.lstatSync(d, { throwIfNoEntry: false })
    if (st.isDirectory()) {
      if (have && !have.isDirectory()) fs.rmSync(d, { force: true })
      if (!have?.isDirectory()) fs.mkdirSync(d)
      applyDir(layer, dst, path.join(rel, n))
      fs.chmodSync(d, st.mode & 0o7777)
      continue
    }
    if (have) fs.rmSync(d, { recursive: true, force: true })
    if (st.isSymbolicLink()) fs.symlinkSync(fs.readlinkSync(s), d)
    else if (st.isFile()) {
      fs.copyFileSync(s, d)
      fs.chmodSync(d, st.mode & 0o7777)
    }
  }
}
