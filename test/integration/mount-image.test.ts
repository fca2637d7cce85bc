// layerfs mount --image: an OCI layout or docker-save archive as the ro stack, from the store.
import * as fs from 'node:fs'
import * as path from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { makeFixture, upperSnapshot, type Fixture } from '../helpers/fixture.js'
import { buildDockerArchive, buildOciLayout } from '../helpers/image.js'
import { cleanupMount, cli, fuseUnavailable, mountCli, sh } from '../helpers/mount.js'

const skip = fuseUnavailable()

describe.skipIf(skip)('layerfs mount --image', () => {
  let fx: Fixture
  beforeEach(() => {
    fx = makeFixture({
      l1: { etc: { 'os-release': 'ID=base\n', motd: 'hello\n' }, bin: { sh: 'sh\n' } },
      l2: { etc: { 'os-release': 'ID=app\n', '.wh.motd': '' }, app: { run: 'run\n' } },
    })
  })
  afterEach(async () => {
    await cleanupMount(fx.mnt)
    fx.cleanup()
  })

  for (const format of ['oci', 'docker-archive'] as const) {
    it(`mounts a ${format} image with a fresh upper, and unpacks each layer once`, async () => {
      const img = format === 'oci' ? fx.dir('oci') : fx.dir('image.tar')
      if (format === 'oci') buildOciLayout(img, [fx.dir('l1'), fx.dir('l2')], { tag: 'v1' })
      else buildDockerArchive(img, [fx.dir('l1'), fx.dir('l2')], { repoTag: 'example/app:v1', work: fx.dir('w') })
      const ref = format === 'oci' ? `${img}:v1` : `${img}:example/app:v1`
      const store = fx.dir('store')
      await mountCli(['--image', ref, '--store', store, '--upper', fx.dir('upper'), fx.mnt])
      expect((await sh(`cat '${fx.mnt}/etc/os-release'; ls '${fx.mnt}/etc' '${fx.mnt}/app'`)).stdout).toBe(`ID=app\n${fx.mnt}/app:\nrun\n\n${fx.mnt}/etc:\nos-release\n`)
      const w = await sh(`echo local > '${fx.mnt}/etc/os-release' && rm '${fx.mnt}/bin/sh'`)
      expect(w.code, w.stderr).toBe(0)
      expect((await cli(['umount', fx.mnt])).code).toBe(0)
      expect(upperSnapshot(fx.dir('upper'))).toEqual(['bin/', 'bin/.wh.sh = ""', 'etc/', 'etc/os-release = "local\\n"'])
      const layers = fs.readdirSync(path.join(store, 'layers', 'sha256'))
      expect(layers).toHaveLength(2)
      // The store is untouched by writes, and a second mount reuses it (same dirs, same inodes).
      const ino = fs.statSync(path.join(store, 'layers', 'sha256', layers[0]!)).ino
      await mountCli(['--image', ref, '--store', store, fx.mnt])
      expect((await sh(`cat '${fx.mnt}/bin/sh'; touch '${fx.mnt}/x' 2>&1`)).stdout).toMatch(/^sh\n.*Read-only file system/s)
      expect(fs.statSync(path.join(store, 'layers', 'sha256', layers[0]!)).ino).toBe(ino)
    })
  }

  it('refuses a tampered image before mounting anything', async () => {
    const img = fx.dir('oci')
    const built = buildOciLayout(img, [fx.dir('l1')])
    fs.appendFileSync(path.join(img, 'blobs', 'sha256', built.digests[0]!.slice(7)), Buffer.alloc(10))
    const r = await cli(['mount', '--image', img, '--store', fx.dir('store'), '--upper', fx.dir('upper'), fx.mnt])
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/^layerfs: layer sha256:[0-9a-f]{64}: /)
    expect(r.stderr.trim().split('\n')).toHaveLength(1)
    expect(fs.readdirSync(fx.dir('store/tmp'))).toEqual([])
  })
})
