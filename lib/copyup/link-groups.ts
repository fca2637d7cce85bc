// Hard-link groups of a read-only branch: which names share one inode, so a copy-up of one name
// can take the whole group up as one rw inode (aufs keeps this with pseudo-links; overlayfs with
// index=on). Found once per branch, lazily, by find(1) in a child process, off the JS thread.
import { execFile } from 'node:child_process'
import type { Branch } from '../branches/branch.js'
import type { UnionPath } from '../paths.js'

export class LinkGroups {
  readonly #byBranch = new Map<Branch, Promise<Map<string, UnionPath[]>>>()

  /**
   * Every name of `branch` whose host identity is `key` ('dev:ino'), as union paths. Only files
   * with more than one link are indexed; a read-only branch never changes, so the index is kept
   * for the life of the mount.
   */
  async namesOf(branch: Branch, key: string): Promise<readonly UnionPath[]> {
    let index = this.#byBranch.get(branch)
    if (!index) {
      index = scan(branch.root)
      this.#byBranch.set(branch, index)
    }
    return (await index).get(key) ?? []
  }
}

function scan(root: string): Promise<Map<string, UnionPath[]>> {
  return new Promise((resolve, reject) => {
    // %D: device number, %i: inode, %P: path below root. NUL-terminated: names may hold newlines.
    execFile('find', [root, '-xdev', '-type', 'f', '-links', '+1', '-printf', '%D:%i %P\\0'],
      { maxBuffer: 1 << 30, encoding: 'utf8' }, (err, stdout) => {
        if (err) return reject(Object.assign(new Error(`cannot index hard links of ${root}: ${err.message}`), { code: 'EIO' }))
        const map = new Map<string, UnionPath[]>()
        for (const rec of stdout.split('\0')) {
          if (rec === '') continue
          const sp = rec.indexOf(' ')
          const key = rec.slice(0, sp)
          const list = map.get(key) ?? []
          list.push('/' + rec.slice(sp + 1))
          map.set(key, list)
        }
        resolve(map)
      })
  })
}
