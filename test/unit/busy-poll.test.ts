// The native transport's busy polling (native/layerfs_fuse.c), on the addon's real request loop
// fed through a FIFO instead of /dev/fuse: messages sent back to back are read while polling
// (no sleep), sparse ones close the window, and back-to-back ones open it again.
import { execFileSync, spawn } from 'node:child_process'
import * as fs from 'node:fs'
import { afterEach, describe, expect, it } from 'vitest'
import { tryNativeFuse } from '../../lib/fuse/kernel/addon.js'
import { makeFixture, type Fixture } from '../helpers/fixture.js'

const addon = tryNativeFuse()

/** Writes one byte per message, phase by phase: [byte, count, gap in seconds]. */
const WRITER = `
import os, sys, time, json
fd = os.open(sys.argv[1], os.O_WRONLY)
for byte, count, gap in json.loads(sys.argv[2]):
    time.sleep(0.05)  # the reader empties the queue and goes to sleep
    for i in range(count):
        os.write(fd, byte.encode())
        time.sleep(gap)
`

let fx: Fixture | undefined
afterEach(() => fx?.cleanup())

describe.skipIf(!addon)('busy polling of the request loop', () => {
  it('reads back-to-back messages without sleeping, closes the window under sparse ones, reopens it', async () => {
    fx = makeFixture({})
    const fifo = `${fx.root}/fifo`
    execFileSync('mkfifo', [fifo])
    const fd = fs.openSync(fifo, fs.constants.O_RDWR | fs.constants.O_NONBLOCK)
    const buf = Buffer.alloc(4096)
    // The stats after the last message of each phase (a message is one byte; a read may hold several).
    const last = new Map<string, readonly number[]>()
    let got = 0
    let session: object | undefined
    const total = 200 + 16 + 200
    const done = new Promise<void>((resolve) => {
      session = addon!.start(fd, buf, (n) => {
        if (n <= 0) return
        got += n
        last.set(buf.toString('latin1', n - 1, n), addon!.pollStats(session!))
        if (got === total) resolve()
      }, 1000)
    })
    const writer = spawn('python3', ['-c', WRITER, fifo, JSON.stringify([['a', 200, 200e-6], ['b', 16, 0.02], ['c', 200, 200e-6]])], { stdio: 'inherit' })
    try {
      await done
    } finally {
      addon!.stop(session!)
      writer.kill()
      fs.closeSync(fd)
    }
    const [a, b, c] = ['a', 'b', 'c'].map((k) => last.get(k)!) // [window µs, bound µs, caught, returns]
    expect(a[1]).toBe(1000)
    // ~250 µs apart (far more than the reader needs per message), inside the window: read while
    // polling, nearly all (the first woke the loop). Not all: a loaded host deschedules the
    // writer or the reader for longer than the window now and then (the writes then wait in
    // the FIFO and are read at once, several in one read). Never polling, none would be.
    expect(a[2]).toBeGreaterThan(20)
    // 20 ms apart: none caught, and the window halved at each wake-up down to nothing.
    expect(b[2]).toBe(a[2])
    expect(b[0]).toBe(0)
    // Back to back again: the window grows back (doubling from 4 µs at each short wait).
    expect(c[0]).toBeGreaterThan(0)
    expect(c[2]).toBeGreaterThan(b[2]!)
  })
})
