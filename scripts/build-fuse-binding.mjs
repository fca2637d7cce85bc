#!/usr/bin/env node
// Builds fuse-native's C binding with two fixes and installs it where fuse-native loads it
// first (node_modules/fuse-native/build/Release/fuse.node, ahead of its prebuilds):
//  1. utimens: fuse-native 2.2.6 passes the atime twice (`FUSE_UINT64_TO_INTS_ARGV(l->atime, 5)`),
//     so every mtime set through the mount (cp -a, tar x, touch -d) became the atime;
//  2. flag_utime_omit_ok: without it libfuse 2.9 drops `touch -m`/`touch -a` (one time given);
//     with it UTIME_NOW arrives as the current time and UTIME_OMIT as a sentinel the adapter reads.
// Runs at `npm install` (postinstall). When it cannot build (no compiler), it says so and the
// prebuilt binding stays in use: lib/fuse/binding.ts reports which one is loaded.
import { execFile } from 'node:child_process'
import { cp, mkdir, readFile, writeFile, rm } from 'node:fs/promises'
import { createRequire } from 'node:module'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

const root = fileURLToPath(new URL('..', import.meta.url))
const require = createRequire(root + 'package.json')
const run = promisify(execFile)
const fuseDir = path.dirname(require.resolve('fuse-native/package.json'))
const work = path.join(root, 'build', 'fuse-binding')

/** The source fixes: [what fuse-native 2.2.6 has, what it must be]. Each must match once. */
const FIXES = [
  ['  FUSE_UINT64_TO_INTS_ARGV(l->atime, 3)\n  FUSE_UINT64_TO_INTS_ARGV(l->atime, 5)\n',
   '  FUSE_UINT64_TO_INTS_ARGV(l->atime, 3)\n  FUSE_UINT64_TO_INTS_ARGV(l->mtime, 5)\n'],
  ['static uint64_t timespec_to_uint64 (const struct timespec* ts) {\n',
   'static uint64_t timespec_to_uint64 (const struct timespec* ts) {\n' +
   '  if (ts->tv_nsec == UTIME_OMIT) return LAYERFS_UTIME_OMIT_MS;\n' +
   '  if (ts->tv_nsec == UTIME_NOW) { struct timespec now; clock_gettime(CLOCK_REALTIME, &now); return (now.tv_sec * 1000) + (now.tv_nsec / 1000000); }\n'],
  ['  if (implemented[op_init]) ops.init = fuse_native_init;\n',
   '  if (implemented[op_init]) ops.init = fuse_native_init;\n  ops.flag_utime_omit_ok = 1;\n'],
  ['#include <fuse.h>\n', '#include <fuse.h>\n#include <time.h>\n#include <sys/stat.h>\n/* 2^53 - 1: above any real time in ms, exact in a JS number. */\n#define LAYERFS_UTIME_OMIT_MS 9007199254740991ULL\n'],
]

async function main() {
  let src = await readFile(path.join(fuseDir, 'fuse-native.c'), 'utf8')
  for (const [from, to] of FIXES) {
    if (src.split(from).length !== 2) throw new Error(`fuse-native.c does not have the expected text: ${JSON.stringify(from.slice(0, 60))}`)
    src = src.replace(from, to)
  }
  await rm(work, { recursive: true, force: true })
  await mkdir(work, { recursive: true })
  await writeFile(path.join(work, 'fuse-native.c'), src)
  await cp(path.join(fuseDir, 'semaphore.h'), path.join(work, 'semaphore.h'))
  const napiMacros = path.dirname(require.resolve('napi-macros/package.json', { paths: [fuseDir] }))
  const fuseHeaders = path.join(path.dirname(require.resolve('fuse-shared-library-linux/package.json', { paths: [fuseDir] })), 'libfuse', 'include')
  await writeFile(path.join(work, 'binding.gyp'), JSON.stringify({
    targets: [{
      target_name: 'fuse',
      include_dirs: [napiMacros, fuseHeaders],
      libraries: ['-l:libfuse.so.2'], // Debian's libfuse2, as the prebuilt binding uses
      sources: ['fuse-native.c'],
      cflags: ['-g', '-O3', '-Wall', '-Wno-unused-result'],
    }],
  }, null, 2))
  const gyp = path.join(path.dirname(path.dirname(process.env.npm_execpath ?? '/usr/lib/node_modules/npm/bin/npm-cli.js')), 'node_modules', 'node-gyp', 'bin', 'node-gyp.js')
  // Build against the headers of the running Node (no download: this machine has no network).
  const nodedir = process.env.npm_config_nodedir || path.resolve(path.dirname(process.execPath), '..')
  await run(process.execPath, [gyp, 'rebuild', '--silent', `--nodedir=${nodedir}`], { cwd: work, maxBuffer: 16 << 20 })
  await mkdir(path.join(fuseDir, 'build', 'Release'), { recursive: true })
  await cp(path.join(work, 'build', 'Release', 'fuse.node'), path.join(fuseDir, 'build', 'Release', 'fuse.node'))
  await writeFile(path.join(fuseDir, 'build', 'Release', 'LAYERFS_PATCHED'), 'utimens mtime fix, flag_utime_omit_ok\n')
  console.log('layerfs: built the fixed fuse-native binding')
}

main().catch((e) => {
  console.warn(`layerfs: warning: could not build the fixed fuse-native binding (${String(e.message).split('\n')[0]});` +
    ' using the prebuilt one, whose utimens loses mtimes (cp -a, tar x)')
})
