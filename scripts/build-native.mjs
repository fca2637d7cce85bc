#!/usr/bin/env node
// Builds layerfs's own FUSE transport addon (native/layerfs_fuse.c) with node-gyp at install.
// When it cannot be built (no compiler, no Node headers) it says so in one line and layerfs
// uses the fuse-native transport instead (lib/fuse/kernel/addon.ts reports which is in use).
import { execFile } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

const root = fileURLToPath(new URL('..', import.meta.url))
const run = promisify(execFile)

async function main() {
  const gyp = path.join(path.dirname(path.dirname(process.env.npm_execpath ?? '/usr/lib/node_modules/npm/bin/npm-cli.js')), 'node_modules', 'node-gyp', 'bin', 'node-gyp.js')
  // Build against the headers of the running Node (no download: these machines have no network).
  const nodedir = process.env.npm_config_nodedir || path.resolve(path.dirname(process.execPath), '..')
  await run(process.execPath, [gyp, 'rebuild', '--silent', `--nodedir=${nodedir}`], { cwd: path.join(root, 'native'), maxBuffer: 16 << 20 })
  console.log('layerfs: built the native FUSE transport (native/build/Release/layerfs_fuse.node)')
}

main().catch((e) => {
  console.warn(`layerfs: warning: could not build the native FUSE transport (${String(e.stderr || e.message).trim().split('\n').slice(-3).join(' ')});` +
    ' layerfs will use fuse-native (`--transport fuse-native`)')
})
