// The kernel's view of the union as layerfs's own transport tracks it: node ids (FUSE's inode
// handles) ↔ union paths. Every name the kernel knows is a link (parent node, name); a file's
// names share one node — keyed by the merged inode number — so the kernel keeps one inode, one
// page cache and one set of attributes for all the names of a hard link. Node ids are never
// reused (generation 0 throughout); a node lives until the kernel forgets its last lookup.

export interface Link {
  readonly parent: Node
  readonly name: string
}

export class Node {
  nlookup = 0
  links: Link[] = []
  /** The path of the last name removed (a file unlinked while open still answers by it). */
  lastPath = '/'
  /** No name leads here any more, but its file was not removed (NodeTable.retire). */
  retired = false
  /**
   * Open handles on this node (an unlinked file is reached through them): one handle as a
   * number, more in a Set (a file is opened once at a time mostly; an empty Set per file once
   * opened cost ~100 bytes for the node's lifetime).
   */
  #handles: number | Set<number> | undefined
  /** The names the kernel knows in this directory (links of other nodes whose parent this is). */
  children: Map<string, Node> | undefined
  #path: string | undefined
  #pathEpoch = -1

  constructor(readonly id: number, public ino: number, public isDir: boolean) {}

  addHandle(fh: number): void {
    const h = this.#handles
    if (h === undefined) this.#handles = fh
    else if (typeof h === 'number') this.#handles = new Set([h, fh])
    else h.add(fh)
  }

  dropHandle(fh: number): void {
    const h = this.#handles
    if (h === fh) this.#handles = undefined
    else if (typeof h === 'object') {
      h.delete(fh)
      if (h.size === 0) this.#handles = undefined
    }
  }

  /** One of its open handles, if any. */
  anyHandle(): number | undefined {
    const h = this.#handles
    if (typeof h !== 'object') return h
    for (const fh of h) return fh
    return undefined
  }

  /** Cached path, valid for one naming epoch of the table. */
  cachedPath(epoch: number): string | undefined {
    return this.#pathEpoch === epoch ? this.#path : undefined
  }

  cachePath(epoch: number, path: string): void {
    this.#path = path
    this.#pathEpoch = epoch
  }

  forgetPath(): void {
    this.#pathEpoch = -1
  }
}

export const ROOT_ID = 1

// Links are found through the parent's own map of names: no key string built per lookup.
function linked(parent: Node, name: string): Node | undefined {
  return parent.children?.get(name)
}

function link(parent: Node, name: string, node: Node): void {
  (parent.children ??= new Map()).set(name, node)
}

function unlink(parent: Node, name: string): void {
  parent.children?.delete(name)
}

export class NodeTable {
  readonly root: Node
  readonly #byId = new Map<number, Node>()
  readonly #byIno = new Map<number, Node>()
  #nextId = ROOT_ID + 1
  /** Bumped whenever a directory's name moves or goes away: cached paths below it may be wrong. */
  #epoch = 0

  constructor(rootIno: number) {
    this.root = new Node(ROOT_ID, rootIno, true)
    this.root.nlookup = 1
    this.#byId.set(ROOT_ID, this.root)
  }

  get size(): number {
    return this.#byId.size
  }

  get(id: number): Node | undefined {
    return this.#byId.get(id)
  }

  nodes(): IterableIterator<Node> {
    return this.#byId.values()
  }

  /** The union path of `node` (its first name; the last one it had once unlinked). */
  path(node: Node): string {
    if (node === this.root) return '/'
    const cached = node.cachedPath(this.#epoch)
    if (cached !== undefined) return cached
    const link = node.links[0]
    if (!link) return node.lastPath
    const parent = this.path(link.parent)
    const p = parent === '/' ? '/' + link.name : parent + '/' + link.name
    node.cachePath(this.#epoch, p)
    return p
  }

  childPath(parent: Node, name: string): string {
    const p = this.path(parent)
    return p === '/' ? '/' + name : p + '/' + name
  }

  /** The node a name refers to, if the kernel was told. */
  child(parent: Node, name: string): Node | undefined {
    return linked(parent, name)
  }

  /**
   * The kernel is told that `parent/name` is the entry with inode number `ino` (a lookup, a
   * creation or a readdirplus entry): returns its node, with one more lookup counted. `path`:
   * the union path of `parent/name` when the caller has it.
   */
  found(parent: Node, name: string, ino: number, isDir: boolean, path?: string): Node {
    let node = this.#byIno.get(ino)
    if (node && node.isDir !== isDir) {
      this.#byIno.delete(ino) // the number now names something else (changed underneath)
      node = undefined
    }
    const previous = linked(parent, name)
    if (previous && previous !== node) this.#dropLink(previous, parent, name)
    if (!node) {
      node = new Node(this.#nextId++, ino, isDir)
      this.#byId.set(node.id, node)
      this.#byIno.set(ino, node)
    }
    if (previous !== node) {
      // A directory has one name: a new one replaces the old (it was renamed underneath).
      if (isDir && node.links.length > 0) for (const l of [...node.links]) this.#dropLink(node, l.parent, l.name)
      // A literal for the first name: a pushed-to empty array keeps room for 17 (~100 bytes a node).
      if (node.links.length === 0) node.links = [{ parent, name }]
      else node.links.push({ parent, name })
      link(parent, name, node)
      this.#byIno.set(ino, node)
    }
    const first = node.links[0]
    if (path !== undefined && first !== undefined && first.parent === parent && first.name === name && this.#isPathOf(parent, name, path)) {
      node.cachePath(this.#epoch, path) // the caller's string (the core's cache key too): one string, not a second
    }
    return this.#counted(node)
  }

  /**
   * Whether `path` is `parent/name` now: the caller made it from the parent's path, which a
   * rename may have changed since (a create is answered after its copy-up, other requests run).
   */
  #isPathOf(parent: Node, name: string, path: string): boolean {
    const pp = parent === this.root ? '' : parent.cachedPath(this.#epoch)
    return pp !== undefined && path.length === pp.length + 1 + name.length && path.startsWith(pp) && path.endsWith(name) && path[pp.length] === '/'
  }

  #counted(node: Node): Node {
    node.nlookup++
    return node
  }

  /** `parent/name` was removed (unlink, rmdir, or replaced by a rename). */
  removed(parent: Node, name: string): void {
    const node = linked(parent, name)
    if (node) this.#dropLink(node, parent, name)
  }

  /** `from/fromName` is now `to/toName` (whatever had that name is gone). */
  renamed(from: Node, fromName: string, to: Node, toName: string): void {
    if (from === to && fromName === toName) return
    this.removed(to, toName)
    const node = linked(from, fromName)
    if (!node) return
    unlink(from, fromName)
    const i = node.links.findIndex((l) => l.parent === from && l.name === fromName)
    node.links[i] = { parent: to, name: toName }
    link(to, toName, node)
    this.#renamed(node)
  }

  /** `node` has another (first) name: its cached path, and its descendants' if a directory, are stale. */
  #renamed(node: Node): void {
    if (node.isDir) this.#epoch++
    else node.forgetPath()
  }

  /** The node of inode number `ino`, if the kernel knows one. */
  ofIno(ino: number): Node | undefined {
    return this.#byIno.get(ino)
  }

  /**
   * `node` keeps serving the kernel's references to it (its open files, its lookups until
   * forgotten) but no name leads to it any more: the next lookup of any of its names makes a new
   * node (passthrough.ts: a writer cannot share an inode whose readers pass through).
   */
  retire(node: Node): void {
    if (node === this.root || node.isDir) return
    const p = this.path(node)
    for (const l of [...node.links]) this.#dropLink(node, l.parent, l.name)
    node.lastPath = p // its first name, as before
    node.retired = true
  }

  /** The kernel dropped `n` lookups of node `id`. */
  forget(id: number, n: number): void {
    const node = this.#byId.get(id)
    if (!node || node === this.root) return
    node.nlookup -= n
    if (node.nlookup > 0) return
    for (const l of node.links) unlink(l.parent, l.name)
    if (this.#byIno.get(node.ino) === node) this.#byIno.delete(node.ino)
    this.#byId.delete(id)
  }

  #dropLink(node: Node, parent: Node, name: string): void {
    const i = node.links.findIndex((l) => l.parent === parent && l.name === name)
    if (i < 0) return
    if (node.links.length === 1) node.lastPath = this.path(node)
    node.links.splice(i, 1)
    unlink(parent, name)
    // Its number may be given to a new file: a later lookup must not find this node by it.
    if (node.links.length === 0 && this.#byIno.get(node.ino) === node) this.#byIno.delete(node.ino)
    this.#renamed(node)
  }
}
