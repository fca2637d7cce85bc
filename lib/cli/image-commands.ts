// The image commands of the CLI: `diff`, `commit`, `image unpack`, and `--image` for `mount`
// (image layers from the store as the ro stack). bin/layerfs.ts calls registerImageCommands().
import { Command, Option } from 'commander'
import { ConfigError, parseBranches } from '../options.js'
import { diff, formatChanges } from '../image/diff.js'
import { commit } from '../image/commit.js'
import type { Compression } from '../image/compress.js'
import { appendLayer } from '../image/append.js'
import { branchSpec, imageStack } from '../image/image-stack.js'
import { unpackProgress } from './image-progress.js'

function fail(e: unknown): number {
  const msg = e instanceof ConfigError ? e.message : String((e as Error)?.message ?? e)
  process.stderr.write(`layerfs: ${msg}\n`)
  return 1
}

/** layerfs diff UPPER [--lower A:B] [--json] [--init-layer DIR] */
export async function diffCommand(upper: string, opts: { lower?: string; json?: boolean; initLayer?: string }): Promise<number> {
  try {
    const lowers = opts.lower === undefined ? undefined : parseBranches(opts.lower).map((b) => b.path)
    const changes = await diff(upper, { lowers, initLayer: opts.initLayer })
    process.stdout.write(opts.json ? JSON.stringify(changes, null, 2) + '\n' : formatChanges(changes))
    return 0
  } catch (e) {
    return fail(e)
  }
}

export interface CommitCommandOptions {
  output?: string
  gzip?: boolean
  zstd?: boolean
  json?: boolean
  initLayer?: string
  image?: string
  store?: string
}

/** layerfs commit UPPER -o OUT [--gzip|--zstd] [--image REF]: prints the DiffID. */
export async function commitCommand(upper: string, opts: CommitCommandOptions): Promise<number> {
  try {
    if (opts.gzip && opts.zstd) throw new ConfigError('EINVAL', '--gzip and --zstd exclude each other')
    if (!opts.output) throw new ConfigError('EINVAL', 'commit needs -o FILE (or -o DIR with --image)')
    const compression: Compression = opts.gzip ? 'gzip' : opts.zstd ? 'zstd' : 'none'
    if (opts.image !== undefined) {
      const r = await appendLayer(opts.image, upper, opts.output, { compression, initLayer: opts.initLayer })
      process.stdout.write(opts.json ? JSON.stringify(r, null, 2) + '\n' : `${r.layer.diffId}\n`)
      return 0
    }
    const r = await commit(upper, opts.output, { compression, initLayer: opts.initLayer })
    process.stdout.write(opts.json ? JSON.stringify(r, null, 2) + '\n' : `${r.diffId}\n`)
    return 0
  } catch (e) {
    return fail(e)
  }
}

/** layerfs image unpack REF [--store DIR] [--json]: prints the ro stack spec, top first. */
export async function imageUnpackCommand(ref: string, opts: { store?: string; json?: boolean }): Promise<number> {
  const progress = unpackProgress()
  try {
    const { image, branches } = await imageStack(ref, { store: opts.store, onProgress: progress.onProgress })
    progress.done()
    process.stdout.write(opts.json
      ? JSON.stringify({ format: image.format, layers: image.layers.map((l) => l.diffId), branches }, null, 2) + '\n'
      : branchSpec(branches) + '\n')
    return 0
  } catch (e) {
    progress.done()
    return fail(e)
  }
}

/** Replaces '--image REF' / '--image=REF' in process.argv by the resolved branches. */
function rewriteArgv(spec: string): void {
  const argv = process.argv
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--image') { argv.splice(i, 2, '--image-branches', spec); return }
    if (argv[i]!.startsWith('--image=')) { argv.splice(i, 1, '--image-branches', spec); return }
  }
}

/**
 * Adds `--image PATH[:TAG]` and `--store DIR` to `mount`: before the command runs, the image's
 * layers are brought into the store and put in front of MOUNTPOINT as an all-ro stack spec
 * (then --upper adds the rw branch). The background daemon gets the resolved branches
 * (a hidden `--image-branches`), so an archive is read once, in the user's terminal.
 */
export function addImageOptions(cmd: Command): void {
  if (cmd.options.some((o) => o.long === '--image')) return
  cmd.option('--image <ref>', 'use an image (OCI layout dir or docker/podman save tar, PATH[:TAG]) as the ro stack')
  cmd.option('--store <dir>', 'layer store for --image (default $LAYERFS_STORE, /var/lib/layerfs as root)')
  cmd.addOption(new Option('--image-branches <spec>').hideHelp())
  cmd.hook('preAction', async (c) => {
    const o = c.opts<{ image?: string; store?: string; imageBranches?: string }>()
    let spec = o.imageBranches
    if (spec === undefined && o.image === undefined) return
    const progress = unpackProgress()
    try {
      if (spec === undefined) {
        const { branches } = await imageStack(o.image!, { store: o.store, onProgress: progress.onProgress })
        progress.done()
        spec = branchSpec(branches)
        rewriteArgv(spec)
      }
      const args = c.processedArgs[0] as string[]
      if (args.length !== 1) throw new ConfigError('EINVAL', 'with --image, give only the MOUNTPOINT (the image is the stack)')
      c.processedArgs[0] = [spec, ...args]
    } catch (e) {
      progress.done()
      process.exit(fail(e))
    }
  })
}

/** Registers `diff`, `commit` and `image unpack`, and `--image` for `mount`, on the program. */
export function registerImageCommands(program: Command): void {
  program
    .command('diff')
    .description('list the changes in a rw branch like docker diff (A added, C changed, D deleted)')
    .argument('<upper>', 'the rw branch (a directory)')
    .option('--lower <branches>', 'the lower branches, top first (A:B), to tell A from C')
    .option('--init-layer <dir>', 'an init layer whose paths are never reported')
    .option('--json', 'print a JSON array of {kind, path}')
    .action(async (upper: string, opts) => { process.exitCode = await diffCommand(upper, opts) })

  program
    .command('commit')
    .description('write a rw branch as an OCI image layer tar and print its DiffID')
    .argument('<upper>', 'the rw branch (a directory; unmount it first)')
    .option('-o, --output <path>', 'the layer file to write (with --image: the new image layout dir)')
    .option('--gzip', 'compress with gzip (application/vnd.oci.image.layer.v1.tar+gzip)')
    .option('--zstd', 'compress with zstd (application/vnd.oci.image.layer.v1.tar+zstd)')
    .option('--image <ref>', 'append the layer to a copy of this image (PATH[:TAG]) written as an OCI layout at -o')
    .option('--init-layer <dir>', 'an init layer whose paths are never committed')
    .option('--json', 'print the result as JSON (DiffID, digest, size, media type)')
    .action(async (upper: string, opts) => { process.exitCode = await commitCommand(upper, opts) })

  const image = program.command('image').description('image layers in the layer store')
  image
    .command('unpack')
    .description('unpack an image into the layer store and print its ro stack spec (top first)')
    .argument('<ref>', 'an OCI layout dir or a docker/podman save tar, PATH[:TAG]')
    .option('--store <dir>', 'the layer store (default $LAYERFS_STORE, /var/lib/layerfs as root)')
    .option('--json', 'print format, DiffIDs and branch dirs as JSON')
    .action(async (ref: string, opts) => { process.exitCode = await imageUnpackCommand(ref, opts) })

  // `mount` may be defined before or after this call: add --image when it is dispatched.
  program.hook('preSubcommand', (_p, sub) => { if (sub.name() === 'mount') addImageOptions(sub) })
  const mount = program.commands.find((c) => c.name() === 'mount')
  if (mount) addImageOptions(mount)
}
