// V8 settings for the mount daemon, set when it starts. A daemon runs each kind of request rarely
// at first: V8 runs a function in its interpreter until it has been called often enough to tier
// up, so a fresh mount's first renames and copy-ups paid the interpreter for every step.
// --always-sparkplug gives every function baseline (non-optimized machine) code at its first
// compile instead. In the bench, rename of a lower file went from 1,694 to 838 µs and cold lookups
// from 65 to 59 µs (median), for ~5 MiB more peak RSS (docs/benchmarks.md §8).
import { setFlagsFromString } from 'node:v8'

/**
 * Applies the daemon's V8 flags; returns those it set. Functions compiled from then on get them
 * (V8 compiles lazily, at first call), so it runs before the core does anything.
 * LAYERFS_SPARKPLUG=0 leaves V8 as it is (to measure what it saves).
 */
export function tuneV8ForDaemon(env: NodeJS.ProcessEnv = process.env): readonly string[] {
  if (env.LAYERFS_SPARKPLUG === '0') return []
  const flags = ['--always-sparkplug']
  for (const f of flags) setFlagsFromString(f)
  return flags
}
