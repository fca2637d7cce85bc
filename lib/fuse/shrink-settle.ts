// Short READs racing a shrink of their file wait until the kernel knows the new size.
//
// When a file shrinks — an O_TRUNC open (ATOMIC_O_TRUNC) or a SETATTR of its size — the daemon
// shrinks the branch file first; the kernel sets the new size only after the reply, in the
// shrinking task's own context, once the scheduler runs it (fs/fuse/file.c fuse_open →
// fuse_truncate_update_attr; dir.c fuse_do_setattr). A reader that still holds the old size and
// reads a page in between gets a short READ, which the kernel zero-fills. The kernel means to
// shrink the size to the short read's end (fuse_short_read), but does not when any attribute
// update of the inode came between the READ's sending and its reply (the attr_version check),
// nor during a SETATTR truncation (FUSE_I_SIZE_UNSTABLE). The reader then copies zeros up to
// the old size (docs/transport.md "A read racing a truncation"). A write answered just before
// the shrink does the same from the other side: its task raises the kernel's size to the end
// of its write when it runs again (fuse_write_update_attr), possibly after the shrink was set.
//
// So after a shrink, the node has a *window* until the shrinking task is seen again: its next
// request (any) means it has returned from the open or truncate, so the kernel has the new
// size. (The native session knows the task: fuse_in_header.pid. libfuse 2 does not tell the
// fuse-native adapter; there the shrinking handle's next operation is the sign.) A READ of the
// node that comes back short inside the window is held, and answered when the window closes;
// the reader then compares against the new size and sees the end of the file. The window also
// closes after SETTLE_MS: the task may be blocked until the held READ is answered (the
// truncation's page-cache drop waits on the page that READ fills — after the size is set), or
// may simply not send anything more. When another task wrote the file within SETTLE_MS before
// the shrink, only the time closes the window (that writer's size update may still be due).
// Outside a race no READ waits: a writer that truncates, writes and closes has been seen again
// before anyone reads what it wrote. Windows are keyed by node id (or by union path).

/** The longest a short READ waits for a shrink of its file to settle (see above). */
export const SETTLE_MS = 20

/** The longest a READ stays held across shrinks that follow one another (no starving reader). */
export const MAX_HOLD_MS = 3 * SETTLE_MS

/** A window `by` nobody: it closes after SETTLE_MS only. */
const NOBODY = -2

interface Window {
  /** Who shrank the file: a task (fuse_in_header.pid) or a handle; NOBODY. */
  readonly by: number
  readonly at: number
  /** Replies held until the window closes, the first since `heldSince`. */
  held: (() => void)[]
  heldSince: number
  timer: NodeJS.Timeout | undefined
}

export class ShrinkSettle<K = number> {
  /** Open windows by node id (or path). */
  readonly #windows = new Map<K, Window>()
  /**
   * The last write of each node lately, in two generations (each SETTLE_MS long, the older
   * dropped whole: no sweep on the write path). `by` is NOBODY after writes by several.
   */
  #writes = new Map<K, { by: number; at: number }>()
  #olderWrites = new Map<K, { by: number; at: number }>()
  #writesSince = 0

  /** How many windows are open (the request loop calls `seen` only when some are). */
  get size(): number {
    return this.#windows.size
  }

  /** Task or handle `by` wrote to node `nodeid`'s file (its reply is about to go). */
  wrote(nodeid: K, by: number): void {
    const now = performance.now()
    if (now - this.#writesSince >= SETTLE_MS) {
      this.#olderWrites = this.#writes
      this.#writes = new Map()
      this.#writesSince = now
    }
    const w = this.#writes.get(nodeid)
    if (w === undefined) this.#writes.set(nodeid, { by, at: now })
    else {
      if (w.by !== by) w.by = NOBODY
      w.at = now
    }
  }

  /** Task or handle `by` shrank node `nodeid`'s file (its reply is about to go). */
  shrunk(nodeid: K, by: number): void {
    const now = performance.now()
    if (this.#windows.size >= 64) this.#sweep(now)
    const othersWrote = this.#otherWrote(this.#writes, nodeid, by, now) || this.#otherWrote(this.#olderWrites, nodeid, by, now)
    // Reads held by an earlier shrink wait for this one too: the kernel's size is still the old
    // one until this task has set it.
    const old = this.#windows.get(nodeid)
    const w: Window = { by: othersWrote ? NOBODY : by, at: now, held: old?.held ?? [], heldSince: old?.heldSince ?? 0, timer: undefined }
    if (old?.timer !== undefined) clearTimeout(old.timer)
    this.#windows.set(nodeid, w)
    if (w.held.length > 0) {
      const wait = Math.max(0, Math.min(SETTLE_MS, w.heldSince + MAX_HOLD_MS - now))
      w.timer = setTimeout(() => this.#close(nodeid, w), wait)
    }
  }

  /** A request from task (or through handle) `by` arrived: the windows it opened close. */
  seen(by: number): void {
    const now = performance.now()
    for (const [id, w] of this.#windows) if (w.by === by || now - w.at >= SETTLE_MS) this.#close(id, w)
  }

  /**
   * A READ of node `nodeid` came back short: holds `answer` if a shrink of the node has not
   * settled yet (true), else leaves the answer to the caller (false).
   */
  hold(nodeid: K, answer: () => void): boolean {
    const w = this.#windows.get(nodeid)
    if (w === undefined) return false
    const left = w.at + SETTLE_MS - performance.now()
    if (left <= 0) {
      this.#close(nodeid, w)
      return false
    }
    if (w.held.length === 0) w.heldSince = performance.now()
    w.held.push(answer)
    w.timer ??= setTimeout(() => this.#close(nodeid, w), left)
    return true
  }

  #close(nodeid: K, w: Window): void {
    if (this.#windows.get(nodeid) === w) this.#windows.delete(nodeid)
    if (w.timer !== undefined) clearTimeout(w.timer)
    w.timer = undefined
    const held = w.held
    w.held = []
    for (const answer of held) answer()
  }

  #otherWrote(writes: Map<K, { by: number; at: number }>, nodeid: K, by: number, now: number): boolean {
    const w = writes.get(nodeid)
    return w !== undefined && w.by !== by && now - w.at < SETTLE_MS
  }

  /** Closes windows past SETTLE_MS (most never hold a READ and close when their task is seen). */
  #sweep(now: number): void {
    for (const [id, w] of this.#windows) if (now - w.at >= SETTLE_MS) this.#close(id, w)
  }
}
