// The work area: a '.wh..wh.'-prefixed dir at the rw branch root, on the same file system as the
// branch, so a copy built there is renamed into place atomically (cf. overlayfs workdir).
import { fs, mutate } from '../fs.js'
import { WORK_DIR } from '../whiteout/encoding.js'

export class WorkArea {
  readonly dir: string
  /** The owner of entries created in the work area (known after prepare()). */
  owner: { readonly uid: number; readonly gid: number } | undefined
  #counter = 0

  constructor(upperRoot: string) {
    this.dir = upperRoot + '/' + WORK_DIR
  }

  /**
   * Creates the work area, removing what a crashed daemon left there: half-built copies are
   * never visible in the merged view, and are dropped here at the next mount.
   */
  prepare(): void {
    mutate('clean work area', this.dir, () => {
      fs.rmSync(this.dir, { recursive: true, force: true })
      fs.mkdirSync(this.dir, { mode: 0o700 })
    })
    // Entries made here belong to the daemon's user, and to the dir's group if it is setgid.
    const st = fs.lstatSync(this.dir)
    this.owner = { uid: process.geteuid?.() ?? st.uid, gid: st.mode & 0o2000 ? st.gid : process.getegid?.() ?? st.gid }
  }

  /** Removes the work area (clean unmount): a kept rw branch then holds only the layer diff. */
  remove(): void {
    fs.rmSync(this.dir, { recursive: true, force: true })
  }

  /** A fresh, unused host path inside the work area. */
  tempPath(tag = 'tmp'): string {
    return `${this.dir}/${tag}-${process.pid}-${++this.#counter}`
  }

  /** Removes a temp entry off the JS thread (a discarded tree may be large); never throws. */
  discardLater(host: string): void {
    fs.promises.rm(host, { recursive: true, force: true }).catch(() => undefined)
  }

  /** Removes a temp entry (file or tree) after a failure or a rename-away; never throws. */
  discard(host: string): void {
    try {
      fs.rmSync(host, { recursive: true, force: true })
    } catch {
      // Left for the next prepare(): it is invisible in the merged view.
    }
  }
}
