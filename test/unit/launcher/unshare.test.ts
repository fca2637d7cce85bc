// The pure argv builder of `layerfs run` and the stage-2 script it carries.
import { describe, expect, it } from 'vitest'
import {
  containerEnv, CONTAINER_PATH, DEV_NODES, PIVOT_HELPER, STAGE1_NAME, STAGE1_SCRIPT, STAGE2_SCRIPT, SYSCALLS, unshareArgv,
} from '../../../lib/launcher/unshare.js'

const base = { root: '/tmp/r/root', cmd: ['/bin/sh', '-c', 'echo $$'], arch: 'x64' }

describe('unshareArgv', () => {
  it('always: PID and mount namespaces with private propagation, then stage 1 carrying stage 2', () => {
    const argv = unshareArgv(base)
    expect(argv.slice(0, 6)).toEqual(['unshare', '--pid', '--mount', '--propagation', 'private', '--'])
    expect(argv).not.toContain('--fork') // stage 1 forks, and reports a signal death as 128+N
    expect(argv.slice(6, 12)).toEqual(['/bin/sh', '-c', STAGE1_SCRIPT, STAGE1_NAME, '/bin/sh', STAGE2_SCRIPT])
    expect(argv.slice(12)).toEqual(['/tmp/r/root', '', 'host', '155', '166', PIVOT_HELPER, '--', '/bin/sh', '-c', 'echo $$'])
  })
  it('adds a UTS namespace only with a host name, a network namespace only with net none', () => {
    expect(unshareArgv(base)).not.toContain('--uts')
    expect(unshareArgv(base)).not.toContain('--net')
    const argv = unshareArgv({ ...base, hostname: 'box', net: 'none' })
    const ns = argv.slice(0, argv.indexOf('--'))
    expect(ns).toContain('--uts')
    expect(ns).toContain('--net')
    const at = argv.indexOf(STAGE2_SCRIPT) + 1
    expect(argv.slice(at, at + 3)).toEqual(['/tmp/r/root', 'box', 'none'])
  })
  it('keeps CMD arguments as they are, after the last --, even ones that look like options', () => {
    const cmd = ['ls', '--', '-la', '', 'a b', '$HOME']
    const argv = unshareArgv({ ...base, cmd })
    expect(argv.slice(argv.length - cmd.length)).toEqual(cmd)
    expect(argv[argv.length - cmd.length - 1]).toBe('--')
  })
  it('picks the syscall numbers per architecture, and none (chroot) for an unknown one', () => {
    expect(unshareArgv({ ...base, arch: 'arm64' }).slice(15, 17)).toEqual(['41', '39'])
    expect(unshareArgv({ ...base, arch: 'mips' }).slice(15, 17)).toEqual(['', ''])
    expect(SYSCALLS.x64).toEqual({ pivotRoot: 155, umount2: 166 })
  })
  it('takes another unshare and shell', () => {
    const argv = unshareArgv({ ...base, unshare: '/usr/bin/unshare', shell: '/bin/dash' })
    expect(argv[0]).toBe('/usr/bin/unshare')
    expect(argv[6]).toBe('/bin/dash')
    expect(argv[10]).toBe('/bin/dash')
  })
  it('refuses an empty command', () => {
    expect(() => unshareArgv({ ...base, cmd: [] })).toThrow(/empty command/)
  })
})

describe('stage 1', () => {
  it('traps the terminal signals instead of ignoring them, and ties the container to itself', () => {
    expect(STAGE1_SCRIPT.split('\n')[0]).toBe('trap : INT QUIT TERM HUP')
    expect(STAGE1_SCRIPT).toContain('setpriv --pdeathsig KILL --')
  })
})

describe('stage 2', () => {
  it('mounts /proc, a tmpfs /dev with the six nodes bound from the host, /sys read-only', () => {
    expect(STAGE2_SCRIPT).toMatch(/mount -t proc .* "\$root\/proc"/)
    expect(STAGE2_SCRIPT).toMatch(/mount -t tmpfs .* "\$root\/dev"/)
    expect(DEV_NODES).toEqual(['null', 'zero', 'full', 'random', 'urandom', 'tty'])
    expect(STAGE2_SCRIPT).toContain(`for d in ${DEV_NODES.join(' ')}; do`)
    expect(STAGE2_SCRIPT).toMatch(/mount -t sysfs -o ro/)
  })
  it('pivots last, through the perl helper, with chroot only as a fallback', () => {
    const pivot = STAGE2_SCRIPT.indexOf('exec perl')
    expect(pivot).toBeGreaterThan(STAGE2_SCRIPT.indexOf('/proc/sys/kernel/hostname'))
    expect(STAGE2_SCRIPT.indexOf('exec chroot')).toBeGreaterThan(pivot)
    expect(PIVOT_HELPER).toContain('syscall($pivot_nr + 0, $new, $old)')
    expect(PIVOT_HELPER).toContain('syscall($umount_nr + 0, $here, 2)') // MNT_DETACH
    expect(PIVOT_HELPER).toContain("not found in the image")
  })
})

describe('containerEnv', () => {
  it("is docker's minimal environment, not the host's", () => {
    expect(containerEnv({})).toEqual({ PATH: CONTAINER_PATH, HOME: '/root', container: 'layerfs' })
    expect(containerEnv({ hostname: 'box', term: 'xterm' })).toMatchObject({ HOSTNAME: 'box', TERM: 'xterm' })
  })
})
