#!/usr/bin/env node
// The cost and the bound of `layerfs mount --revalidate N` (docs/control.md "Changes underneath"),
// separate from the main bench suite. Root, /dev/fuse, a built CLI (npx tsc -p .).
// Usage: flock /tmp/layerfs-fuse.lock node bench/revalidate.mjs [files=5000] [rounds=5]
import { execFile } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { fileURLToPath } from 'node:url'

const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../dist/bin/layerfs.js')
const FILES = Number(process.argv[2] ?? 5000)
const ROUNDS = Number(process.argv[3] ?? 5)
const run = (cmd, args, opts = {}) => new Promise((resolve, reject) => {
  execFile(cmd, args, { maxBuffer: 64 << 20, ...opts }, (e, stdout, stderr) => (e ? reject(new Error(`${cmd} ${args.join(' ')}: ${stderr || e.message}`)) : resolve(String(stdout))))
})
const layerfs = (...args) => run(process.execPath, [CLI, ...args])

// Python walks the tree: lstat every file and reads a tenth of them (a warm `make`-like pass).
const WALK = `
import os, sys, time
t = time.perf_counter(); n = 0
for d, dirs, files in os.walk(sys.argv[1]):
    for f in files:
        p = os.path.join(d, f); os.lstat(p); n += 1
        if n % 10 == 0:
            with open(p, 'rb') as fh: fh.read()
print(round((time.perf_counter() - t) * 1000, 1))
`

async function measure(label, mountArgs) {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'layerfs-rv-'))
  for (const d of ['A', 'B', 'mnt']) fs.mkdirSync(path.join(root, d))
  for (let i = 0; i < FILES; i++) {
    const dir = path.join(root, 'B', `d${i % 50}`)
    fs.mkdirSync(dir, { recursive: true })
    fs.writeFileSync(path.join(dir, `f${i}`), 'x'.repeat(100))
  }
  const mnt = path.join(root, 'mnt')
  await layerfs('mount', ...mountArgs, `${root}/A=rw:${root}/B=ro`, mnt)
  try {
    const cold = Number(await run('python3', ['-c', WALK, mnt]))
    const warm = []
    for (let r = 0; r < ROUNDS; r++) {
      await new Promise((res) => setTimeout(res, 1100)) // past a 1 s revalidation bound
      warm.push(Number(await run('python3', ['-c', WALK, mnt])))
    }
    // The bound: a file added directly in the ro branch, polled through the mount.
    fs.writeFileSync(path.join(root, 'B', 'd0', 'late'), 'late')
    const t0 = Date.now()
    let seen = -1
    while (Date.now() - t0 < 12000) {
      if (await run('python3', ['-c', `import os,sys; print(os.path.exists(sys.argv[1]))`, path.join(mnt, 'd0', 'late')]).then((s) => s.trim() === 'True')) { seen = Date.now() - t0; break }
      await new Promise((res) => setTimeout(res, 50))
    }
    const status = JSON.parse(await layerfs('status', mnt, '--json'))
    const ops = status.operations
    const median = [...warm].sort((a, b) => a - b)[Math.floor(warm.length / 2)]
    console.log(`${label.padEnd(18)} cold ${String(cold).padStart(7)} ms  warm median ${String(median).padStart(7)} ms  ` +
      `daemon ops: getattr ${ops.getattr ?? 0}, open ${ops.open ?? 0}, read ${ops.read ?? 0}  ` +
      `new file seen after: ${seen < 0 ? 'not within 12 s' : `${seen} ms`}`)
  } finally {
    await layerfs('umount', mnt).catch(() => run('umount', ['-l', mnt]))
    fs.rmSync(root, { recursive: true, force: true })
  }
}

console.log(`${FILES} files in 50 dirs, walk = lstat all + read 10%, ${ROUNDS} warm rounds 1.1 s apart (${os.cpus().length} CPUs, ${os.release()})`)
await measure('default (60 s)', [])
await measure('--revalidate 1', ['--revalidate', '1'])
await measure('--revalidate 5', ['--revalidate', '5'])
