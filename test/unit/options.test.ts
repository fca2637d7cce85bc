import * as fs from 'node:fs'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { ConfigError, parseBranches, parseMountOptions, resolveStack } from '../../lib/options.js'
import { busyPollMicros, checkWriteback, DEFAULT_BUSY_POLL_MICROS, parseBusyPoll } from '../../lib/fuse/mount.js'
import { writebackOpenFlags } from '../../lib/fuse/kernel/session.js'
import { makeFixture, snapshot, type Fixture } from '../helpers/fixture.js'

describe('parseBranches', () => {
  it('parses top-first specs with and without modes', () => {
    expect(parseBranches('A:B')).toEqual([{ path: 'A' }, { path: 'B' }])
    expect(parseBranches('A=rw:B=ro')).toEqual([{ path: 'A', mode: 'rw' }, { path: 'B', mode: 'ro' }])
    expect(parseBranches('a\\:b:c')).toEqual([{ path: 'a:b' }, { path: 'c' }])
  })
  it.each([[''], ['A::B'], [':A'], ['A:'], ['A=rx'], ['=rw'], ['A=']])('refuses %j', (spec) => {
    expect(() => parseBranches(spec)).toThrow(ConfigError)
  })
  it('names the bad mode', () => {
    expect(() => parseBranches('A=rx:B')).toThrow(/branch 'A' has mode 'rx'/)
  })
})

describe('parseMountOptions', () => {
  it('splits overlayfs-style options', () => {
    expect(parseMountOptions(['lowerdir=L2:L1,upperdir=U,workdir=W', 'ro'])).toEqual({
      lowerdir: 'L2:L1', upperdir: 'U', workdir: 'W', other: ['ro'],
    })
  })
  it('refuses an empty lowerdir', () => {
    expect(() => parseMountOptions(['lowerdir='])).toThrow(ConfigError)
  })
})

describe('resolveStack', () => {
  let fx: Fixture
  beforeEach(() => {
    fx = makeFixture({ A: {}, B: {}, C: {}, 'A/inner': {}, file: { f: 'x' } })
  })
  afterEach(() => fx.cleanup())
  const d = (n: string): string => fx.dir(n)

  it('makes the first writable branch rw and the rest ro', () => {
    expect(resolveStack({ branches: [{ path: d('A') }, { path: d('B') }] }).map((s) => s.mode)).toEqual(['rw', 'ro'])
  })
  it('makes unmarked branches ro once any mode is given', () => {
    expect(resolveStack({ branches: [{ path: d('A'), mode: 'ro' }, { path: d('B') }] }).map((s) => s.mode)).toEqual(['ro', 'ro'])
  })
  it('puts --upper on top of an all-ro stack, creating it', () => {
    const specs = resolveStack({ branches: [{ path: d('A') }, { path: d('B') }], upper: d('U/new') })
    expect(specs.map((s) => s.mode)).toEqual(['rw', 'ro', 'ro'])
    expect(specs[0]!.path).toBe(fs.realpathSync(d('U/new')))
  })
  const refuse = (why: RegExp, req: () => unknown): void => {
    const before = snapshot(fx.root)
    expect(req).toThrow(why)
    expect(snapshot(fx.root)).toEqual(before) // nothing written
  }
  it('refuses bad stacks with one clear message', () => {
    refuse(/does not exist/, () => resolveStack({ branches: [{ path: d('nope') }] }))
    refuse(/is not a directory/, () => resolveStack({ branches: [{ path: d('file/f') }] }))
    refuse(/given twice/, () => resolveStack({ branches: [{ path: d('B') }, { path: d('B') }] }))
    refuse(/two rw branches/, () => resolveStack({ branches: [{ path: d('A'), mode: 'rw' }, { path: d('B'), mode: 'rw' }] }))
    refuse(/must be the top/, () => resolveStack({ branches: [{ path: d('A'), mode: 'ro' }, { path: d('B'), mode: 'rw' }] }))
    refuse(/overlapping/, () => resolveStack({ branches: [{ path: d('A') }, { path: d('A/inner') }] }))
    refuse(/inside the mount point/, () => resolveStack({ branches: [{ path: d('A/inner') }], mountpoint: d('A') }))
    refuse(/is inside branch/, () => resolveStack({ branches: [{ path: d('A') }], mountpoint: d('A/inner') }))
    refuse(/not an empty directory/, () => resolveStack({ branches: [{ path: d('B') }], mountpoint: d('file') }))
    refuse(/is rw too/, () => resolveStack({ branches: [{ path: d('A'), mode: 'rw' }], upper: d('C') }))
  })
})

describe('busy polling bound', () => {
  afterEach(() => {
    delete process.env.LAYERFS_BUSY_POLL_US
  })
  it('takes the option, else $LAYERFS_BUSY_POLL_US, else the default; refuses what is not 0–1000 whole µs', () => {
    expect(busyPollMicros({})).toBe(DEFAULT_BUSY_POLL_MICROS)
    process.env.LAYERFS_BUSY_POLL_US = '0'
    expect(busyPollMicros({})).toBe(0)
    expect(busyPollMicros({ busyPoll: 50 })).toBe(50)
    process.env.LAYERFS_BUSY_POLL_US = 'abc'
    expect(() => busyPollMicros({})).toThrow(new ConfigError('EINVAL', "LAYERFS_BUSY_POLL_US: busy poll 'abc' is not a whole number of microseconds from 0 to 1000"))
    for (const bad of ['', ' ', '-1', '1001', '2.5', '1e9']) expect(() => parseBusyPoll(bad)).toThrow(ConfigError)
    expect(() => parseBusyPoll(NaN)).toThrow(ConfigError)
    expect(parseBusyPoll(' 20 ')).toBe(20)
    expect(parseBusyPoll(1000)).toBe(1000)
  })
})

describe('the writeback cache', () => {
  it('needs the native transport and excludes the modes that pick up changes underneath', () => {
    expect(() => checkWriteback({}, 'fuse-native')).not.toThrow() // not asked: nothing to check
    expect(() => checkWriteback({ writebackCache: true }, 'native')).not.toThrow()
    expect(() => checkWriteback({ writebackCache: true, passthrough: false, busyPoll: 5 }, 'native')).not.toThrow()
    expect(() => checkWriteback({ writebackCache: true, passthrough: true }, 'native')).toThrow(/--passthrough exclude each other/)
    expect(() => checkWriteback({ writebackCache: true }, 'fuse-native')).toThrow(new ConfigError('EINVAL', 'the writeback cache needs the native transport (--transport native)'))
    expect(() => checkWriteback({ writebackCache: true, coherent: true }, 'native')).toThrow(/exclude each other/)
    expect(() => checkWriteback({ writebackCache: true, revalidate: 0 }, 'native')).toThrow(/--revalidate exclude each other/)
  })
  it('opens branch files read-write for write-only opens and without O_APPEND; other flags kept', () => {
    const { O_RDONLY, O_WRONLY, O_RDWR, O_APPEND, O_TRUNC, O_CREAT, O_EXCL, O_SYNC } = fs.constants
    expect(writebackOpenFlags(O_WRONLY)).toBe(O_RDWR)
    expect(writebackOpenFlags(O_WRONLY | O_APPEND | O_TRUNC | O_SYNC)).toBe(O_RDWR | O_TRUNC | O_SYNC)
    expect(writebackOpenFlags(O_RDWR | O_APPEND | O_CREAT | O_EXCL)).toBe(O_RDWR | O_CREAT | O_EXCL)
    expect(writebackOpenFlags(O_RDONLY)).toBe(O_RDONLY)
    expect(writebackOpenFlags(O_RDONLY | O_APPEND)).toBe(O_RDONLY)
  })
})
