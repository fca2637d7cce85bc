// The crash harness (issue 7 §1): clients run random operations through a mount (crash_client.py)
// while the daemon is SIGKILLed at a random moment; then the stale mount is cleaned with
// `layerfs umount`, the stack remounted, and the merged view checked against a model replayed
// from the clients' journals: every acknowledged operation present, an unacknowledged one either
// done or not (never half), no partial copy-up, the work area emptied, the ro branch untouched.
import { spawn } from 'node:child_process'
import * as crypto from 'node:crypto'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { fileURLToPath } from 'node:url'
import { hashTree } from './fixture.js'
import { CLI, cleanupMount, cli, isMounted, mountCli, run } from './mount.js'

const CLIENT = path.join(path.dirname(fileURLToPath(import.meta.url)), 'crash_client.py')
const WORK = '.wh..wh.layerfs.work'

export interface CrashOptions {
  readonly clients: number
  readonly kills: number
  /** Size of each client's large lower file (copied up at the start of every round). */
  readonly bigSize: number
  readonly smallPerClient: number
  /** The kill comes this many ms after the clients start (uniform in [min, max]). */
  readonly killDelayMs: readonly [number, number]
  readonly seed: number
  /** Test of the test: damages the rw branch (host path) after each kill; the check must catch it. */
  readonly sabotage?: (upper: string) => void
}

export interface CrashReport {
  kills: number
  /** Rounds in which the kill left a half-built entry in the work area (a copy-up in flight). */
  inFlightCopies: number
  /** Rounds in which a large copy-up was acknowledged, or pending, when the kill came. */
  bigAcked: number
  bigPending: number
  acked: number
  unacked: number
  staleMessages: number
}

type State =
  | { kind: 'file'; seed: string; size: number; header?: string; mode: number }
  | { kind: 'dir'; mode: number }
type Model = Map<string, State>

interface Op {
  op: 'tag' | 'chmod' | 'create' | 'rename' | 'unlink' | 'mkdir'
  path?: string; src?: string; dst?: string; tag?: string; mode?: number; seed?: string; size?: number
}
type Rec = Op & { t: 'I' | 'A' | 'E'; errno?: string; msg?: string }
type Obs = [string, 'f' | 'd' | 'o', number, number, string | null]

/** Same generator as the client's: sha256(seed) in hex, repeated. */
export function gen(seed: string, size: number): Buffer {
  if (size === 0) return Buffer.alloc(0)
  return Buffer.alloc(size, crypto.createHash('sha256').update(seed).digest('hex'))
}

const shaCache = new Map<string, string>()
function shaOf(seed: string, size: number, header = ''): string {
  const key = `${seed}|${size}|${header}`
  let h = shaCache.get(key)
  if (!h) {
    const b = gen(seed, size)
    b.write(header, 0)
    h = crypto.createHash('sha256').update(b).digest('hex')
    if (size < 1 << 20) shaCache.set(key, h)
  }
  return h
}

// Lists a tree (the mount or a host dir) with type, size, mode and a sha256 of every file; for
// names under SKIP only the first 16 bytes (large files are checked on the host instead).
const SCAN = `
import os, sys, json, hashlib, stat
root, skip = sys.argv[1], sys.argv[2]
out = []
def walk(rel):
    for n in sorted(os.listdir(os.path.join(root, rel))):
        r = rel + '/' + n if rel else n
        if r.startswith('.wh..wh.'): continue
        st = os.lstat(os.path.join(root, r)); m = stat.S_IMODE(st.st_mode)
        if stat.S_ISDIR(st.st_mode):
            out.append([r, 'd', 0, m, None]); walk(r)
        elif stat.S_ISREG(st.st_mode):
            with open(os.path.join(root, r), 'rb') as f:
                if skip and r.startswith(skip):
                    out.append([r, 'f', st.st_size, m, f.read(16).hex()])
                else:
                    h = hashlib.sha256()
                    for b in iter(lambda: f.read(1 << 20), b''): h.update(b)
                    out.append([r, 'f', st.st_size, m, h.hexdigest()])
        else:
            out.append([r, 'o', st.st_size, m, None])
walk('')
print(json.dumps(out))
`

/** A fingerprint of a host tree that any write, chmod, rename or utimes would change (ctime). */
export function fingerprint(dir: string): string {
  const h = crypto.createHash('sha256')
  const walk = (rel: string): void => {
    for (const name of fs.readdirSync(path.join(dir, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name
      const st = fs.lstatSync(path.join(dir, r))
      h.update(`${r}\0${st.mode}\0${st.size}\0${st.ino}\0${st.mtimeMs}\0${st.ctimeMs}\0`)
      if (st.isDirectory()) walk(r)
    }
  }
  walk('')
  return h.digest('hex')
}

function buildLower(dir: string, o: CrashOptions, rnd: () => number): Model {
  const model: Model = new Map()
  const mkdir = (rel: string): void => {
    fs.mkdirSync(path.join(dir, rel), { recursive: true })
    fs.chmodSync(path.join(dir, rel), 0o755)
    model.set(rel, { kind: 'dir', mode: 0o755 })
  }
  const file = (rel: string, size: number): void => {
    const seed = `lower:${rel}`
    fs.writeFileSync(path.join(dir, rel), gen(seed, size))
    fs.chmodSync(path.join(dir, rel), 0o644)
    model.set(rel, { kind: 'file', seed, size, mode: 0o644 })
  }
  mkdir('big')
  for (let c = 0; c < o.clients; c++) {
    file(`big/L${c}`, o.bigSize)
    mkdir(`c${c}`)
    for (let j = 0; j < o.smallPerClient; j++) file(`c${c}/s${j}`, [20, 1000, 5000, 50000, 200000][Math.floor(rnd() * 5)]!)
    for (let j = 0; j < 4; j++) {
      mkdir(`c${c}/sub${j}`)
      for (let k = 0; k < 3; k++) file(`c${c}/sub${j}/f${k}`, 100 + k)
    }
  }
  fs.utimesSync(dir, 1_600_000_000, 1_600_000_000)
  return model
}

function under(model: Model, p: string): string[] {
  return [...model.keys()].filter((k) => k === p || k.startsWith(p + '/'))
}

function apply(model: Model, op: Op): void {
  switch (op.op) {
    case 'tag': {
      const s = model.get(op.path!)
      if (s?.kind !== 'file') throw new Error(`journal: tag of ${op.path} which the model does not hold`)
      model.set(op.path!, { ...s, header: op.tag })
      return
    }
    case 'chmod': {
      const s = model.get(op.path!)
      if (!s) throw new Error(`journal: chmod of missing ${op.path}`)
      model.set(op.path!, { ...s, mode: op.mode! })
      return
    }
    case 'create': model.set(op.path!, { kind: 'file', seed: op.seed!, size: op.size!, mode: 0o644 }); return
    case 'mkdir': model.set(op.path!, { kind: 'dir', mode: 0o755 }); return
    case 'unlink': model.delete(op.path!); return
    case 'rename': {
      for (const k of under(model, op.src!)) {
        const s = model.get(k)!
        model.delete(k)
        model.set(op.dst! + k.slice(op.src!.length), s)
      }
    }
  }
}

function touched(model: Model, op: Op): string[] {
  if (op.op === 'rename') return [...new Set([op.src!, op.dst!, ...under(model, op.src!), ...under(model, op.dst!)])]
  return [op.path!]
}

/** Whether an observed entry is exactly `s` (for files under big/: size, mode and first 16 bytes). */
function matches(s: State | undefined, o: Obs | undefined): boolean {
  if (!s || !o) return !s && !o
  if (s.kind === 'dir') return o[1] === 'd' && o[3] === s.mode
  if (o[1] !== 'f' || o[2] !== s.size || o[3] !== s.mode) return false
  if (o[0].startsWith('big/')) return o[4] === gen(s.seed, 16).toString('hex')
  return o[4] === shaOf(s.seed, s.size, s.header)
}

function describe(s: State | undefined, o: Obs | undefined): string {
  return `expected ${s ? JSON.stringify(s) : 'absent'}, found ${o ? JSON.stringify(o) : 'absent'}`
}

/** Resolves once any of the journals holds an acknowledged record, or after `limitMs`. */
async function firstAck(journals: readonly string[], limitMs: number): Promise<void> {
  const deadline = Date.now() + limitMs
  const acked = (f: string): boolean => {
    try {
      return fs.readFileSync(f, 'utf8').includes('"t": "A"')
    } catch {
      return false // not written yet
    }
  }
  while (Date.now() < deadline && !journals.some(acked)) await new Promise((r) => setTimeout(r, 5))
}

function readJournal(file: string): Rec[] {
  if (!fs.existsSync(file)) return []
  return fs.readFileSync(file, 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Rec)
}

function planFor(model: Model, c: number): object {
  const files: { path: string; size: number }[] = []
  const dirs: string[] = []
  for (const [k, s] of model) {
    if (!k.startsWith(`c${c}/`) || k.indexOf('/', `c${c}/`.length) !== -1) continue
    if (s.kind === 'file') files.push({ path: k, size: s.size })
    else dirs.push(k)
  }
  return { files, dirs, big: `big/L${c}` }
}

async function pidOf(mnt: string): Promise<number> {
  const reg = (await import(path.resolve(CLI, '../../lib/daemon/registry.js'))) as typeof import('../../lib/daemon/registry.js')
  const rec = reg.readRecord(mnt)
  if (!rec) throw new Error(`no daemon record for ${mnt}`)
  return rec.pid
}

function runClient(args: string[]): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn('python3', [CLIENT, ...args], { stdio: ['ignore', 'ignore', 'pipe'] })
    let err = ''
    child.stderr.on('data', (d) => (err += d))
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000)
    child.on('exit', (code, sig) => {
      clearTimeout(timer)
      if (code !== 0 && code !== 2) process.stderr.write(`crash client exited ${code ?? sig}: ${err}\n`)
      resolve(sig ? -1 : code ?? -1)
    })
  })
}

/**
 * One session: a fresh fixture, `opts.kills` kill/umount/remount/verify rounds. Throws with a
 * precise message at the first violation; returns the counts for the report.
 */
export async function crashSession(opts: CrashOptions): Promise<CrashReport> {
  let s = opts.seed >>> 0
  const rnd = (): number => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32)
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'layerfs-crash-'))
  const A = path.join(root, 'A'), B = path.join(root, 'B'), mnt = path.join(root, 'mnt')
  const report: CrashReport = { kills: 0, inFlightCopies: 0, bigAcked: 0, bigPending: 0, acked: 0, unacked: 0, staleMessages: 0 }
  try {
    fs.mkdirSync(A)
    fs.mkdirSync(mnt)
    const model = buildLower(B, opts, rnd)
    const roHash = hashTree(B)
    const roPrint = fingerprint(B)
    await mountCli(['A=rw:B=ro', './mnt'], { cwd: root })
    for (let round = 1; round <= opts.kills; round++) {
      const where = `round ${round} (seed ${opts.seed})`
      const pid = await pidOf(mnt)
      const clients: Promise<number>[] = []
      for (let c = 0; c < opts.clients; c++) {
        const plan = path.join(root, `plan-${c}.json`)
        fs.writeFileSync(plan, JSON.stringify(planFor(model, c)))
        fs.rmSync(path.join(root, `journal-${c}.log`), { force: true })
        clients.push(runClient([mnt, plan, path.join(root, `journal-${c}.log`), String(c), String(round), String(Math.floor(rnd() * 1e9))]))
      }
      // The random delay counts from the first acknowledged operation, not from the clients'
      // start: on a loaded machine python's start-up and a slow first copy-up could otherwise use
      // up the whole delay, and the kills would land before any work (a vacuous round).
      const journalFiles = Array.from({ length: opts.clients }, (_, c) => path.join(root, `journal-${c}.log`))
      await firstAck(journalFiles, 15_000)
      const [lo, hi] = opts.killDelayMs
      await new Promise((r) => setTimeout(r, lo + rnd() * (hi - lo)))
      process.kill(pid, 'SIGKILL')
      report.kills++
      const codes = await Promise.all(clients)
      const journals = Array.from({ length: opts.clients }, (_, c) => readJournal(path.join(root, `journal-${c}.log`)))
      const errors = journals.flat().filter((r) => r.t === 'E')
      if (errors.length > 0) throw new Error(`${where}: a client got an unexpected error: ${JSON.stringify(errors[0])}`)
      if (codes.some((c) => c !== 0)) throw new Error(`${where}: a client did not end cleanly after the kill (exit codes ${codes.join(',')})`)

      // The stale mount: `layerfs umount` must notice the dead daemon and clean it up.
      const um = await cli(['umount', mnt])
      if (um.code !== 0 || isMounted(mnt)) throw new Error(`${where}: layerfs umount of the stale mount failed (${um.code}): ${um.stderr}`)
      if (!/stale mount.*daemon was gone/.test(um.stderr)) throw new Error(`${where}: no stale-mount message from layerfs umount: '${um.stderr}'`)
      report.staleMessages++
      if (fs.readdirSync(path.join(A, WORK)).length > 0) report.inFlightCopies++
      if (fingerprint(B) !== roPrint) throw new Error(`${where}: the ro branch changed`)

      // Large copy-ups: checked on the host (the merged view shows the rw copy when there is
      // one), then dropped so the next round copies up a fresh 'big' file again.
      for (let c = 0; c < opts.clients; c++) {
        const big = `big/L${c}`
        const recs = journals[c]!.filter((r) => r.op === 'tag' && r.path === big)
        const acked = recs.find((r) => r.t === 'A')
        if (acked) report.bigAcked++
        else if (recs.length > 0) report.bigPending++
        const host = path.join(A, big)
        const st = fs.lstatSync(host, { throwIfNoEntry: false })
        if (!st) {
          if (acked) throw new Error(`${where}: the acknowledged write to ${big} is lost (no rw copy)`)
          continue
        }
        const buf = fs.readFileSync(host)
        const want = gen(`lower:${big}`, opts.bigSize)
        if (!st.isFile() || buf.length !== want.length || !buf.subarray(16).equals(want.subarray(16))) {
          throw new Error(`${where}: a partial copy of ${big} is in the rw branch (${buf.length} of ${want.length} bytes)`)
        }
        const head = buf.subarray(0, 16).toString()
        const allowed = [want.subarray(0, 16).toString(), ...recs.map((r) => r.tag!)]
        if (acked ? head !== acked.tag : !allowed.includes(head)) throw new Error(`${where}: ${big} starts with '${head}', expected ${acked ? acked.tag : allowed.join(' or ')}`)
        fs.rmSync(host)
      }

      // Replay the journals: acknowledged operations are certain; a client's last intent without
      // acknowledgement may or may not have happened, but never half.
      const pending: Op[] = []
      for (const recs of journals) {
        let open: Op | undefined
        for (const r of recs) {
          if (r.op === 'tag' && r.path?.startsWith('big/')) continue
          if (r.t === 'I') open = r
          else if (r.t === 'A') { apply(model, r); open = undefined; report.acked++ }
        }
        if (open) { pending.push(open); report.unacked++ }
      }

      opts.sabotage?.(A)
      await mountCli(['A=rw:B=ro', './mnt'], { cwd: root })
      const left = fs.readdirSync(path.join(A, WORK))
      if (left.length > 0) throw new Error(`${where}: the work area was not emptied by the remount: ${left.join(', ')}`)
      const scan = await run('python3', ['-c', SCAN, mnt, 'big/'], { timeoutMs: 60_000 })
      if (scan.code !== 0) throw new Error(`${where}: scanning the merged view failed: ${scan.stderr}`)
      const seen = new Map((JSON.parse(scan.stdout) as Obs[]).map((o) => [o[0], o]))
      const unsure = new Set(pending.flatMap((op) => {
        const after = new Map(model)
        apply(after, op)
        return [...touched(model, op), ...touched(after, op)]
      }))
      // Every path no pending operation touches is exactly as the model says.
      for (const k of new Set([...model.keys(), ...seen.keys()])) {
        if (unsure.has(k)) continue
        if (!matches(model.get(k), seen.get(k))) throw new Error(`${where}: ${k}: ${describe(model.get(k), seen.get(k))}`)
      }
      // Each pending operation: all of its paths as before, or all as after (a create may have
      // written only part of its data: that is not acknowledged, but it is a prefix).
      for (const op of pending) {
        const after = new Map(model)
        apply(after, op)
        const paths = touched(after, op).concat(touched(model, op))
        const same = (m: Model): boolean => paths.every((k) => matches(m.get(k), seen.get(k)))
        const partial = (): boolean => {
          if (op.op !== 'create') return false
          const o = seen.get(op.path!)
          return !!o && o[1] === 'f' && o[2] <= op.size! && o[3] === 0o644 && o[4] === shaOf(op.seed!, o[2])
        }
        if (same(after)) apply(model, op)
        else if (partial()) model.set(op.path!, { kind: 'file', seed: op.seed!, size: seen.get(op.path!)![2], mode: 0o644 })
        else if (!same(model)) {
          throw new Error(`${where}: unacknowledged ${JSON.stringify(op)} is half done: ${paths.map((k) => `${k}: ${describe(model.get(k), seen.get(k))}`).join('; ')}`)
        }
      }
    }
    const um = await cli(['umount', mnt])
    if (um.code !== 0) throw new Error(`final umount failed: ${um.stderr}`)
    if (fs.existsSync(path.join(A, WORK))) throw new Error('a clean unmount left the work area behind')
    if (hashTree(B) !== roHash) throw new Error('the ro branch is not byte-identical after the session')
    return report
  } finally {
    await cleanupMount(mnt)
    fs.rmSync(root, { recursive: true, force: true })
  }
}
