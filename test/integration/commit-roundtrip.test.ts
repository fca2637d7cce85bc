// The rw branch is an OCI layer (union-contract.md): change files through a real mount with
// ordinary programs, unmount, commit; applying the layer tar over the lowers with GNU tar (plus
// whiteout handling written here) must reproduce the merged view captured before unmounting.
import * as crypto from 'node:crypto'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { file, hashTree, makeFixture, symlink, type Fixture } from '../helpers/fixture.js'
import { cleanupMount, cli, fuseUnavailable, mountCli, run, sh } from '../helpers/mount.js'

const skip = fuseUnavailable()
const T0 = 1_500_000_000

/**
 * A listing of a tree by child programs (safe on a mount): path, type, mode, owner, mtime in
 * whole seconds, symlink target, sha256 of file contents. The root itself is left out (a layer
 * does not carry it).
 */
async function capture(dir: string): Promise<string[]> {
  const meta = await sh(`cd '${dir}' && find . -mindepth 1 -printf '%P|%y|%m|%U|%G|%T@|%l\\n'`)
  expect(meta.code, meta.stderr).toBe(0)
  const sums = await sh(`cd '${dir}' && find . -type f -exec sha256sum {} +`)
  expect(sums.code, sums.stderr).toBe(0)
  const sumOf = new Map(sums.stdout.trim().split('\n').filter(Boolean).map((l) => [l.slice(66).replace(/^\.\//, ''), l.slice(0, 64)]))
  return meta.stdout.trim().split('\n').map((l) => {
    const [p, y, m, u, g, t, target] = l.split('|')
    return `${p} ${y} ${m} ${u}:${g} ${Math.floor(Number(t))} ${y === 'l' ? `-> ${target}` : ''}${y === 'f' ? sumOf.get(p!) : ''}`
  }).sort()
}

/**
 * Applies a layer tar over `dir` the way OCI layer.md says: an opaque marker empties its dir,
 * `.wh.N` removes N, an entry replaces a non-matching one (a dir stays a dir and merges); then
 * GNU tar extracts everything else with owners, modes, times and xattrs.
 */
async function applyLayer(layer: string, dir: string): Promise<void> {
  const listing = await run('tar', ['-tf', layer])
  expect(listing.code, listing.stderr).toBe(0)
  for (const member of listing.stdout.split('\n').filter(Boolean)) {
    const rel = member.replace(/^\.\//, '').replace(/\/$/, '')
    const base = path.posix.basename(rel)
    const parent = path.join(dir, path.posix.dirname(rel))
    if (base === '.wh..wh..opq') {
      for (const n of fs.readdirSync(parent)) fs.rmSync(path.join(parent, n), { recursive: true, force: true })
    } else if (base.startsWith('.wh.')) {
      fs.rmSync(path.join(parent, base.slice(4)), { recursive: true, force: true })
    } else {
      const st = fs.lstatSync(path.join(dir, rel), { throwIfNoEntry: false })
      const isDir = member.endsWith('/')
      if (st && (st.isDirectory() !== isDir)) fs.rmSync(path.join(dir, rel), { recursive: true, force: true })
    }
  }
  const x = await run('tar', ['--numeric-owner', '--same-owner', '-p', '--xattrs', '--xattrs-include=*', '--exclude=.wh.*', '-xf', layer, '-C', dir])
  expect(x.code, x.stderr).toBe(0)
}

describe.skipIf(skip)('commit round trip: mount, change, commit, apply', () => {
  let fx: Fixture
  beforeEach(() => {
    fx = makeFixture({
      L1: {
        etc: { config: file('base=1\n', 0o644, T0), obsolete: file('old\n', 0o644, T0), secret: file('s\n', 0o644, T0), 'rename-me': file('r\n', 0o644, T0) },
        var: { cache: { a: file('a\n', 0o644, T0), b: file('b\n', 0o644, T0) } },
        usr: { share: { doc: { readme: file('doc\n', 0o644, T0) } }, bin: { tool: file('#!/bin/sh\n', 0o755, T0) } },
        home: { user: { notes: file('notes\n', 0o644, T0) } },
      },
      L2: {
        etc: { config: file('base=2\n', 0o644, T0 + 10) },
        var: { cache: { c: file('c\n', 0o644, T0 + 10) } },
        lib: symlink('usr/lib'),
        usr: { lib: { 'libx.so': file('elf\n', 0o755, T0 + 10) } },
      },
      U: {},
    })
    fs.chownSync(fx.dir('L1/home/user'), 1000, 1000)
    for (const l of ['L1', 'L2']) {
      // Directory mtimes are part of the view: make them fixed, deepest first.
      const dirs: string[] = []
      const walk = (d: string): void => { dirs.push(d); for (const n of fs.readdirSync(d)) if (fs.lstatSync(path.join(d, n)).isDirectory()) walk(path.join(d, n)) }
      walk(fx.dir(l))
      for (const d of dirs.reverse()) fs.utimesSync(d, T0, T0)
    }
  })
  afterEach(async () => {
    await cleanupMount(fx.mnt)
    fx.cleanup()
  })

  it('reproduces the merged view from the lowers plus the committed layer', async () => {
    const lowerHashes = [hashTree(fx.dir('L1')), hashTree(fx.dir('L2'))]
    await mountCli(['--upper', fx.dir('U'), `${fx.dir('L2')}:${fx.dir('L1')}`, fx.mnt])
    const script = [
      'set -e',
      `cd '${fx.mnt}'`,
      'echo added > new-file.txt && chmod 640 new-file.txt',          // add
      'echo more >> etc/config',                                       // edit (copy-up)
      'rm etc/obsolete',                                               // delete
      'rm -rf var/cache && mkdir var/cache && echo fresh > var/cache/entry', // replace a dir
      'rm -rf usr/share/doc',                                          // delete a lower dir
      'mkdir -p opt/tool/bin && printf "#!/bin/sh\\n" > opt/tool/bin/run && chmod 755 opt/tool/bin/run',
      'ln -s ../etc/config opt/link-to-config',
      'chown 1000:1000 home/user/notes && touch -d @981173106 home/user/notes',
      'chmod 600 etc/secret',
      'mv etc/rename-me etc/renamed',
    ].join('\n')
    const r = await sh(script)
    expect(r.code, r.stderr).toBe(0)
    const merged = await capture(fx.mnt)
    expect(merged.some((l) => l.startsWith('var/cache/entry '))).toBe(true)
    expect(merged.some((l) => l.startsWith('var/cache/a ') || l.startsWith('etc/obsolete '))).toBe(false)
    expect(merged.find((l) => l.startsWith('home/user/notes '))).toMatch(/^home\/user\/notes f 644 1000:1000 981173106 [0-9a-f]{64}$/)
    expect(merged.find((l) => l.startsWith('etc/secret '))).toMatch(/^etc\/secret f 600 0:0 /)
    expect(merged.find((l) => l.startsWith('opt/link-to-config '))).toMatch(/ -> \.\.\/etc\/config$/)

    const um = await cli(['umount', fx.mnt])
    expect(um.code, um.stderr).toBe(0)

    const d = await cli(['diff', fx.dir('U'), '--lower', `${fx.dir('L2')}:${fx.dir('L1')}`])
    expect(d.code, d.stderr).toBe(0)
    for (const line of ['A /new-file.txt', 'C /etc/config', 'D /etc/obsolete', 'C /var/cache', 'D /var/cache/a', 'D /var/cache/c',
      'A /var/cache/entry', 'D /usr/share/doc', 'A /opt', 'C /home/user/notes', 'D /etc/rename-me', 'A /etc/renamed']) {
      expect(d.stdout.split('\n'), d.stdout).toContain(line)
    }

    const layer = path.join(fx.root, 'layer.tar')
    const c = await cli(['commit', fx.dir('U'), '-o', layer])
    expect(c.code, c.stderr).toBe(0)
    const diffId = 'sha256:' + crypto.createHash('sha256').update(fs.readFileSync(layer)).digest('hex')
    expect(c.stdout.trim()).toBe(diffId)
    const names = (await run('tar', ['-tf', layer])).stdout
    expect(names).not.toMatch(/layerfs\.work/)
    expect(names).toMatch(/^var\/cache\/\.wh\.\.wh\.\.opq$/m)

    // Apply over a copy of the lowers (bottom first) and compare with what the mount showed.
    const applied = path.join(fx.root, 'applied')
    for (const l of ['L1', 'L2']) expect((await run('cp', ['-a', `${fx.dir(l)}/.`, `${applied}/`])).code).toBe(0)
    await applyLayer(layer, applied)
    expect(await capture(applied)).toEqual(merged)

    // The lowers were never touched, and the same branch commits to the same bytes.
    expect([hashTree(fx.dir('L1')), hashTree(fx.dir('L2'))]).toEqual(lowerHashes)
    const again = await cli(['commit', fx.dir('U'), '-o', path.join(fx.root, 'again.tar')])
    expect(again.stdout.trim()).toBe(diffId)
  })
})
