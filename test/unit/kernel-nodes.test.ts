// NodeTable (lib/fuse/kernel/nodes.ts): the native transport's node ids ↔ union paths.
import { describe, expect, it } from 'vitest'
import { NodeTable, ROOT_ID, type Node } from '../../lib/fuse/kernel/nodes.js'

const ROOT_INO = 1

function table(): NodeTable {
  return new NodeTable(ROOT_INO)
}

function names(n: Node): string[] {
  return n.links.map((l) => `${l.parent.id}/${l.name}`)
}

describe('NodeTable', () => {
  it('starts with the root: id 1, path /, one lookup that forget cannot drop', () => {
    const t = table()
    expect(ROOT_ID).toBe(1)
    expect(t.root.id).toBe(1)
    expect(t.root.ino).toBe(ROOT_INO)
    expect(t.root.isDir).toBe(true)
    expect(t.get(1)).toBe(t.root)
    expect(t.path(t.root)).toBe('/')
    expect(t.root.nlookup).toBe(1)
    expect(t.size).toBe(1)
    t.forget(1, 5)
    expect(t.get(1)).toBe(t.root)
    expect(t.size).toBe(1)
    expect(t.get(2)).toBeUndefined()
  })

  it('keeps a node\'s open handles: none, one, several, in any order of release', () => {
    const t = table()
    const f = t.found(t.root, 'f', 100, false)
    expect(f.anyHandle()).toBeUndefined()
    f.addHandle(5)
    expect(f.anyHandle()).toBe(5)
    f.dropHandle(6) // not one of its handles: nothing changes
    expect(f.anyHandle()).toBe(5)
    f.addHandle(7)
    f.addHandle(9)
    f.dropHandle(5)
    expect([7, 9]).toContain(f.anyHandle())
    f.dropHandle(9)
    expect(f.anyHandle()).toBe(7)
    f.dropHandle(7)
    expect(f.anyHandle()).toBeUndefined()
    f.addHandle(11)
    expect(f.anyHandle()).toBe(11)
  })
  it('found() with the caller\'s path uses it for the first name only', () => {
    const t = table()
    const d = t.found(t.root, 'd', 200, true, '/d')
    const a = t.found(d, 'a', 100, false, '/d/a')
    expect(t.path(a)).toBe('/d/a')
    expect(t.found(t.root, 'b', 100, false, '/b')).toBe(a) // a second name (hard link): still /d/a
    expect(t.path(a)).toBe('/d/a')
    t.removed(d, 'a')
    expect(t.path(a)).toBe('/b')
    // A path made before its parent was renamed is not taken: the node's path follows the rename.
    const stale = t.childPath(d, 'c')
    const e = t.found(t.root, 'e', 300, true, '/e')
    t.renamed(t.root, 'd', e, 'd2')
    const c = t.found(d, 'c', 400, false, stale)
    expect(stale).toBe('/d/c')
    expect(t.path(c)).toBe('/e/d2/c')
  })
  it('found() gives new names new ids, counts lookups and resolves paths', () => {
    const t = table()
    const a = t.found(t.root, 'a', 100, false)
    expect(a.id).toBe(2)
    expect(a.ino).toBe(100)
    expect(a.isDir).toBe(false)
    expect(a.nlookup).toBe(1)
    expect(t.found(t.root, 'a', 100, false)).toBe(a)
    expect(a.nlookup).toBe(2)
    const d = t.found(t.root, 'd', 200, true)
    expect(d.id).toBe(3)
    const f = t.found(d, 'f', 300, false)
    expect(f.id).toBe(4)
    expect(t.path(a)).toBe('/a')
    expect(t.path(f)).toBe('/d/f')
    expect(t.childPath(d, 'x')).toBe('/d/x')
    expect(t.childPath(t.root, 'x')).toBe('/x')
    expect(t.child(t.root, 'a')).toBe(a)
    expect(t.child(d, 'f')).toBe(f)
    expect(t.child(t.root, 'f')).toBeUndefined()
    expect(t.get(4)).toBe(f)
    expect(t.size).toBe(4)
    expect([...t.nodes()].map((n) => n.id).sort()).toEqual([1, 2, 3, 4])
  })

  it('two names with one inode number share a node (a hard link); removing the first keeps the path valid', () => {
    const t = table()
    const d = t.found(t.root, 'd', 200, true)
    const a = t.found(t.root, 'a', 100, false)
    const b = t.found(d, 'b', 100, false)
    expect(b).toBe(a)
    expect(a.nlookup).toBe(2)
    expect(names(a)).toEqual(['1/a', `${d.id}/b`])
    expect(t.path(a)).toBe('/a')
    expect(t.size).toBe(3)
    t.removed(t.root, 'a')
    expect(t.child(t.root, 'a')).toBeUndefined()
    expect(t.child(d, 'b')).toBe(a)
    expect(names(a)).toEqual([`${d.id}/b`])
    expect(t.path(a)).toBe('/d/b') // not the cached '/a'
    // The remaining name still carries the inode number: a third name joins the same node.
    expect(t.found(t.root, 'c', 100, false)).toBe(a)
    expect(a.nlookup).toBe(3)
  })

  it('renaming a directory moves its descendants (cached paths are dropped)', () => {
    const t = table()
    const d = t.found(t.root, 'd', 200, true)
    const e = t.found(d, 'e', 201, true)
    const f = t.found(e, 'f', 300, false)
    expect(t.path(f)).toBe('/d/e/f') // cached now
    t.renamed(t.root, 'd', t.root, 'x')
    expect(t.path(d)).toBe('/x')
    expect(t.path(e)).toBe('/x/e')
    expect(t.path(f)).toBe('/x/e/f')
    expect(t.child(t.root, 'd')).toBeUndefined()
    expect(t.child(t.root, 'x')).toBe(d)
    // Into another directory, under another name.
    const g = t.found(t.root, 'g', 400, true)
    t.renamed(d, 'e', g, 'h')
    expect(t.path(f)).toBe('/g/h/f')
    expect(t.child(g, 'h')).toBe(e)
    expect(t.child(d, 'e')).toBeUndefined()
    expect(names(e)).toEqual([`${g.id}/h`])
    // Nodes keep their ids and lookups across renames.
    expect([d.id, e.id, f.id]).toEqual([2, 3, 4])
    expect(f.nlookup).toBe(1)
  })

  it('a rename over an existing name drops the name it replaces', () => {
    const t = table()
    const a = t.found(t.root, 'a', 100, false)
    const b = t.found(t.root, 'b', 101, false)
    t.renamed(t.root, 'a', t.root, 'b')
    expect(t.child(t.root, 'b')).toBe(a)
    expect(t.child(t.root, 'a')).toBeUndefined()
    expect(b.links).toEqual([])
    expect(t.path(b)).toBe('/b') // its last name
    expect(t.path(a)).toBe('/b')
    expect(t.get(b.id)).toBe(b) // until the kernel forgets it
    // renamed() onto itself changes nothing.
    t.renamed(t.root, 'b', t.root, 'b')
    expect(t.child(t.root, 'b')).toBe(a)
  })

  it('removed() of the last name keeps lastPath; the node lives until forgotten', () => {
    const t = table()
    const d = t.found(t.root, 'd', 200, true)
    const f = t.found(d, 'f', 300, false)
    t.removed(d, 'f')
    expect(f.links).toEqual([])
    expect(f.lastPath).toBe('/d/f')
    expect(t.path(f)).toBe('/d/f')
    expect(t.child(d, 'f')).toBeUndefined()
    expect(t.get(f.id)).toBe(f)
    // Removing a name twice, or one never known, is harmless.
    t.removed(d, 'f')
    t.removed(d, 'nope')
    expect(f.lastPath).toBe('/d/f')
    expect(t.path(d)).toBe('/d')
  })

  it('lastPath is the path of the last name removed, not of the first name', () => {
    const t = table()
    const a = t.found(t.root, 'a', 100, false)
    t.found(t.root, 'b', 100, false)
    t.removed(t.root, 'a')
    expect(a.lastPath).toBe('/') // still named: not set yet
    t.removed(t.root, 'b')
    expect(a.lastPath).toBe('/b')
    expect(t.path(a)).toBe('/b')
  })

  it('a new file reusing a removed node’s inode number gets a new node id', () => {
    const t = table()
    const old = t.found(t.root, 'a', 100, false)
    t.removed(t.root, 'a')
    const reused = t.found(t.root, 'b', 100, false)
    expect(reused).not.toBe(old)
    expect(reused.id).toBe(old.id + 1)
    expect(reused.nlookup).toBe(1)
    expect(t.path(reused)).toBe('/b')
    // Even under the old name.
    t.removed(t.root, 'b')
    const again = t.found(t.root, 'a', 100, false)
    expect(again.id).toBe(reused.id + 1)
    // The old nodes still answer by their last names (open handles) until forgotten.
    expect(t.get(old.id)).toBe(old)
    expect(t.path(old)).toBe('/a')
    expect(t.path(reused)).toBe('/b')
  })

  it('forget() to 0 drops the node and its names; ids are never reused', () => {
    const t = table()
    const a = t.found(t.root, 'a', 100, false)
    t.found(t.root, 'a', 100, false)
    t.found(t.root, 'b', 100, false)
    expect(a.nlookup).toBe(3)
    t.forget(a.id, 2)
    expect(t.get(a.id)).toBe(a)
    expect(t.child(t.root, 'a')).toBe(a)
    t.forget(a.id, 1)
    expect(t.get(a.id)).toBeUndefined()
    expect(t.child(t.root, 'a')).toBeUndefined()
    expect(t.child(t.root, 'b')).toBeUndefined()
    expect(t.size).toBe(1)
    // The same name and number now make a new node with a new id.
    const again = t.found(t.root, 'a', 100, false)
    expect(again).not.toBe(a)
    expect(again.id).toBe(a.id + 1)
    expect(again.nlookup).toBe(1)
    // Forgetting an unknown id is harmless.
    t.forget(999, 1)
    expect(t.size).toBe(2)
  })

  it('forget() of a removed node does not disturb a new node with its inode number', () => {
    const t = table()
    const old = t.found(t.root, 'a', 100, false)
    t.removed(t.root, 'a')
    const fresh = t.found(t.root, 'a', 100, false)
    t.forget(old.id, 1)
    expect(t.get(old.id)).toBeUndefined()
    expect(t.child(t.root, 'a')).toBe(fresh)
    expect(t.found(t.root, 'c', 100, false)).toBe(fresh) // still found by its number
  })

  it('found() with another inode number for a known name replaces the link', () => {
    const t = table()
    const a = t.found(t.root, 'a', 100, false)
    const b = t.found(t.root, 'a', 101, false)
    expect(b).not.toBe(a)
    expect(b.id).toBe(a.id + 1)
    expect(t.child(t.root, 'a')).toBe(b)
    expect(a.links).toEqual([])
    expect(a.lastPath).toBe('/a')
    expect(a.nlookup).toBe(1) // the old node is not counted again
    expect(b.nlookup).toBe(1)
    // The replaced node's number no longer finds it.
    expect(t.found(t.root, 'z', 100, false)).not.toBe(a)
  })

  it('found() of an existing number as the other kind (file ↔ directory) makes a new node', () => {
    const t = table()
    const f = t.found(t.root, 'a', 100, false)
    const d = t.found(t.root, 'a', 100, true)
    expect(d).not.toBe(f)
    expect(d.isDir).toBe(true)
    expect(t.child(t.root, 'a')).toBe(d)
    expect(f.links).toEqual([])
  })

  it('a directory found under a new name drops its old name (renamed underneath)', () => {
    const t = table()
    const d = t.found(t.root, 'd', 200, true)
    const f = t.found(d, 'f', 300, false)
    expect(t.path(f)).toBe('/d/f')
    const other = t.found(t.root, 'o', 500, true)
    const moved = t.found(other, 'd2', 200, true)
    expect(moved).toBe(d)
    expect(d.nlookup).toBe(2)
    expect(names(d)).toEqual([`${other.id}/d2`])
    expect(t.child(t.root, 'd')).toBeUndefined()
    expect(t.child(other, 'd2')).toBe(d)
    expect(t.path(d)).toBe('/o/d2')
    expect(t.path(f)).toBe('/o/d2/f')
    // A file's second name is a hard link instead: both kept.
    const g = t.found(t.root, 'g', 600, false)
    t.found(other, 'g2', 600, false)
    expect(g.links).toHaveLength(2)
  })
  it('retires a file node: its names lead to a new node, it keeps its path and lookups until forgotten', () => {
    const t = table()
    const d = t.found(t.root, 'd', 50, true)
    const f = t.found(d, 'f', 100, false)
    t.found(t.root, 'hard', 100, false) // a second name of the same inode
    expect(t.ofIno(100)).toBe(f)
    f.addHandle(3)
    t.retire(f)
    expect(t.child(d, 'f')).toBeUndefined()
    expect(t.child(t.root, 'hard')).toBeUndefined()
    expect(t.ofIno(100)).toBeUndefined()
    expect(t.path(f)).toBe('/d/f') // its open files still answer by a name
    expect(t.get(f.id)).toBe(f)
    expect(f.anyHandle()).toBe(3)
    const g = t.found(d, 'f', 100, false)
    expect(g).not.toBe(f)
    expect(g.id).toBeGreaterThan(f.id)
    expect(t.found(t.root, 'hard', 100, false)).toBe(g)
    expect(t.path(g)).toBe('/d/f')
    t.forget(f.id, f.nlookup)
    expect(t.get(f.id)).toBeUndefined()
    expect(t.child(d, 'f')).toBe(g) // forgetting the old node leaves the new one's names alone
    t.retire(d) // a directory is never retired
    expect(t.child(t.root, 'd')).toBe(d)
  })
})
