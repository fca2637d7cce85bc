// The init layer: what it holds (pure), and how it is written on disk.
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { hostsFile, initLayerEntries, resolvConfFile, writeInitLayer } from '../../../lib/launcher/init-layer.js'

describe('initLayerEntries', () => {
  it('holds /etc/hosts, /etc/hostname, /etc/resolv.conf and the mount points, parents first', () => {
    const entries = initLayerEntries({ hostname: 'box', net: 'host', hostResolvConf: 'nameserver 10.0.0.1\n' })
    expect(entries.map((e) => `${e.kind} ${e.path}`)).toEqual([
      'dir /etc', 'file /etc/hosts', 'file /etc/hostname', 'file /etc/resolv.conf',
      'dir /proc', 'dir /dev', 'dir /sys', 'dir /tmp',
    ])
    const byPath = new Map(entries.map((e) => [e.path, e]))
    expect(byPath.get('/etc/hostname')).toMatchObject({ content: 'box\n', mode: 0o644 })
    expect(byPath.get('/etc/resolv.conf')).toMatchObject({ content: 'nameserver 10.0.0.1\n' })
    expect(byPath.get('/tmp')).toMatchObject({ mode: 0o1777, uid: 0, gid: 0 })
    expect(byPath.get('/proc')).toMatchObject({ mode: 0o555 })
  })
  it("keeps the image's attributes for directories the image has", () => {
    const mtime = new Date(1_000_000_000_000)
    const entries = initLayerEntries({
      hostname: 'box', net: 'host',
      imageDir: (p) => (p === '/etc' ? { mode: 0o40750, uid: 3, gid: 4, mtime } : undefined),
    })
    expect(entries[0]).toEqual({ kind: 'dir', path: '/etc', mode: 0o750, uid: 3, gid: 4, mtime })
    expect(entries.find((e) => e.path === '/dev')).toEqual({ kind: 'dir', path: '/dev', mode: 0o755, uid: 0, gid: 0 })
  })
})

describe('file contents', () => {
  it('hosts: loopback names and the host name', () => {
    const h = hostsFile('web')
    expect(h.split('\n')[0]).toBe('127.0.0.1\tlocalhost')
    expect(h).toContain('\n127.0.1.1\tweb\n')
    expect(h.endsWith('\n')).toBe(true)
  })
  it("resolv.conf: the host's with the host network, no name server with --net none", () => {
    expect(resolvConfFile('host', 'nameserver 1.1.1.1')).toBe('nameserver 1.1.1.1\n')
    expect(resolvConfFile('host', undefined)).toMatch(/^#/)
    expect(resolvConfFile('none', 'nameserver 1.1.1.1\n')).not.toContain('nameserver 1.1.1.1')
  })
})

describe('writeInitLayer', () => {
  let dir: string | undefined
  afterEach(() => { if (dir) fs.rmSync(dir, { recursive: true, force: true }) })

  it('writes the entries with their modes, replacing stale ones and leaving other files alone', async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'layerfs-init-'))
    const layer = path.join(dir, 'init')
    fs.mkdirSync(path.join(layer, 'etc'), { recursive: true })
    fs.writeFileSync(path.join(layer, 'etc/hostname'), 'stale\n')
    fs.writeFileSync(path.join(layer, 'etc/extra'), 'mine\n')
    const mtime = new Date(1_500_000_000_000)
    await writeInitLayer(layer, initLayerEntries({
      hostname: 'box', net: 'none',
      imageDir: (p) => (p === '/etc' ? { mode: 0o40755, uid: 0, gid: 0, mtime } : undefined),
    }))
    expect(fs.readFileSync(path.join(layer, 'etc/hostname'), 'utf8')).toBe('box\n')
    expect(fs.readFileSync(path.join(layer, 'etc/extra'), 'utf8')).toBe('mine\n')
    expect(fs.readFileSync(path.join(layer, 'etc/hosts'), 'utf8')).toContain('127.0.1.1\tbox')
    expect(fs.statSync(path.join(layer, 'etc/hosts')).mode & 0o7777).toBe(0o644)
    expect(fs.statSync(path.join(layer, 'tmp')).mode & 0o7777).toBe(0o1777)
    expect(fs.statSync(path.join(layer, 'proc')).mode & 0o7777).toBe(0o555)
    expect(fs.statSync(path.join(layer, 'etc')).mtimeMs).toBe(mtime.getTime())
    expect(fs.readdirSync(layer).sort()).toEqual(['dev', 'etc', 'proc', 'sys', 'tmp'])
  })
})
