// Metadata read-ahead for listings. When a merged directory is listed, the directories in it
// are likely listed next (find, du, tar, ls -R, an image scan: depth-first walks). Their branch
// directories are read and their entries lstat'ed on libuv workers (the addon's prefetchDirs,
// native/prefetch.c), and the results thrown away: the kernel's caches keep the dentries,
// inodes and directory blocks, and the daemon's own synchronous readdir and lstat of them then
// find them in memory instead of waiting for the disk one read at a time.
//
// Jobs wait on a stack, so the newest listing's first subdirectory goes first: the order of a
// depth-first walk. A few run at once (the thread pool also runs large copy-ups); the stack is
// bounded (the oldest jobs are dropped), and each branch directory is read ahead once per
// SEEN_MAX. LAYERFS_READ_AHEAD=0 turns it off (to measure what it saves).
import { nativePrefetchDirs } from '../fs.js'

/** Subdirectories read ahead per listing call. */
export const DIRS_PER_LISTING = 32
/** Entries lstat'ed per branch directory at most. */
export const ENTRIES_PER_DIR = 4096
/** Jobs on the thread pool at once (libuv has 4 threads unless UV_THREADPOOL_SIZE says more). */
export const MAX_IN_FLIGHT = 3
/** Jobs waiting at most; the oldest are dropped. */
export const MAX_WAITING = 256
/** Branch directories remembered as read ahead (then forgotten all at once). */
const SEEN_MAX = 50_000

export type PrefetchDirs = (dirs: string[], maxEntries: number) => Promise<number>

export class ReadAhead {
  readonly #prefetch: PrefetchDirs | undefined
  readonly #seen = new Set<string>()
  /** Waiting jobs (the branch directories of one merged directory each); the last goes first. */
  readonly #stack: string[][] = []
  #inFlight = 0
  /** Branch directories read ahead, entries lstat'ed, and jobs dropped unrun. */
  readonly stats = { dirs: 0, entries: 0, dropped: 0 }

  constructor(enabled = process.env.LAYERFS_READ_AHEAD !== '0', prefetch: PrefetchDirs | undefined = nativePrefetchDirs) {
    this.#prefetch = enabled ? prefetch : undefined
  }

  get enabled(): boolean {
    return this.#prefetch !== undefined
  }

  /**
   * Queues the merged directories `dirs` (each as its branch directories), in the order they
   * were listed: the first is read ahead first. Never throws, never waits.
   */
  add(dirs: readonly (readonly string[])[]): void {
    if (!this.#prefetch) return
    for (let i = dirs.length - 1; i >= 0; i--) {
      const fresh = dirs[i]!.filter((h) => !this.#seen.has(h))
      if (fresh.length === 0) continue
      if (this.#seen.size + fresh.length > SEEN_MAX) this.#seen.clear()
      for (const h of fresh) this.#seen.add(h)
      this.#stack.push(fresh)
    }
    if (this.#stack.length > MAX_WAITING) this.stats.dropped += this.#stack.splice(0, this.#stack.length - MAX_WAITING).length
    this.#pump()
  }

  /** Jobs waiting or running (tests wait for 0). */
  get pending(): number {
    return this.#stack.length + this.#inFlight
  }

  #pump(): void {
    while (this.#inFlight < MAX_IN_FLIGHT && this.#stack.length > 0) {
      const job = this.#stack.pop()!
      this.#inFlight++
      this.stats.dirs += job.length
      this.#prefetch!(job, ENTRIES_PER_DIR).then((n) => {
        this.stats.entries += n
        this.#done()
      }, () => this.#done())
    }
  }

  #done(): void {
    this.#inFlight--
    this.#pump()
  }
}
