// The bench fixture: a container-image-like stack of three layers, generated from a seeded PRNG
// and cached on disk, plus its converted copies for kernel overlayfs and unionfs-fuse, the
// untar tarball, and the path lists and expectations the measurements and checks use.
import { execFileSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'

/** Bump when the generator changes: a cached fixture of another version is rebuilt. */
const VERSION = 4

export const PROFILES = {
  full: {
    baseFiles: 30_000, dirs: 1_800, symlinkShare: 0.05, overrides: 2_000, whiteouts: 1_000,
    whiteoutDirs: 12, opaqueDirs: 20, bigMiB: 512, m4Files: 8, untarFiles: 20_000, lookupSample: 5_000,
    negativeSample: 3_000, renameDirFiles: 500, createUnlink: 10_000, copyupSamples: 5,
  },
  quick: {
    baseFiles: 6_000, dirs: 400, symlinkShare: 0.05, overrides: 400, whiteouts: 200,
    whiteoutDirs: 4, opaqueDirs: 5, bigMiB: 64, m4Files: 4, untarFiles: 2_000, lookupSample: 1_500,
    negativeSample: 1_000, renameDirFiles: 100, createUnlink: 1_000, copyupSamples: 3,
  },
}

/** mulberry32: small, fast, and the same on every machine. */
export function prng(seed) {
  let a = seed >>> 0
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  return {
    next,
    int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)),
    pick: (arr) => arr[Math.floor(next() * arr.length)],
    shuffle(arr) {
      for (let i = arr.length - 1; i > 0; i--) {
        const j = Math.floor(next() * (i + 1));
        [arr[i], arr[j]] = [arr[j], arr[i]]
      }
      return arr
    },
  }
}

const WORDS = ['core', 'util', 'data', 'net', 'log', 'cache', 'conf', 'share', 'doc', 'man', 'include', 'python3',
  'site', 'pkg', 'locale', 'zone', 'x86', 'gnu', 'perl', 'ssl', 'certs', 'java', 'node', 'modules', 'bin', 'src',
  'test', 'fonts', 'icons', 'themes', 'apt', 'dpkg', 'info', 'init', 'systemd', 'udev', 'kernel', 'firmware']
const EXTS = ['', '.so', '.py', '.pyc', '.h', '.js', '.json', '.txt', '.gz', '.conf', '.md', '.html', '.mo']
const TOP_DIRS = ['/usr', '/usr/lib', '/usr/share', '/usr/bin', '/usr/include', '/etc', '/var', '/var/lib', '/opt', '/srv', '/home']

/** File content: a header naming layer and path, repeated to `size` bytes (checked through the mount). */
export function contentFor(layer, rel, size) {
  const line = `${layer}:${rel}\n`
  return Buffer.from(line.repeat(Math.ceil(size / line.length) || 0).slice(0, size))
}

function sizeFor(r) {
  const x = r.next()
  if (x < 0.2) return r.int(0, 512)
  if (x < 0.7) return r.int(512, 8192)
  if (x < 0.95) return r.int(8192, 32768)
  return r.int(32768, 65536)
}

const under = (p, dir) => p === dir || p.startsWith(dir + '/')

/** The in-memory model of the three layers and of the merged view. Pure: the same params give the same model. */
export function buildModel(P, seed = 42) {
  const r = prng(seed)
  const dirs = [...TOP_DIRS]
  const depth = (d) => d.split('/').length - 1
  for (let i = 0; dirs.length < P.dirs; i++) {
    const parent = r.pick(dirs)
    if (depth(parent) >= 7) continue
    dirs.push(`${parent}/${r.pick(WORDS)}${i}`)
  }
  // Files: a few dirs are big (Zipf-like), most small.
  const weights = dirs.map(() => 1 / (1 + Math.floor(r.next() * 40)))
  const wsum = weights.reduce((a, b) => a + b, 0)
  const pickDir = () => {
    let x = r.next() * wsum
    for (let i = 0; i < dirs.length; i++) if ((x -= weights[i]) <= 0) return dirs[i]
    return dirs[dirs.length - 1]
  }
  const files = [] // { rel, size }
  const symlinks = [] // { rel, target }
  for (let i = 0; files.length + symlinks.length < P.baseFiles; i++) {
    const d = pickDir()
    const rel = `${d}/${r.pick(WORDS)}-${i}${r.pick(EXTS)}`
    if (r.next() < P.symlinkShare && files.length > 0) {
      const t = r.pick(files).rel
      symlinks.push({ rel, target: path.relative(d, t) || '.' })
    } else files.push({ rel, size: sizeFor(r) })
  }
  // Fixed targets for copy-up and rename (never touched by the middle layer).
  for (let i = 0; i < P.copyupSamples; i++) files.push({ rel: `/copyup/small-${i}.bin`, size: 4096 })
  for (let i = 0; i < P.copyupSamples; i++) files.push({ rel: `/copyup/ren-${i}.txt`, size: 16384 })
  dirs.push('/copyup', '/renamedir', '/renamedir/sub')
  for (let i = 0; i < P.renameDirFiles; i++) files.push({ rel: `/renamedir/${i % 5 === 0 ? 'sub/' : ''}f${i}.txt`, size: r.int(0, 8192) })
  const special = (p) => under(p, '/copyup') || under(p, '/renamedir')

  // Middle layer. Whole-dir whiteouts and opaque dirs first, disjoint subtrees.
  const candidates = r.shuffle(dirs.filter((d) => depth(d) >= 3 && !special(d)))
  const taken = []
  const free = (d) => !taken.some((t) => under(d, t) || under(t, d))
  const whiteoutDirs = []
  const opaqueDirs = []
  for (const d of candidates) {
    if (whiteoutDirs.length < P.whiteoutDirs && free(d)) { whiteoutDirs.push(d); taken.push(d) } else if (opaqueDirs.length < P.opaqueDirs && free(d)) { opaqueDirs.push(d); taken.push(d) }
    if (whiteoutDirs.length >= P.whiteoutDirs && opaqueDirs.length >= P.opaqueDirs) break
  }
  const inTaken = (p) => taken.some((t) => under(p, t))
  const pool = r.shuffle(files.filter((f) => !special(f.rel) && !inTaken(f.rel)).map((f) => f.rel))
  const overrides = pool.slice(0, P.overrides).map((rel) => ({ rel, size: r.int(64, 16384) }))
  const whiteouts = pool.slice(P.overrides, P.overrides + P.whiteouts)
  const opaqueNew = opaqueDirs.flatMap((d) => [0, 1, 2].map((k) => ({ rel: `${d}/new-${k}.txt`, size: r.int(64, 4096) })))

  // Top layer: big files.
  const top = [{ rel: '/big/large.bin', size: P.bigMiB << 20 }]
  for (let i = 0; i < P.m4Files; i++) top.push({ rel: `/big/m4-${i}.bin`, size: 4 << 20 })

  // The merged view.
  const hidden = new Set(whiteouts)
  const hiddenBy = (p) => hidden.has(p) || whiteoutDirs.some((d) => under(p, d)) || opaqueDirs.some((d) => p !== d && under(p, d))
  const merged = new Map() // rel -> 'd' | 'f' | 'l'
  for (const d of dirs) if (!hiddenBy(d)) merged.set(d, 'd')
  for (const f of files) if (!hiddenBy(f.rel)) merged.set(f.rel, 'f')
  for (const s of symlinks) if (!hiddenBy(s.rel)) merged.set(s.rel, 'l')
  for (const d of opaqueDirs) merged.set(d, 'd')
  for (const f of opaqueNew) merged.set(f.rel, 'f')
  merged.set('/big', 'd')
  for (const f of top) merged.set(f.rel, 'f')
  // Hidden names a lookup reaches directly: whited-out files and dirs, and the lower children of
  // opaque dirs (not the descendants of a hidden dir, which the kernel stops at the parent).
  const lowerNames = [...dirs, ...files.map((f) => f.rel), ...symlinks.map((s) => s.rel)]
  const hiddenPaths = [...whiteouts, ...whiteoutDirs, ...lowerNames.filter((p) => opaqueDirs.includes(path.dirname(p)))]
  return { P, dirs, files, symlinks, overrides, whiteouts, whiteoutDirs, opaqueDirs, opaqueNew, top, merged, hiddenPaths }
}

function writeFile(root, rel, buf) {
  const p = root + rel
  fs.mkdirSync(path.dirname(p), { recursive: true })
  fs.writeFileSync(p, buf)
}

function writeBig(p, bytes) {
  fs.mkdirSync(path.dirname(p), { recursive: true })
  const chunk = Buffer.alloc(1 << 20)
  const r = prng(7)
  for (let i = 0; i < chunk.length; i += 4) chunk.writeUInt32LE((r.next() * 4294967296) >>> 0, i)
  const fd = fs.openSync(p, 'w')
  try {
    for (let off = 0; off < bytes; off += chunk.length) fs.writeSync(fd, chunk, 0, Math.min(chunk.length, bytes - off))
  } finally {
    fs.closeSync(fd)
  }
}

function sh(script) {
  execFileSync('sh', ['-ec', script], { stdio: ['ignore', 'inherit', 'inherit'] })
}

/**
 * Makes sure the fixture for `profile` exists under `cacheDir` and returns its descriptor
 * (also saved as fixture.json). Generation takes a while the first time; later calls are free.
 */
export function ensureFixture(profile, cacheDir, log = () => {}) {
  const P = PROFILES[profile]
  const root = path.join(cacheDir, `fixture-${profile}-v${VERSION}`)
  const descFile = path.join(root, 'fixture.json')
  if (fs.existsSync(descFile)) return JSON.parse(fs.readFileSync(descFile, 'utf8'))
  fs.rmSync(root, { recursive: true, force: true })
  const t0 = Date.now()
  log(`generating the ${profile} fixture in ${root} …`)
  const m = buildModel(P)
  const L = { base: `${root}/base`, middle: `${root}/middle`, top: `${root}/top`, middleOvl: `${root}/middle-ovl`, middleUnionfs: `${root}/middle-unionfs` }

  // base
  for (const d of m.dirs) fs.mkdirSync(L.base + d, { recursive: true })
  for (const f of m.files) writeFile(L.base, f.rel, contentFor('base', f.rel, f.size))
  for (const s of m.symlinks) fs.symlinkSync(s.target, L.base + s.rel)
  // middle: overrides, whiteouts (.wh. files), opaque dirs (.wh..wh..opq)
  fs.mkdirSync(L.middle, { recursive: true })
  for (const f of m.overrides) writeFile(L.middle, f.rel, contentFor('middle', f.rel, f.size))
  for (const w of [...m.whiteouts, ...m.whiteoutDirs]) writeFile(L.middle, `${path.dirname(w)}/.wh.${path.basename(w)}`, Buffer.alloc(0))
  for (const d of m.opaqueDirs) writeFile(L.middle, `${d}/.wh..wh..opq`, Buffer.alloc(0))
  for (const f of m.opaqueNew) writeFile(L.middle, f.rel, contentFor('middle', f.rel, f.size))
  // top
  for (const f of m.top) writeBig(L.top + f.rel, f.size)

  // Kernel overlayfs copy: .wh.X → char device 0/0 X, .wh..wh..opq → trusted.overlay.opaque=y.
  const script = [`cp -al ${L.middle} ${L.middleOvl}`]
  for (const w of [...m.whiteouts, ...m.whiteoutDirs]) {
    const d = L.middleOvl + path.dirname(w)
    script.push(`rm '${d}/.wh.${path.basename(w)}'`, `mknod '${d}/${path.basename(w)}' c 0 0`)
  }
  for (const d of m.opaqueDirs) script.push(`rm '${L.middleOvl}${d}/.wh..wh..opq'`, `setfattr -n trusted.overlay.opaque -v y '${L.middleOvl}${d}'`)
  // unionfs-fuse copy: hidden names as BRANCH/.unionfs-fuse/DIR/NAME_HIDDEN~; it has no opaque
  // marker, so an opaque dir hides each lower child by name instead.
  script.push(`cp -al ${L.middle} ${L.middleUnionfs}`)
  const meta = `${L.middleUnionfs}/.unionfs-fuse`
  const hide = (rel) => {
    script.push(`mkdir -p '${meta}${path.dirname(rel)}'`, `: > '${meta}${rel}_HIDDEN~'`)
  }
  for (const w of [...m.whiteouts, ...m.whiteoutDirs]) {
    script.push(`rm '${L.middleUnionfs}${path.dirname(w)}/.wh.${path.basename(w)}'`)
    hide(w)
  }
  for (const d of m.opaqueDirs) {
    script.push(`rm '${L.middleUnionfs}${d}/.wh..wh..opq'`)
    for (const name of fs.readdirSync(L.base + d)) hide(`${d}/${name}`)
  }
  fs.writeFileSync(`${root}/convert.sh`, script.join('\n') + '\n')
  sh(`sh ${root}/convert.sh`)

  // The untar tarball: small files in a tree of its own.
  const r = prng(99)
  const src = `${root}/untar-src/tree`
  for (let i = 0; i < P.untarFiles; i++) {
    const rel = `/pkg${i % 40}/d${Math.floor(i / 40) % 25}/file-${i}.txt`
    writeFile(src, rel, contentFor('tar', rel, r.int(0, 4096)))
  }
  sh(`tar -cf ${root}/untar.tar -C ${root}/untar-src tree && rm -rf ${root}/untar-src`)
  const untarEntries = P.untarFiles + 1 + 40 + 40 * 25 // files + tree + pkg dirs + d dirs

  // Lists for the measurements.
  const lists = `${root}/lists`
  fs.mkdirSync(lists)
  const merged = [...m.merged.keys()]
  const existing = prng(5).shuffle(merged.filter((p) => !p.startsWith('/copyup') && !p.startsWith('/renamedir'))).slice(0, P.lookupSample)
  const mergedDirs = merged.filter((p) => m.merged.get(p) === 'd')
  const rn = prng(6)
  const negative = Array.from({ length: P.negativeSample }, (_, i) => `${rn.pick(mergedDirs)}/absent-${i}.txt`)
  const hiddenSample = prng(8).shuffle([...m.hiddenPaths]).slice(0, P.lookupSample)
  const overrideSample = prng(9).shuffle([...m.overrides]).slice(0, 300).map((f) => ({ rel: f.rel, prefix: contentFor('middle', f.rel, Math.min(f.size, 200)).toString() }))
  const allDirs = ['/', ...mergedDirs]
  const childCount = new Map(allDirs.map((d) => [d, 0]))
  for (const p of merged) { const parent = path.dirname(p); childCount.set(parent, (childCount.get(parent) ?? 0) + 1) }
  const expectedEntries = allDirs.reduce((a, d) => a + childCount.get(d), 0)
  fs.writeFileSync(`${lists}/existing.txt`, existing.join('\n') + '\n')
  fs.writeFileSync(`${lists}/negative.txt`, negative.join('\n') + '\n')
  fs.writeFileSync(`${lists}/hidden.txt`, hiddenSample.join('\n') + '\n')
  fs.writeFileSync(`${lists}/dirs.txt`, allDirs.join('\n') + '\n')
  fs.writeFileSync(`${lists}/merged.txt`, merged.sort().join('\n') + '\n')
  fs.writeFileSync(`${lists}/overrides.json`, JSON.stringify(overrideSample))

  const renameDirCount = merged.filter((p) => under(p, '/renamedir') && p !== '/renamedir').length
  const desc = {
    version: VERSION, profile, root, layers: L, params: P,
    counts: {
      baseFiles: m.files.length, baseSymlinks: m.symlinks.length, baseDirs: m.dirs.length, overrides: m.overrides.length,
      whiteouts: m.whiteouts.length, whiteoutDirs: m.whiteoutDirs.length, opaqueDirs: m.opaqueDirs.length,
      merged: merged.length, mergedDirs: allDirs.length, expectedEntries, untarEntries, renameDirCount,
    },
    lists: {
      existing: `${lists}/existing.txt`, negative: `${lists}/negative.txt`, hidden: `${lists}/hidden.txt`,
      dirs: `${lists}/dirs.txt`, merged: `${lists}/merged.txt`, overrides: `${lists}/overrides.json`,
    },
    targets: {
      small: Array.from({ length: P.copyupSamples }, (_, i) => `/copyup/small-${i}.bin`),
      m4: Array.from({ length: Math.min(P.copyupSamples, P.m4Files) }, (_, i) => `/big/m4-${i}.bin`),
      large: '/big/large.bin', largeBytes: P.bigMiB << 20,
      renameFiles: Array.from({ length: P.copyupSamples }, (_, i) => `/copyup/ren-${i}.txt`),
      renameDir: '/renamedir',
    },
    tarball: `${root}/untar.tar`,
    generatedMs: Date.now() - t0,
  }
  fs.writeFileSync(descFile, JSON.stringify(desc, null, 2) + '\n')
  log(`fixture ready in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${merged.length} merged paths`)
  return desc
}
