// Turns the raw rounds into the results: median [min–max] per measurement and system, ratios of
// each layerfs system (one per FUSE transport) to the peers, correctness, a markdown table, JSON,
// and an SVG bar chart of each system's ratio to kernel overlayfs.

/** The measurements, in report order. `better`: which direction is faster. */
export const ROWS = [
  { key: 'mount', label: 'mount until ready', unit: 'ms', better: 'lower' },
  { key: 'lookup_cold', label: 'lookup existing, cold (median)', unit: 'µs/op', better: 'lower' },
  { key: 'lookup_cold_p99', label: 'lookup existing, cold (p99)', unit: 'µs/op', better: 'lower' },
  { key: 'lookup_cold_total', label: 'lookup existing, cold (all of the sample)', unit: 'ms', better: 'lower' },
  { key: 'lookup_warm', label: 'lookup existing, warm (median)', unit: 'µs/op', better: 'lower' },
  { key: 'lookup_warm_p99', label: 'lookup existing, warm (p99)', unit: 'µs/op', better: 'lower' },
  { key: 'neg_first', label: 'negative lookup, first', unit: 'µs/op', better: 'lower' },
  { key: 'neg_repeat', label: 'negative lookup, repeated', unit: 'µs/op', better: 'lower' },
  { key: 'hidden_first', label: 'whited-out lookup, first', unit: 'µs/op', better: 'lower' },
  { key: 'hidden_repeat', label: 'whited-out lookup, repeated', unit: 'µs/op', better: 'lower' },
  { key: 'readdir', label: 'readdir, per merged dir (median)', unit: 'µs/dir', better: 'lower' },
  { key: 'readdir_total', label: 'readdir, all merged dirs', unit: 'ms', better: 'lower' },
  { key: 'find', label: 'find (cold)', unit: 'ms', better: 'lower' },
  { key: 'tar_walk', label: 'metadata walk tar -cf /dev/null (cold)', unit: 'ms', better: 'lower' },
  { key: 'read_cold', label: 'sequential read, large file, cold', unit: 'MB/s', better: 'higher' },
  { key: 'read_warm', label: 'sequential read, large file, warm', unit: 'MB/s', better: 'higher' },
  { key: 'copyup_4k', label: 'copy-up 4 KiB (open+write)', unit: 'ms', better: 'lower' },
  { key: 'copyup_4m', label: 'copy-up 4 MiB (open+write)', unit: 'ms', better: 'lower' },
  { key: 'copyup_large', label: 'copy-up large file (open+write)', unit: 'ms', better: 'lower' },
  { key: 'create', label: 'create small file', unit: 'µs/op', better: 'lower' },
  { key: 'unlink', label: 'unlink small file', unit: 'µs/op', better: 'lower' },
  { key: 'rename_file', label: 'rename lower file', unit: 'µs/op', better: 'lower' },
  { key: 'rename_dir', label: 'rename lower dir (mv on EXDEV)', unit: 'ms', better: 'lower' },
  { key: 'untar', label: 'untar', unit: 'ms', better: 'lower' },
  { key: 'small_writes', label: '20,000 writes of 100 B to a new file', unit: 'ms', better: 'lower' },
  { key: 'small_writes_close', label: '… then its close', unit: 'ms', better: 'lower' },
  { key: 'mem', label: 'daemon peak RSS (VmHWM)', unit: 'MiB', better: 'lower' },
]

/** layerfs's own systems ('layerfs', 'layerfs-fuse-native', …): the rows the ratios are about. */
export const isLayerfs = (name) => name === 'layerfs' || name.startsWith('layerfs-')

/**
 * The ratio columns, as [ours, theirs] pairs. One layerfs system: it against every peer (as
 * before). Several: each against kernel overlayfs and fuse-overlayfs (the table stays readable),
 * then the native transport against fuse-native.
 */
export function ratioPairs(systems) {
  const ours = systems.filter(isLayerfs)
  const peers = systems.filter((s) => !isLayerfs(s))
  if (ours.length <= 1) return ours.flatMap((a) => peers.map((b) => [a, b]))
  const main = peers.filter((p) => p === 'overlayfs' || p === 'fuse-overlayfs')
  const pairs = ours.flatMap((a) => (main.length ? main : peers).map((b) => [a, b]))
  if (ours.includes('layerfs') && ours.includes('layerfs-fuse-native')) pairs.push(['layerfs', 'layerfs-fuse-native'])
  return pairs
}

const med = (xs) => { const s = [...xs].sort((a, b) => a - b); const n = s.length; return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2 }

/** Aggregates rounds: { stats: { [system]: { [key]: { median, min, max, n, ok, notes } } }, checks, info }. */
export function aggregate(rounds, systems) {
  const stats = {}
  const checks = {}
  const info = {}
  for (const sys of systems) {
    stats[sys] = {}
    checks[sys] = []
    info[sys] = [...new Set(rounds.map((r) => r.systems[sys]?.info).filter(Boolean))]
    for (const { key } of ROWS) {
      const vals = []; let ok = true; const notes = new Set()
      for (const r of rounds) {
        const v = r.systems[sys]?.rows[key]
        if (!v) continue
        if (Number.isFinite(v.value)) vals.push(v.value)
        ok &&= v.ok
        if (v.note) notes.add(v.note)
      }
      if (vals.length) stats[sys][key] = { median: med(vals), min: Math.min(...vals), max: Math.max(...vals), n: vals.length, ok, notes: [...notes] }
    }
    const failed = new Map()
    for (const r of rounds) for (const c of r.systems[sys]?.checks ?? []) if (!c.ok) failed.set(c.what, c.detail)
    const all = new Set(rounds.flatMap((r) => (r.systems[sys]?.checks ?? []).map((c) => c.what)))
    for (const what of all) checks[sys].push({ what, ok: !failed.has(what), detail: failed.get(what) })
  }
  return { stats, checks, info }
}

/** Cost ratio a/b: > 1 means a is slower (or uses more), whatever the unit's direction. */
export function costRatio(row, a, b) {
  if (!a || !b || !a.median || !b.median) return undefined
  return row.better === 'higher' ? b.median / a.median : a.median / b.median
}

const fmt = (x) => (x === undefined || !Number.isFinite(x) ? '–' : x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x >= 1 ? x.toFixed(2) : x.toFixed(3))
const fmtRatio = (x) => (x === undefined ? '–' : `${x >= 10 ? x.toFixed(0) : x.toFixed(2)}×`)

export function markdown({ machine, profile, reps, systems, agg, labels, fixture }) {
  const { stats, checks } = agg
  const pairs = ratioPairs(systems)
  const out = []
  out.push(`Profile **${profile}**, ${reps} rounds (systems interleaved in each round, fresh upper per mount). ` +
    `Cells: median [min–max]; FAIL marks a wrong answer. Ratios: layerfs cost ÷ peer cost (> 1 = layerfs slower)` +
    `${systems.filter(isLayerfs).length > 1 ? ', for each layerfs transport' : ''}.`)
  out.push('')
  out.push(`Machine: ${machine.cpu}, ${machine.nproc} CPUs, ${machine.memGiB} GiB, kernel ${machine.kernel}, ${machine.fs} (${machine.disk}), node ${machine.node}; ${machine.peers}${machine.cli ? `; layerfs CLI ${machine.cli}` : ''}.`)
  out.push(`Fixture: ${fixture.counts.baseFiles} base files + ${fixture.counts.baseSymlinks} symlinks in ${fixture.counts.baseDirs} dirs; middle overrides ${fixture.counts.overrides}, whites out ${fixture.counts.whiteouts} files and ${fixture.counts.whiteoutDirs} dirs, ${fixture.counts.opaqueDirs} opaque dirs; top: ${fixture.params.bigMiB} MiB + ${fixture.params.m4Files}× 4 MiB; ${fixture.counts.merged} merged paths.`)
  out.push('')
  const head = ['measurement', 'unit', ...systems.map((s) => labels[s]), ...pairs.map(([a, b]) => `${labels[a]} ÷ ${labels[b]}`)]
  out.push(`| ${head.join(' | ')} |`)
  out.push(`|${head.map((_, i) => (i < 2 ? '---' : '--:')).join('|')}|`)
  for (const row of ROWS) {
    if (!systems.some((s) => stats[s][row.key])) continue
    const cells = systems.map((s) => {
      const v = stats[s][row.key]
      if (!v) return '–'
      const range = v.n > 1 ? ` [${fmt(v.min)}–${fmt(v.max)}]` : ''
      const note = v.notes.length ? ` (${v.notes.join('; ')})` : ''
      return `${v.ok ? '' : '**FAIL** '}${fmt(v.median)}${range}${note}`
    })
    const ratios = pairs.map(([a, b]) => fmtRatio(costRatio(row, stats[a]?.[row.key], stats[b]?.[row.key])))
    out.push(`| ${row.label} | ${row.unit} | ${cells.join(' | ')} | ${ratios.join(' | ')} |`)
  }
  out.push('')
  out.push('Correctness checks (every round):')
  out.push('')
  for (const s of systems) {
    const bad = checks[s].filter((c) => !c.ok)
    const served = agg.info?.[s]?.length ? ` (served by: ${agg.info[s].join(' / ')})` : ''
    out.push(`- ${labels[s]}: ${bad.length === 0 ? `all ${checks[s].length} passed` : bad.map((c) => `**FAIL** ${c.what}${c.detail ? `: ${String(c.detail).split('\n')[0].slice(0, 200)}` : ''}`).join('; ')}${served}`)
  }
  return out.join('\n') + '\n'
}

const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')

/** Horizontal bars, log scale: each system's cost relative to kernel overlayfs, per measurement. */
export function svgChart({ systems, agg, labels, machine, profile }) {
  const { stats } = agg
  const base = 'overlayfs'
  const shown = systems.filter((s) => s !== base)
  const rows = ROWS.filter((r) => r.key !== 'mem' && stats[base]?.[r.key] && shown.some((s) => stats[s][r.key]))
  const colors = { layerfs: '#d9480f', 'layerfs-fuse-native': '#f59f00', 'layerfs-writeback': '#e8590c', 'fuse-overlayfs': '#1c7ed6', 'unionfs-fuse': '#868e96' }
  const barH = 9; const gap = 8; const labelW = 270; const plotW = 520; const top = 58
  const groupH = shown.length * barH + gap
  const height = top + rows.length * groupH + 40
  const width = labelW + plotW + 30
  const lo = Math.log10(0.1); const hi = Math.log10(1000)
  const x = (ratio) => labelW + ((Math.log10(Math.min(Math.max(ratio, 0.1), 1000)) - lo) / (hi - lo)) * plotW
  const o = []
  o.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`)
  o.push(`<rect width="100%" height="100%" fill="#fff"/>`)
  o.push(`<text x="10" y="18" font-size="14" font-weight="bold">Cost relative to kernel overlayfs (log scale; 1 = as fast, right = slower)</text>`)
  o.push(`<text x="10" y="34" fill="#555">${esc(`profile ${profile}; layerfs ${machine.layerfs}; ${machine.cpu}, ${machine.nproc} CPUs, kernel ${machine.kernel}; medians of ${machine.reps} rounds; ${machine.date.slice(0, 10)}`)}</text>`)
  // The legend, left to right, each entry as wide as its label (starts left of the plot when long).
  const legendW = (s) => 24 + 6.2 * String(labels[s]).length
  let lx = Math.max(10, Math.min(labelW, width - 10 - shown.reduce((a, s) => a + legendW(s), 0)))
  for (const s of shown) {
    o.push(`<rect x="${lx.toFixed(0)}" y="42" width="10" height="10" fill="${colors[s] ?? '#333'}"/><text x="${(lx + 14).toFixed(0)}" y="51">${esc(labels[s])}</text>`)
    lx += legendW(s)
  }
  for (const t of [0.1, 0.3, 1, 3, 10, 30, 100, 300, 1000]) {
    const xx = x(t).toFixed(1)
    o.push(`<line x1="${xx}" y1="${top - 4}" x2="${xx}" y2="${height - 30}" stroke="${t === 1 ? '#000' : '#ddd'}" stroke-width="${t === 1 ? 1.2 : 1}"/>`)
    o.push(`<text x="${xx}" y="${height - 16}" text-anchor="middle" fill="#555">${t}×</text>`)
  }
  rows.forEach((row, gi) => {
    const y0 = top + gi * groupH
    o.push(`<text x="${labelW - 6}" y="${y0 + (shown.length * barH) / 2 + 4}" text-anchor="end">${esc(row.label)}</text>`)
    shown.forEach((s, i) => {
      const r = costRatio(row, stats[s][row.key], stats[base][row.key])
      if (r === undefined) return
      const x1 = x(1); const x2 = x(r)
      const y = y0 + i * barH
      const fail = stats[s][row.key].ok === false
      o.push(`<rect x="${Math.min(x1, x2).toFixed(1)}" y="${y}" width="${Math.max(1, Math.abs(x2 - x1)).toFixed(1)}" height="${barH - 1}" fill="${colors[s] ?? '#333'}"${fail ? ' fill-opacity="0.35" stroke="#c00"' : ''}><title>${esc(`${labels[s]}: ${r.toFixed(2)}×${fail ? ' (FAIL)' : ''}`)}</title></rect>`)
      o.push(`<text x="${(Math.max(x1, x2) + 3).toFixed(1)}" y="${y + barH - 2}" font-size="8" fill="#333">${r >= 10 ? r.toFixed(0) : r.toFixed(1)}${fail ? ' FAIL' : ''}</text>`)
    })
  })
  o.push('</svg>')
  return o.join('\n') + '\n'
}
