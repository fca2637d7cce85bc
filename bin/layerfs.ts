#!/usr/bin/env node
// The layerfs command line: argument parsing only; the commands live in lib/cli/.
import { readFileSync } from 'node:fs'
import { Command, Option } from 'commander'
import { mountCommand, umountCommand } from '../lib/cli/commands.js'
import { HELP_FOOTER } from '../lib/cli/help.js'
import { registerRunCommand } from '../lib/cli/run-command.js'
import { registerImageCommands } from '../lib/cli/image-commands.js'
import { registerControlCommands } from '../lib/cli/control-commands.js'

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
const collect = (v: string, prev: string[] = []): string[] => [...prev, v]
const program = new Command('layerfs')
  .description('A union filesystem over FUSE: ordered read-only branches, one rw branch on top.')
  .version(pkg.version)
  .addHelpText('after', HELP_FOOTER)
  .showHelpAfterError('(run layerfs --help for usage)')

program
  .command('mount')
  .description('mount BRANCHES (top first, e.g. A:B or A=rw:B=ro) at MOUNTPOINT')
  .argument('<args...>', '[BRANCHES] MOUNTPOINT (BRANCHES may come from -o lowerdir= instead)')
  .option('-f, --foreground', 'serve in the foreground until unmounted or signalled')
  .option('--upper <dir>', 'put a rw branch DIR on top of an all-ro stack (created if missing)')
  .option('-o <options>', 'mount options: lowerdir=L2:L1,upperdir=U,workdir=W,ro (repeatable)', collect)
  .option('--allow-other', 'share the mount with every user (the default as root)')
  .option('--no-allow-other', 'do not share the mount with other users')
  .option('--entry-timeout <s>', 'kernel name cache lifetime in seconds (default 60)')
  .option('--attr-timeout <s>', 'kernel attribute cache lifetime in seconds (default 60)')
  .option('--negative-timeout <s>', 'kernel cache lifetime of missing names in seconds (default 60)')
  .option('--coherent', 'no kernel attribute/page caching across names (fuse-native: exact hard links), slower')
  .option('--transport <name>', 'FUSE transport: native (layerfs\'s own, root only) or fuse-native (libfuse 2); default: $LAYERFS_TRANSPORT, else native when built')
  .option('--passthrough', 'native transport: the kernel reads lower files opened read-only straight from their branch (FUSE passthrough; the default where the kernel offers it)')
  .option('--no-passthrough', 'every read goes through layerfs')
  .option('--busy-poll <us>', 'native transport: keep reading /dev/fuse up to US microseconds after the last request before sleeping (0: off; default 30)')
  .option('--writeback-cache', 'native transport: the kernel caches writes and sends them later (faster small writes; ENOSPC/EIO then show at close or fsync)')
  .option('--debug', 'trace every FUSE operation on stderr')
  .addOption(new Option('--ipc').hideHelp())
  .addOption(new Option('--watch-parent').hideHelp())
  .action(async (args: string[], opts) => {
    const raw = argv.slice(argv.indexOf('mount') + 1)
    process.exitCode = await mountCommand(args, opts, raw)
    if (!opts.foreground || process.exitCode !== 0) return
    process.exit(process.exitCode)
  })

program
  .command('umount')
  .alias('unmount')
  .description('unmount MOUNTPOINT and wait for its daemon to exit')
  .argument('<mountpoint>')
  .option('-l, --lazy', 'detach now even if busy; the daemon exits when the last file closes')
  .action(async (mnt: string, opts) => {
    process.exitCode = await umountCommand(mnt, opts)
  })

registerRunCommand(program)
registerImageCommands(program)
registerControlCommands(program)

// As a mount helper (`mount -t fuse.layerfs SOURCE MNT -o lowerdir=…` runs `layerfs SOURCE MNT -o …`)
// the first argument is not a command: treat the call as `layerfs mount …`.
const argv = [...process.argv]
const first = argv[2]
const known = new Set(program.commands.flatMap((c) => [c.name(), ...c.aliases()]).concat(['help']))
if (first !== undefined && !first.startsWith('-') && !known.has(first)) argv.splice(2, 0, 'mount')

await program.parseAsync(argv)
