// Issue 7 §3 with existing stress tools, in short bounded runs: stress-ng's file-system
// stressors (directories, dentries, renames, file names, data with --verify, chmod, utime) and
// fio random writes with crc32c verification over files that start in a lower branch (so every
// job begins with a copy-up). Each run has a hard time bound; the daemon must survive.
import { execFileSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { describe, expect, it } from 'vitest'
import { CLI, fuseUnavailable, transportUnderTest } from '../helpers/mount.js'
import { useMount, type Mounted } from '../helpers/union.js'

const has = (tool: string): boolean => { try { execFileSync(tool, ['--version'], { stdio: 'ignore' }); return true } catch { return false } }

async function daemonAlive(m: Mounted): Promise<boolean> {
  const reg = (await import(path.resolve(CLI, '../../lib/daemon/registry.js'))) as typeof import('../../lib/daemon/registry.js')
  const rec = reg.readRecord(m.mnt)
  return !!rec && reg.isAlive(rec.pid)
}

describe.skipIf(fuseUnavailable())('stress-ng and fio through the mount', () => {
  const mountIt = useMount()

  it.skipIf(!has('stress-ng'))('stress-ng file-system stressors run clean for 6 s', async () => {
    const m = await mountIt({ A: {}, B: { sng: { 'lower-file': 'x\n' } } })
    const r = await m.sh('timeout -k 5 60 stress-ng --temp-path mnt/sng --dir 2 --dentry 2 --rename 2 --filename 1 --filename-opts posix '
      + '--hdd 2 --hdd-bytes 8M --verify --chmod 1 --utime 1 --timeout 6s --metrics-brief 2>&1')
    process.stdout.write(`stress-ng:\n${r.stdout.split('\n').filter((l) => /metrc: .*\d+\s+\d/.test(l)).join('\n')}\n`)
    expect(r.code, r.stdout).toBe(0)
    expect(r.stdout).toMatch(/successful run completed/)
    // fuse-native (libfuse 2): the hdd stressor unlinks each file while it is open, and libfuse
    // keeps it as .fuse_hiddenN until RELEASE, which the kernel sends asynchronously after the
    // close; the stressor's last rmdir can come first and fail with ENOTEMPTY (docs/design.md,
    // "Limits"). The native transport keeps unlinked open files without a name.
    const known = transportUnderTest() === 'fuse-native' ? /^stress-ng: fail: .*hdd: rmdir '[^']*' failed, errno=39 \(Directory not empty\)$/ : undefined
    expect(r.stdout.split('\n').filter((l) => !known?.test(l)).join('\n')).not.toMatch(/fail|error/i)
    expect(await daemonAlive(m)).toBe(true)
    await m.ok('rm -rf mnt/sng/tmp-* && ls mnt/sng')
    expect(await m.ok('ls -A mnt/sng')).toBe('lower-file\n')
  }, 90_000)

  it.skipIf(!has('fio'))('fio random writes with verify=crc32c over files copied up from a lower branch', async () => {
    const m = await mountIt({ A: {}, B: { fio: {} } }, {
      prepare: (fx) => {
        for (let j = 0; j < 4; j++) fs.writeFileSync(`${fx.dir('B')}/fio/v.${j}.0`, Buffer.alloc(16 << 20, `lower ${j} `))
      },
    })
    const r = await m.sh('timeout -k 5 90 fio --name=v --directory=mnt/fio --size=16m --numjobs=4 --rw=randwrite --bs=4k '
      + '--ioengine=psync --verify=crc32c --do_verify=1 --verify_fatal=1 --fsync_on_close=1 --group_reporting --output-format=json')
    expect(r.code, r.stderr).toBe(0)
    const job = JSON.parse(r.stdout.slice(r.stdout.indexOf('{'))).jobs[0]
    process.stdout.write(`fio: ${job.write.total_ios} writes, ${job.read.total_ios} verify reads, error ${job.error}\n`)
    expect(job.error).toBe(0)
    expect(job.write.total_ios).toBe(4 * 4096)
    expect(job.read.total_ios).toBe(4 * 4096)
    expect(await daemonAlive(m)).toBe(true)
    await m.unmount()
    // Each file went up once, whole: 16 MiB in the rw branch, the lower untouched (useMount).
    for (let j = 0; j < 4; j++) expect(fs.statSync(`${m.dir('A')}/fio/v.${j}.0`).size).toBe(16 << 20)
  }, 120_000)
})
