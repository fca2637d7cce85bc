// Issue 7 §1, fast variant: the daemon is SIGKILLed 20 times at random moments while 4 clients
// copy up large (48 MiB) and small files, create, chmod, rename files and directories and delete.
// After each kill: `layerfs umount` cleans the stale mount with a clear message, the remount
// works and empties the work area, nothing half copied or half renamed is visible, every
// fsync-acknowledged change is there, the ro branch is untouched (test/helpers/crash.ts).
// The 200-kill variant is test/stress/crash-kill.stress.test.ts (npm run test:stress).
import { describe, expect, it } from 'vitest'
import * as fs from 'node:fs'
import { crashSession, gen } from '../helpers/crash.js'
import { fuseUnavailable } from '../helpers/mount.js'

describe.skipIf(fuseUnavailable())('SIGKILL of the daemon during copy-up and writes', () => {
  it('survives 20 kills with nothing lost and nothing half done', async () => {
    const report = await crashSession({
      clients: 4, kills: 20, bigSize: 48 << 20, smallPerClient: 30, killDelayMs: [30, 500], seed: Date.now(),
    })
    process.stdout.write(`crash-kill: ${JSON.stringify(report)}\n`)
    expect(report.kills).toBe(20)
    expect(report.staleMessages).toBe(20)
    // The clients did get work done before the kills (the test is not vacuous).
    expect(report.acked).toBeGreaterThan(20)
  }, 300_000) // 115 s on a loaded machine, alone

  it('catches a half-copied file (test of the test: the rw branch is damaged after the kill)', async () => {
    await expect(crashSession({
      clients: 2, kills: 1, bigSize: 1 << 20, smallPerClient: 4, killDelayMs: [300, 300], seed: 1,
      sabotage: (A) => {
        fs.mkdirSync(`${A}/c0`, { recursive: true })
        fs.writeFileSync(`${A}/c0/s0`, gen('lower:c0/s0', 5))
      },
    })).rejects.toThrow(/c0\/s0/)
  })
})
