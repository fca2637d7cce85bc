// layerfs run: a command in its own mount and PID namespaces on a busybox rootfs, through the
// CLI and the API. Asserts the view from inside, the rw branch on disk, the untouched image,
// exit codes, signals, and that nothing stays mounted whatever way the command ends.
import { spawn, type ChildProcess } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { hashTree, upperSnapshot } from '../helpers/fixture.js'
import { CLI, cli, fuseUnavailable, run, transportUnderTest } from '../helpers/mount.js'
import { busyboxRootfs, busyboxUnavailable, debootstrapRootfs, debootstrapUnavailable } from '../helpers/rootfs.js'
import { buildOciLayout } from '../helpers/image.js'

const skip = fuseUnavailable() ?? busyboxUnavailable()
/** The writeback cache needs the native transport (the suite also runs over fuse-native). */
const NATIVE = transportUnderTest() === 'native'
if (skip) process.stderr.write(`launcher tests skipped: ${skip}\n`)

/** Mounts left by `layerfs run` (its mount points are $TMPDIR/layerfs-run-*\/root). */
function runMounts(): string[] {
  return fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')
    .map((l) => l.split(' ')[4] ?? '').filter((p) => p.includes('/layerfs-run-'))
}
const runDirs = (): string[] => fs.readdirSync(os.tmpdir()).filter((n) => n.startsWith('layerfs-run-'))

/** Last resort in afterEach: nothing a test started may stay mounted. */
async function unmountLeftovers(): Promise<void> {
  for (const m of runMounts().reverse()) await run('umount', ['-l', m])
}

function waitFor(child: ChildProcess, text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let seen = ''
    child.stdout!.on('data', (d: Buffer) => {
      seen += d.toString()
      if (seen.includes(text)) resolve()
    })
    child.once('exit', () => reject(new Error(`exited before printing '${text}': ${seen}`)))
  })
}

function exitOf(child: ChildProcess): Promise<{ code: number | null; stdout: string; stderr: string }> {
  let stdout = ''
  let stderr = ''
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()))
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()))
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, stdout, stderr })))
}

const childrenOf = (pid: number): number[] =>
  fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number)

/** The host pid of a process's child whose command line contains `word`. */
function childWith(pid: number, word: string): number | undefined {
  return childrenOf(pid).find((k) => {
    try {
      return fs.readFileSync(`/proc/${k}/cmdline`, 'utf8').split('\0').includes(word)
    } catch {
      return false
    }
  })
}

describe.skipIf(skip)('layerfs run (busybox rootfs)', () => {
  let image: string
  let imageHash: string
  let work: string
  beforeAll(async () => {
    image = await busyboxRootfs()
    imageHash = hashTree(image)
  })
  beforeEach(() => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'layerfs-launcher-test-'))
  })
  afterEach(async () => {
    await unmountLeftovers()
    expect(runMounts()).toEqual([])
    fs.rmSync(work, { recursive: true, force: true })
    expect(hashTree(image)).toBe(imageHash) // the image is byte-identical, whatever the test did
  })

  it('runs CMD as PID 1 seeing only its own processes, its host name, the init layer and no host file', async () => {
    const r = await cli(['run', '--hostname', 'box', image, '--', '/bin/sh', '-c',
      'echo pid=$$; ps -o pid,comm; hostname; cat /etc/hostname; grep box /etc/hosts; ls /; ls /..; ls /dev; ' +
      'touch /sys/x 2>/dev/null || echo sys-ro; cat /proc/1/comm; echo $PATH'])
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    const out = r.stdout.split('\n')
    expect(out[0]).toBe('pid=1')
    // ps: a header, the shell (PID 1) and ps itself, nothing of the host.
    expect(out.slice(1, 4).map((l) => l.trim().split(/\s+/))).toEqual([['PID', 'COMMAND'], ['1', 'sh'], [expect.any(String), 'ps']])
    expect(out.slice(4, 7)).toEqual(['box', 'box', '127.0.1.1\tbox'])
    const root = ['bin', 'dev', 'etc', 'proc', 'root', 'sys', 'tmp', 'var']
    expect(out.slice(7, 7 + 2 * root.length)).toEqual([...root, ...root]) // '/..' is '/' again: the host root is gone
    const dev = out.slice(7 + 2 * root.length, out.indexOf('sys-ro'))
    for (const n of ['null', 'zero', 'full', 'random', 'urandom', 'tty']) expect(dev).toContain(n)
    expect(out.slice(out.indexOf('sys-ro') + 1, -1)).toEqual(['sh', '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'])
  })

  it('puts exactly the delta in the rw branch, nothing of the init layer, and returns the exit code', async () => {
    const upper = path.join(work, 'upper')
    const init = path.join(work, 'init')
    const r = await cli(['run', '--upper', upper, '--init-layer', init, '--hostname', 'box', image, '--', '/bin/sh', '-c',
      'set -e; echo new > /new.txt; mkdir -p /srv/app; echo x > /srv/app/f; rm /etc/motd; rm -r /var/log; ' +
      'echo more >> /etc/passwd; cat /etc/hosts > /dev/null; cat /etc/resolv.conf > /dev/null; exit 7'])
    expect(r.stderr).toBe('')
    expect(r.code).toBe(7)
    const passwd = fs.readFileSync(path.join(image, 'etc/passwd'), 'utf8') + 'more\n'
    expect(upperSnapshot(upper)).toEqual([
      'etc/', 'etc/.wh.motd = ""', `etc/passwd = ${JSON.stringify(passwd)}`,
      'new.txt = "new\\n"',
      'srv/', 'srv/app/', 'srv/app/f = "x\\n"',
      'var/', 'var/.wh.log = ""',
    ])
    // The init layer was generated where asked, kept, and is not in the rw branch.
    expect(fs.readFileSync(path.join(init, 'etc/hostname'), 'utf8')).toBe('box\n')
    expect(fs.existsSync(path.join(upper, 'etc/hosts'))).toBe(false)
    expect(fs.existsSync(path.join(upper, 'etc/hostname'))).toBe(false)
    expect(fs.existsSync(path.join(upper, 'proc'))).toBe(false)
    expect(runDirs()).toEqual([])
  })

  it('passes stdin through and removes the temporary rw branch, or keeps it with --keep', async () => {
    const r = await run(process.execPath, [CLI, 'run', image, '--', 'sh', '-c', 'read l; echo "got $l"; echo t > /tmp/t'], { input: 'hello\n' })
    expect(r).toMatchObject({ code: 0, stdout: 'got hello\n' })
    expect(runDirs()).toEqual([])
    const k = await cli(['run', '--keep', image, '--', 'sh', '-c', 'echo kept > /k'])
    expect(k.code).toBe(0)
    const kept = /kept the rw branch at (\S+)/.exec(k.stderr)?.[1]
    expect(kept).toBeDefined()
    expect(fs.readFileSync(path.join(kept!, 'k'), 'utf8')).toBe('kept\n')
    fs.rmSync(path.dirname(kept!), { recursive: true, force: true })
  })

  it.skipIf(!NATIVE)("--writeback-cache from the CLI: the container's root is served with the writeback cache; what CMD wrote is in the rw branch", async () => {
    const upper = path.join(work, 'upper')
    // CMD stays up long enough for the test to ask the daemon.
    const ran = cli(['run', '--writeback-cache', '--upper', upper, image, '--', 'sh', '-c', 'echo one > /f; echo two >> /f; sleep 3; cat /f'])
    let mnt: string | undefined
    for (let i = 0; i < 100 && !(mnt = runMounts()[0]); i++) await new Promise((r) => setTimeout(r, 50))
    const st = JSON.parse((await cli(['status', '--json', mnt!])).stdout)
    const r = await ran
    expect(st.protocol.writebackCache).toBe(true)
    expect([r.code, r.stdout, r.stderr]).toEqual([0, 'one\ntwo\n', ''])
    expect(fs.readFileSync(path.join(upper, 'f'), 'utf8')).toBe('one\ntwo\n')
  })

  it('isolates the network with --net none (only loopback)', async () => {
    const r = await cli(['run', '--net', 'none', image, '--', 'sh', '-c', 'ls /sys/class/net; cat /etc/resolv.conf'])
    expect(r.code).toBe(0)
    expect(r.stdout).toBe('lo\n# layerfs run --net none: no network, no name servers\n')
  })

  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    it(`forwards ${sig} to CMD and returns its exit code`, async () => {
      const child = spawn(process.execPath, [CLI, 'run', image, '--', 'sh', '-c',
        `trap 'echo got ${sig}; exit 42' ${sig.slice(3)}; echo ready; sleep 60 & wait`], { stdio: ['ignore', 'pipe', 'pipe'] })
      const done = exitOf(child)
      await waitFor(child, 'ready')
      child.kill(sig)
      const r = await done
      expect(r.stdout).toBe(`ready\ngot ${sig}\n`)
      expect(r.code).toBe(42)
      expect(runDirs()).toEqual([])
    })
  }

  it("cleans up after SIGKILL of CMD (exit 137) and after SIGKILL of the launcher's child", async () => {
    for (const victim of ['cmd', 'stage1'] as const) {
      const child = spawn(process.execPath, [CLI, 'run', image, '--', 'sh', '-c', 'echo ready; sleep 60'], { stdio: ['ignore', 'pipe', 'pipe'] })
      const done = exitOf(child)
      await waitFor(child, 'ready')
      expect(runMounts()).toHaveLength(1)
      const stage1 = childWith(child.pid!, 'layerfs-stage1')!
      const init = childrenOf(stage1)[0]!
      process.kill(victim === 'cmd' ? init : stage1, 'SIGKILL')
      const r = await done
      expect(r.code).toBe(137)
      expect(runMounts()).toEqual([])
      expect(runDirs()).toEqual([])
    }
  })

  it('refuses bad input with one line and mounts nothing', async () => {
    const cases: [string[], number, RegExp][] = [
      [['run', image, '--', 'no-such-program'], 127, /^layerfs: 'no-such-program' not found in the image \(PATH .*\)\n$/],
      [['run', image, '--', '/opt/x'], 127, /^layerfs: '\/opt\/x' not found in the image\n$/],
      [['run', image], 125, /^layerfs: no command given \(usage: .*\)\n$/],
      [['run', path.join(work, 'missing'), '--', 'sh'], 125, /^layerfs: branch '.*missing' does not exist\n$/],
      [['run', `${image}=rw`, '--', 'sh'], 125, /^layerfs: image branch '.*' is rw: .*--upper.*\n$/],
      [['run', '--hostname', 'bad name', image, '--', 'sh'], 125, /^layerfs: 'bad name' is not a valid host name\n$/],
    ]
    for (const [args, code, line] of cases) {
      const r = await cli(args)
      expect({ args, code: r.code, stderr: r.stderr }).toMatchObject({ code, stderr: expect.stringMatching(line) })
      expect(runMounts()).toEqual([])
    }
    const nobody = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const c = spawn(process.execPath, [CLI, 'run', image, '--', 'sh'], { uid: 65534, gid: 65534, stdio: ['ignore', 'pipe', 'pipe'] })
      let stderr = ''
      c.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
      c.once('exit', (code) => resolve({ code, stderr }))
    })
    expect(nobody).toEqual({ code: 125, stderr: expect.stringMatching(/^layerfs: layerfs run needs root: .*\n$/) })
    expect(runDirs()).toEqual([])
  })

  it('API: run() returns the exit code; stdio goes where asked', async () => {
    // The built API (its daemon is the built CLI next to it).
    const { run: runApi } = (await import(path.resolve(CLI, '../../lib/index.js'))) as typeof import('../../lib/index.js')
    const out = path.join(work, 'out')
    const fd = fs.openSync(out, 'w')
    try {
      const code = await runApi({ branches: image, cmd: ['sh', '-c', 'echo $$ $(hostname); exit 5'], hostname: 'api', stdio: ['ignore', fd, fd] })
      expect(code).toBe(5)
    } finally {
      fs.closeSync(fd)
    }
    expect(fs.readFileSync(out, 'utf8')).toBe('1 api\n')
    await expect(runApi({ branches: image, cmd: [] })).rejects.toThrow(/no command given/)
    expect(runMounts()).toEqual([])
    expect(runDirs()).toEqual([])
  })

  it.skipIf(!NATIVE)("API: run({ writebackCache }) serves the container's root with the writeback cache; CMD's writes are in the rw branch after", async () => {
    const { run: runApi, mountStatus } = (await import(path.resolve(CLI, '../../lib/index.js'))) as typeof import('../../lib/index.js')
    const upper = path.join(work, 'wb-upper')
    let served: Promise<boolean | undefined> | undefined
    const wb = await runApi({
      branches: image, cmd: ['sh', '-c', 'i=0; while [ $i -lt 200 ]; do echo line $i; i=$((i+1)); done > /log; sleep 1'],
      upper, writebackCache: true, stdio: 'ignore',
      onReady: (info) => { served = mountStatus(info.mountpoint).then((s) => s[0]?.protocol?.writebackCache) },
    })
    expect([wb, await served]).toEqual([0, true])
    expect(fs.readFileSync(path.join(upper, 'log'), 'utf8').split('\n')).toHaveLength(201)
    expect(runMounts()).toEqual([])
  })
})

const skipDebootstrap = fuseUnavailable() ?? debootstrapUnavailable()
if (skipDebootstrap) process.stderr.write(`launcher debootstrap test skipped: ${skipDebootstrap}\n`)

describe.skipIf(skipDebootstrap)('layerfs run (debootstrap minbase rootfs)', () => {
  let work: string
  beforeEach(() => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'layerfs-launcher-test-'))
  })
  afterEach(async () => {
    await unmountLeftovers()
    fs.rmSync(work, { recursive: true, force: true })
  })

  it('runs apt-get, dpkg and a pipeline; the rw branch holds only the delta', async () => {
    const image = await debootstrapRootfs()
    const before = hashTree(image)
    const upper = path.join(work, 'upper')
    const r = await cli(['run', '--upper', upper, image, '--', '/bin/sh', '-c',
      'apt-get --version | head -1; dpkg -l | grep -c "^ii"; echo hi > /root/new; rm /etc/debian_version'], { timeoutMs: 120_000 })
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/^apt \d/)
    expect(fs.readFileSync(path.join(upper, 'root/new'), 'utf8')).toBe('hi\n')
    expect(fs.existsSync(path.join(upper, 'etc/.wh.debian_version'))).toBe(true)
    expect(fs.existsSync(path.join(upper, 'etc/hosts'))).toBe(false)
    expect(hashTree(image)).toBe(before)
    expect(runMounts()).toEqual([])
  }, 180_000)
})

describe.skipIf(skip)('layerfs run --image', () => {
  it('runs a command in an OCI image built from the busybox rootfs, layers kept unchanged', async () => {
    const rootfs = await busyboxRootfs()
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'layerfs-run-image-'))
    try {
      const top = path.join(tmp, 'top')
      fs.mkdirSync(path.join(top, 'etc'), { recursive: true })
      fs.writeFileSync(path.join(top, 'etc', 'greeting'), 'from the image\n')
      buildOciLayout(path.join(tmp, 'image'), [top, rootfs], { tag: 'v1' })
      const r = await cli(['run', '--image', path.join(tmp, 'image') + ':v1', '--store', path.join(tmp, 'store'), '--upper', path.join(tmp, 'upper'),
        '--', '/bin/sh', '-c', 'echo $$; cat /etc/greeting; echo new > /new'], { timeoutMs: 60_000 })
      expect(r.stderr).toBe('')
      expect(r.stdout).toBe('1\nfrom the image\n')
      expect(r.code).toBe(0)
      expect(fs.readFileSync(path.join(tmp, 'upper', 'new'), 'utf8')).toBe('new\n')
      const bad = await cli(['run', '--image', path.join(tmp, 'nope'), '--', '/bin/sh'])
      expect(bad.code).toBe(125)
      expect(bad.stderr.trim().split('\n')).toHaveLength(1)
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true })
    }
  })
})

describe.skipIf(skip)('layerfs run killed with SIGKILL', () => {
  it('takes the container and its mount down with it', async () => {
    const rootfs = await busyboxRootfs()
    const before = new Set(fs.readdirSync(os.tmpdir()))
    const marker = `sleep 4242${process.pid % 100}`
    const child = spawn(process.execPath, [CLI, 'run', rootfs, '--', '/bin/sh', '-c', marker], { stdio: 'ignore' })
    const mounted = (): boolean => fs.readFileSync('/proc/mounts', 'utf8').split('\n').some((l) => l.includes('layerfs-run-'))
    const running = async (): Promise<boolean> => (await run('pgrep', ['-f', marker])).code === 0
    for (let i = 0; i < 100 && !(await running()); i++) await new Promise((r) => setTimeout(r, 100))
    expect(await running()).toBe(true)
    child.kill('SIGKILL')
    for (let i = 0; i < 100 && ((await running()) || mounted()); i++) await new Promise((r) => setTimeout(r, 100))
    expect(await running()).toBe(false)
    expect(mounted()).toBe(false)
    // A killed launcher cannot remove its temporary dirs (nothing is mounted on them any more).
    for (const d of fs.readdirSync(os.tmpdir())) if (d.startsWith('layerfs-run-') && !before.has(d)) fs.rmSync(path.join(os.tmpdir(), d), { recursive: true, force: true })
  })
})
