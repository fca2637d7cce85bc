// The daemon's V8 flags (lib/daemon/v8-tuning.ts), checked in a fresh node: a function first
// called after tuneV8ForDaemon() runs baseline (Sparkplug) code at once, not the interpreter.
import { execFileSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { describe, expect, it } from 'vitest'

const MODULE = path.resolve(__dirname, '../../dist/lib/daemon/v8-tuning.js')

/** Applies the tuning in a child node with `env`; says which flags it set and f's tier after one call. */
function tierAfterTuning(env: Record<string, string>): { flags: string[]; sparkplug: boolean } {
  const script = `
    const { tuneV8ForDaemon } = await import(${JSON.stringify(MODULE)})
    const flags = tuneV8ForDaemon()
    const f = (a) => a + 1
    f(1)
    console.log(JSON.stringify({ flags, sparkplug: %ActiveTierIsSparkplug(f) }))`
  const out = execFileSync(process.execPath, ['--allow-natives-syntax', '--input-type=module', '-e', script], {
    encoding: 'utf8', env: { ...process.env, ...env },
  })
  return JSON.parse(out)
}

describe.skipIf(!fs.existsSync(MODULE))('tuneV8ForDaemon', () => {
  it('gives functions compiled afterwards baseline code at their first call', () => {
    expect(tierAfterTuning({ LAYERFS_SPARKPLUG: '' })).toEqual({ flags: ['--always-sparkplug'], sparkplug: true })
  })

  it('leaves V8 alone with LAYERFS_SPARKPLUG=0 (a function starts in the interpreter)', () => {
    expect(tierAfterTuning({ LAYERFS_SPARKPLUG: '0' })).toEqual({ flags: [], sparkplug: false })
  })
})
