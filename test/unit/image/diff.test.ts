// diff(): docker-diff letters for a rw branch, with and without the lower stack.
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { diff, formatChanges } from '../../../lib/image/diff.js'
import { file, writeTree } from '../../helpers/fixture.js'

let root: string
beforeEach(() => { root = fs.mkdtempSync(path.join(os.tmpdir(), 'layerfs-diff-')) })
afterEach(() => { fs.rmSync(root, { recursive: true, force: true }) })

/** lower L, and an upper U as layerfs leaves it after: edit etc/passwd, add etc/new, rm etc/group, replace dir var with a new one, mkdir fresh. */
function scenario(): { upper: string; lower: string } {
  const lower = path.join(root, 'L')
  const upper = path.join(root, 'U')
  writeTree(lower, { etc: { passwd: 'root\n', group: 'g\n', os: 'x' }, var: { log: { old: 'o' }, cache: 'c' }, usr: { bin: { sh: 'sh' } } })
  writeTree(upper, {
    etc: { passwd: 'root\nme\n', new: 'n', '.wh.group': '' },
    var: { '.wh..wh..opq': '', fresh: 'f' },
    fresh: { inside: 'i' },
    '.wh..wh.layerfs.work': { tmp: 'x' },
  })
  // Copy-up keeps the parents' metadata: usr/ in the upper is only a parent (unchanged).
  fs.mkdirSync(path.join(upper, 'usr', 'bin'), { recursive: true })
  fs.writeFileSync(path.join(upper, 'usr', 'bin', 'sh'), 'new sh')
  for (const d of ['usr', 'etc']) {
    const st = fs.statSync(path.join(lower, d))
    fs.utimesSync(path.join(upper, d), st.atime, st.mtime)
  }
  const lb = fs.statSync(path.join(lower, 'usr', 'bin'))
  fs.utimesSync(path.join(upper, 'usr', 'bin'), lb.atime, lb.mtime)
  return { upper, lower }
}

describe('diff', () => {
  it('with the lowers: A, C and D as docker diff prints them', async () => {
    const { upper, lower } = scenario()
    const changes = await diff(upper, { lowers: [lower] })
    expect(formatChanges(changes)).toBe([
      'C /etc', 'D /etc/group', 'A /etc/new', 'C /etc/passwd',
      'A /fresh', 'A /fresh/inside',
      'C /usr', 'C /usr/bin', 'C /usr/bin/sh',
      'C /var', 'D /var/cache', 'A /var/fresh', 'D /var/log', '',
    ].join('\n'))
  })

  it('without lowers: present entries are A, markers make their dirs C', async () => {
    const { upper } = scenario()
    const changes = await diff(upper)
    expect(formatChanges(changes)).toBe([
      'C /etc', 'D /etc/group', 'A /etc/new', 'A /etc/passwd',
      'A /fresh', 'A /fresh/inside',
      'A /usr', 'A /usr/bin', 'A /usr/bin/sh',
      'C /var', 'A /var/fresh', '',
    ].join('\n'))
  })

  it('drops whiteouts of names no lower shows, and never reports the work area or init layer', async () => {
    const lower = path.join(root, 'L')
    const upper = path.join(root, 'U')
    const init = path.join(root, 'I')
    writeTree(lower, { etc: { hosts: 'h' } })
    writeTree(upper, { '.wh.never-existed': '', etc: { hosts: 'edited', hostname: file('box') } })
    writeTree(init, { etc: { hosts: '', hostname: '' } })
    const st = fs.statSync(path.join(lower, 'etc'))
    fs.utimesSync(path.join(upper, 'etc'), st.atime, st.mtime)
    expect(await diff(upper, { lowers: [lower], initLayer: init })).toEqual([])
    expect(await diff(upper, { lowers: [lower] })).toEqual([
      { kind: 'C', path: '/etc' }, { kind: 'A', path: '/etc/hostname' }, { kind: 'C', path: '/etc/hosts' },
    ])
  })

  it('reports a directory replaced by a file, and a file replaced by a dir, as C', async () => {
    const lower = path.join(root, 'L')
    const upper = path.join(root, 'U')
    writeTree(lower, { d: { x: 'x' }, f: 'f' })
    writeTree(upper, { d: 'now a file', f: { '.wh..wh..opq': '', y: 'y' } })
    expect(formatChanges(await diff(upper, { lowers: [lower] }))).toBe('C /d\nC /f\nA /f/y\n')
  })

  it('refuses a missing upper with one clear line', async () => {
    await expect(diff(path.join(root, 'nope'))).rejects.toThrow(/^upper '.*nope' does not exist$/)
  })
})
