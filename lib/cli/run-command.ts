// `layerfs run`: the command line for lib/launcher/run.ts (options in, exit code out).
import type { Command } from 'commander'
import { ConfigError } from '../options.js'
import { run } from '../launcher/run.js'
import type { NetMode } from '../launcher/unshare.js'
import { branchSpec, imageStack } from '../image/image-stack.js'
import { unpackProgress } from './image-progress.js'

export interface RunCommandOptions {
  upper?: string
  hostname?: string
  initLayer?: string
  keep?: boolean
  net?: string
  image?: string
  store?: string
  writebackCache?: boolean
}

export const RUN_HELP_FOOTER = `
The image branches are used read-only; every change lands in the rw branch (--upper, or a
temporary directory removed afterwards unless --keep). An init layer with /etc/hosts,
/etc/hostname, /etc/resolv.conf and the mount points sits between the two.
CMD runs as PID 1 in new mount and PID namespaces, rooted in the merged view, with a fresh
/proc, a minimal /dev and a read-only /sys. Needs root. Exit code: CMD's (128+N when killed
by signal N), 125 when the container could not be set up, 127 when CMD is not in the image.

Examples:
  layerfs run ./layers/app:./layers/base -- /bin/sh -c 'echo $$; ps'
  layerfs run --upper ./ctr1 --hostname web --net none ./rootfs -- /bin/sh
`

/** layerfs run [options] BRANCHES -- CMD [ARGS...]: resolves with the exit code. */
export async function runCommand(branches: string, cmd: string[], opts: RunCommandOptions): Promise<number> {
  let keptUpper: string | undefined
  try {
    const code = await run({
      branches, cmd,
      upper: opts.upper, hostname: opts.hostname, initLayer: opts.initLayer, keep: !!opts.keep,
      net: opts.net as NetMode | undefined, writebackCache: !!opts.writebackCache,
      onReady: (info) => { if (opts.keep && opts.upper === undefined) keptUpper = info.upper },
    })
    if (keptUpper !== undefined) process.stderr.write(`layerfs: kept the rw branch at ${keptUpper}\n`)
    return code
  } catch (e) {
    process.stderr.write(`layerfs: ${e instanceof ConfigError ? e.message : String((e as Error)?.message ?? e)}\n`)
    return e instanceof ConfigError && e.code === 'ENOENT' && /not found in the image/.test(e.message) ? 127 : 125
  }
}

/**
 * BRANCHES and CMD, or with --image the image's layers (brought into the store, verified) and
 * CMD: commander hands the first word after `--` to [branches] when BRANCHES is left out.
 */
async function stackOf(branches: string | undefined, cmd: string[], opts: RunCommandOptions): Promise<{ branches: string; cmd: string[] } | undefined> {
  if (opts.image === undefined) {
    if (branches !== undefined) return { branches, cmd }
    process.stderr.write('layerfs: no BRANCHES (or --image) given\n')
    return undefined
  }
  const progress = unpackProgress()
  try {
    const { branches: layers } = await imageStack(opts.image, { store: opts.store, onProgress: progress.onProgress })
    return { branches: branchSpec(layers), cmd: branches === undefined ? cmd : [branches, ...cmd] }
  } catch (e) {
    process.stderr.write(`layerfs: ${e instanceof ConfigError ? e.message : String((e as Error)?.message ?? e)}\n`)
    return undefined
  } finally {
    progress.done()
  }
}

/** Adds `layerfs run` to the program. */
export function registerRunCommand(program: Command): void {
  program
    .command('run')
    .description('run CMD in its own mount and PID namespaces on top of BRANCHES (top first)')
    .argument('[branches]', 'the image, top first, e.g. ./layers/app:./layers/base (used read-only)')
    .argument('[cmd...]', 'after --: the command and its arguments')
    .option('--upper <dir>', 'the rw branch (created if missing, kept); default: a temporary one')
    .option('--hostname <name>', 'a UTS namespace with this host name')
    .option('--init-layer <dir>', 'generate the init layer in DIR (kept); default: a temporary one')
    .option('--keep', 'keep the temporary rw branch for inspection')
    .option('--net <mode>', "'none': a network namespace with only loopback (default: the host's network)")
    .option('--image <ref>', 'run an image (OCI layout dir or docker/podman save tar, PATH[:TAG]) instead of BRANCHES')
    .option('--store <dir>', 'layer store for --image (default $LAYERFS_STORE, /var/lib/layerfs as root)')
    .option('--writeback-cache', 'serve the root with the kernel writeback cache (faster small writes; write errors show at close)')
    .addHelpText('after', RUN_HELP_FOOTER)
    .action(async (branches: string | undefined, cmd: string[], opts: RunCommandOptions) => {
      const stack = await stackOf(branches, cmd, opts)
      process.exitCode = stack === undefined ? 125 : await runCommand(stack.branches, stack.cmd, opts)
      process.exit(process.exitCode)
    })
}
