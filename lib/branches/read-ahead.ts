// Metadata read-ahead for listings. When a merged directory is listed, the directories in it
// are likely listed next (find, du, tar, ls -R, an image scan: depth-first walks). Their branch
// directories are read and their entries lstat'ed on libuv workers (the addon's prefetchDirs,
// native/prefetch.c). The kernel's caches then keep the dentries, inodes and directory blocks,
// and the daemon's own readdir and lstat of them find them in memory instead of waiting for the
// disk one read at a time. What was read of a read-only branch directory is also kept, when its
// listing comes after the read (prefetched.ts): the JS thread then reads it neither again.
//
// Jobs wait on a stack, so the newest listing's first subdirectory goes first: the order of a
// depth-first walk. A few run at once (the thread pool also runs large copy-ups); the stack is
// bounded (the oldest jobs are dropped), and each branch directory is read ahead once per
// SEEN_MAX. LAYERFS_READ_AHEAD=0 turns it off, LAYERFS_READ_AHEAD_KEEP=0 only the keeping (to
// measure what each saves).
import { nativePrefetchDirs, type PrefetchDirs } from '../fs.js'
import { PrefetchBudget, PrefetchedDir } from './prefetched.js'

export type { PrefetchDirs }

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

/** A branch directory to read ahead; `adopt` takes what was read (when it was read whole). */
export interface ReadAheadDir {
  readonly host: string
  readonly adopt?: (read: PrefetchedDir) => boolean
}

export class ReadAhead {
  readonly #prefetch: PrefetchDirs | undefined
  readonly #seen = new Set<string>()
  /** Waiting jobs (the branch directories of one merged directory each); the last goes first. */
  readonly #stack: ReadAheadDir[][] = []
  #inFlight = 0
  readonly #budget = new PrefetchBudget()
  readonly #keeps = process.env.LAYERFS_READ_AHEAD_KEEP !== '0'
  /** Branch directories read ahead, entries lstat'ed, jobs dropped unrun, and directories kept for their listing. */
  readonly stats = { dirs: 0, entries: 0, dropped: 0, kept: 0 }

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
  add(dirs: readonly (readonly ReadAheadDir[])[]): void {
    if (!this.#prefetch) return
    for (let i = dirs.length - 1; i >= 0; i--) {
      const fresh = dirs[i]!.filter((d) => !this.#seen.has(d.host))
      if (fresh.length === 0) continue
      if (this.#seen.size + fresh.length > SEEN_MAX) this.#seen.clear()
      for (const d of fresh) this.#seen.add(d.host)
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
      const hosts = job.map((d) => d.host)
      const read = this.#keeps && job.some((d) => d.adopt)
        ? this.#prefetch!(hosts, ENTRIES_PER_DIR, job.map((d) => d.adopt !== undefined))
        : this.#prefetch!(hosts, ENTRIES_PER_DIR)
      read.then((r) => {
        if (typeof r === 'number') {
          this.stats.entries += r
        } else {
          this.stats.entries += r.statted
          this.#keep(job, r.dirs)
        }
        this.#done()
      }, () => this.#done())
    }
  }

  /** Hands each directory read whole to its `adopt`, within the budget. */
  #keep(job: readonly ReadAheadDir[], reads: readonly ([string, Float64Array] | null)[]): void {
    for (let i = 0; i < job.length; i++) {
      const r = reads[i]
      const adopt = job[i]!.adopt
      if (!r || !adopt) continue
      let dir: PrefetchedDir
      try {
        dir = new PrefetchedDir(r[0], r[1])
      } catch {
        continue // the addon's answer does not add up: read it on the JS thread as before
      }
      if (adopt(dir) && this.#budget.admit(dir)) this.stats.kept++
    }
  }

  #done(): void {
    this.#inFlight--
    this.#pump()
  }
}
