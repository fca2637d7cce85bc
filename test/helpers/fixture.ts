// Declarative branch trees for tests (cf. tap's t.testdir): build them in a temp dir, read them
// back, hash them. Host paths only: never call these on a mount point from a process serving it.
import * as crypto from 'node:crypto'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'

/** A tree: a string is a file's content; an object a directory; helpers below for the rest. */
export type Tree = { [name: string]: string | Tree | Entry }
export type Entry =
  | { kind: 'symlink'; target: string }
  | { kind: 'file'; content: string; mode?: number; mtime?: number }
  | { kind: 'dir'; mode?: number; entries: Tree }

export const symlink = (target: string): Entry => ({ kind: 'symlink', target })
export const file = (content: string, mode?: number, mtime?: number): Entry => ({ kind: 'file', content, mode, mtime })

export function writeTree(dir: string, tree: Tree): void {
  fs.mkdirSync(dir, { recursive: true })
  for (const [name, v] of Object.entries(tree)) {
    const p = path.join(dir, name)
    if (typeof v === 'string') fs.writeFileSync(p, v)
    else if ('kind' in v && typeof v.kind === 'string' && (v.kind === 'symlink' || v.kind === 'file' || v.kind === 'dir')) {
      const e = v as Entry
      if (e.kind === 'symlink') fs.symlinkSync(e.target, p)
      else if (e.kind === 'file') {
        fs.writeFileSync(p, e.content)
        if (e.mode !== undefined) fs.chmodSync(p, e.mode)
        if (e.mtime !== undefined) fs.utimesSync(p, e.mtime, e.mtime)
      } else {
        writeTree(p, e.entries)
        if (e.mode !== undefined) fs.chmodSync(p, e.mode)
      }
    } else writeTree(p, v as Tree)
  }
}

/** A temp dir with named branch dirs built from trees, plus an empty mount point 'mnt'. */
export interface Fixture {
  readonly root: string
  /** Host path of a branch (or of any name under root). */
  dir(name: string): string
  readonly mnt: string
  cleanup(): void
}

export function makeFixture(branches: Record<string, Tree>, prefix = 'layerfs-test-'): Fixture {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), prefix))
  for (const [name, tree] of Object.entries(branches)) writeTree(path.join(root, name), tree)
  const mnt = path.join(root, 'mnt')
  fs.mkdirSync(mnt)
  return {
    root, mnt,
    dir: (name) => path.join(root, name),
    cleanup: () => fs.rmSync(root, { recursive: true, force: true }),
  }
}

/**
 * A listing of a host tree: 'path type[ content|target]' lines, sorted; mode with `withMode`.
 * Use it to assert the exact content of a branch on disk.
 */
export function snapshot(dir: string, opts: { withMode?: boolean; skip?: (rel: string) => boolean } = {}): string[] {
  const out: string[] = []
  const walk = (rel: string): void => {
    for (const name of fs.readdirSync(path.join(dir, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name
      if (opts.skip?.(r)) continue
      const p = path.join(dir, r)
      const st = fs.lstatSync(p)
      const mode = opts.withMode ? ` ${(st.mode & 0o7777).toString(8)}` : ''
      if (st.isDirectory()) { out.push(`${r}/${mode}`); walk(r) }
      else if (st.isSymbolicLink()) out.push(`${r} -> ${fs.readlinkSync(p)}${mode}`)
      else if (st.isFile()) out.push(`${r} = ${JSON.stringify(fs.readFileSync(p, 'utf8').slice(0, 200))}${mode}`)
      else out.push(`${r} (special)${mode}`)
    }
  }
  walk('')
  return out
}

/** The rw branch on disk, without the work area (it is internal and emptied on every mount). */
export function upperSnapshot(dir: string, opts: { withMode?: boolean } = {}): string[] {
  return snapshot(dir, { ...opts, skip: (r) => r.startsWith('.wh..wh.layerfs.work') })
}

/** A sha256 over a whole host tree (names, types, modes, owners, mtimes, contents, targets). */
export function hashTree(dir: string): string {
  const h = crypto.createHash('sha256')
  const walk = (rel: string): void => {
    for (const name of fs.readdirSync(path.join(dir, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name
      const p = path.join(dir, r)
      const st = fs.lstatSync(p)
      h.update(`${r}\0${st.mode}\0${st.uid}\0${st.gid}\0${st.mtimeMs}\0`)
      if (st.isDirectory()) walk(r)
      else if (st.isSymbolicLink()) h.update(fs.readlinkSync(p))
      else if (st.isFile()) h.update(fs.readFileSync(p))
    }
  }
  walk('')
  return h.digest('hex')
}
