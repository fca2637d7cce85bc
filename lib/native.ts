// The one loader of layerfs's native addon (native/layerfs_fuse.c, built at install by
// scripts/build-native.mjs). The native FUSE transport needs it (lib/fuse/kernel/addon.ts);
// lib/fs.ts uses its lstat when present. Without it everything works, on fuse-native and with
// Node's own lstat. Imports nothing of layerfs: lib/fs.ts depends on it.
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'

// lib/ in the sources (tests), dist/lib/ once built.
const CANDIDATES = ['../native/build/Release/layerfs_fuse.node', '../../native/build/Release/layerfs_fuse.node']

let loaded: object | Error | undefined

/** The addon's exports, or the Error that loading it gave (not built, built for another Node). */
export function nativeAddon(): object | Error {
  if (loaded === undefined) {
    const require = createRequire(import.meta.url)
    for (const rel of CANDIDATES) {
      try {
        loaded = require(fileURLToPath(new URL(rel, import.meta.url))) as object
        break
      } catch (e) {
        loaded = e as Error
        if ((e as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND') break // there, but unloadable: say why
      }
    }
  }
  return loaded!
}
