// Issue 7 §1, the long variant (npm run test:stress): 10 sessions of 20 SIGKILLs each, 200 kill
// points in all, with the same checks as test/integration/crash-kill.test.ts after every kill.
// LAYERFS_KILLS changes the total (rounded up to whole sessions of 20).
import { describe, expect, it } from 'vitest'
import { crashSession, type CrashReport } from '../helpers/crash.js'
import { fuseUnavailable } from '../helpers/mount.js'

const TOTAL = Number(process.env.LAYERFS_KILLS ?? 200)

describe.skipIf(fuseUnavailable())('SIGKILL of the daemon, 200 kill points', () => {
  it(`survives ${TOTAL} kills with nothing lost and nothing half done`, async () => {
    const sum: CrashReport = { kills: 0, inFlightCopies: 0, bigAcked: 0, bigPending: 0, acked: 0, unacked: 0, staleMessages: 0 }
    const seed0 = Date.now()
    for (let s = 0; sum.kills < TOTAL; s++) {
      const r = await crashSession({
        clients: 4, kills: 20, bigSize: (s % 2 ? 96 : 32) << 20, smallPerClient: 30,
        killDelayMs: s % 3 === 0 ? [100, 400] : [50, 900], seed: seed0 + s,
      })
      for (const k of Object.keys(sum) as (keyof CrashReport)[]) sum[k] += r[k]
      process.stdout.write(`crash-kill session ${s} (seed ${seed0 + s}): ${JSON.stringify(r)}\n`)
    }
    process.stdout.write(`crash-kill total: ${JSON.stringify(sum)}\n`)
    expect(sum.kills).toBeGreaterThanOrEqual(TOTAL)
    expect(sum.staleMessages).toBe(sum.kills)
    // Kills did land in the middle of copy-ups, not only between operations.
    expect(sum.inFlightCopies).toBeGreaterThan(0)
  })
})
