// Guards for the rules that deadlock or blur the design if broken (style guide §4.4, §4.7).
import * as fs from 'node:fs'
import * as path from 'node:path'
import { describe, expect, it } from 'vitest'

const ROOT = path.resolve(__dirname, '../..')
function sources(dir: string): string[] {
  const out: string[] = []
  for (const e of fs.readdirSync(path.join(ROOT, dir), { withFileTypes: true })) {
    const rel = path.join(dir, e.name)
    if (e.isDirectory()) out.push(...sources(rel))
    else if (rel.endsWith('.ts')) out.push(rel)
  }
  return out
}
const lib = [...sources('lib'), ...sources('bin')]
const read = (f: string): string => fs.readFileSync(path.join(ROOT, f), 'utf8')

describe('module boundaries', () => {
  it('only lib/fuse/binding.ts loads fuse-native', () => {
    const users = lib.filter((f) => /(from\s+|require\(|import\()['"]fuse-native['"]/.test(read(f)))
    expect(users).toEqual(['lib/fuse/binding.ts'])
  })
  it('only lib/native.ts loads the native addon', () => {
    const users = lib.filter((f) => /layerfs_fuse\.node/.test(read(f)))
    expect(users).toEqual(['lib/native.ts'])
  })
  it('only lib/fs.ts imports node:fs and the xattr binding in the core', () => {
    const core = lib.filter((f) => /^lib\/(branches|whiteout|copyup)\/|^lib\/layerfs\.ts$/.test(f))
    const users = core.filter((f) => /from ['"](node:)?fs['"]|@napi-rs\/xattr/.test(read(f)))
    expect(users).toEqual([])
  })
  it('the core never imports FUSE, the CLI or the daemon', () => {
    const core = lib.filter((f) => /^lib\/(branches|whiteout|copyup)\/|^lib\/(layerfs|union-view)\.ts$/.test(f))
    const bad = core.filter((f) => /from ['"]\.\.?\/(\.\.\/)?(fuse|cli|daemon|launcher)\//.test(read(f)))
    expect(bad).toEqual([])
  })
})

describe('never block the serving process on the mount', () => {
  it('no synchronous child processes in lib/ or bin/', () => {
    const bad = lib.filter((f) => /\b(execSync|spawnSync|execFileSync)\b/.test(read(f)))
    expect(bad).toEqual([])
  })
  it('no console.* in lib/ (logging goes through lib/log.ts to stderr)', () => {
    const bad = sources('lib').filter((f) => /\bconsole\./.test(read(f)))
    expect(bad).toEqual([])
  })
})
