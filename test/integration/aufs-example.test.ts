// The aufs example from the mount issue, exactly, through the CLI and ordinary programs.
import * as fs from 'node:fs'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { hashTree, makeFixture, upperSnapshot, type Fixture } from '../helpers/fixture.js'
import { cleanupMount, cli, fuseUnavailable, isMounted, mountCli, sh } from '../helpers/mount.js'

const skip = fuseUnavailable()

describe.skipIf(skip)('aufs example: layerfs mount A:B ./C', () => {
  let fx: Fixture
  beforeEach(() => {
    fx = makeFixture({ A: { a: 'a\n', x: 'xA\n' }, B: { b: 'b\n', x: 'xB\n' } })
  })
  afterEach(async () => {
    await cleanupMount(fx.mnt)
    fx.cleanup()
  })

  it('merges, copies up on write, whites out on rm, and unmounts', async () => {
    const lowerHash = hashTree(fx.dir('B'))
    await mountCli(['A:B', './mnt'], { cwd: fx.root })
    expect(isMounted(fx.mnt)).toBe(true)
    expect((await sh('ls mnt', { cwd: fx.root })).stdout).toBe('a\nb\nx\n')
    expect((await sh('cat mnt/x', { cwd: fx.root })).stdout).toBe('xA\n')
    expect((await sh('echo new > mnt/b && cat mnt/b', { cwd: fx.root })).stdout).toBe('new\n')
    expect((await sh('rm mnt/x && ls mnt', { cwd: fx.root })).stdout).toBe('a\nb\n')
    const um = await cli(['umount', './mnt'], { cwd: fx.root })
    expect(um.code).toBe(0)
    expect(isMounted(fx.mnt)).toBe(false)
    // On disk: A holds exactly the delta, B is untouched.
    expect(upperSnapshot(fx.dir('A'))).toEqual(['.wh.x = ""', 'a = "a\\n"', 'b = "new\\n"'])
    expect(fs.readFileSync(fx.dir('B') + '/b', 'utf8')).toBe('b\n')
    expect(hashTree(fx.dir('B'))).toBe(lowerHash)
  })
})
