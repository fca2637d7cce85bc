// The init layer of `layerfs run`: an ro branch between the rw branch and the image, holding
// /etc/hosts, /etc/hostname, /etc/resolv.conf and the mount points the container needs, so
// none of them ever lands in the rw branch (docker's "-init" layer plays the same part).
import * as path from 'node:path'
import { fs } from '../fs.js'
import { MOUNT_POINTS, type NetMode } from './unshare.js'

/** Owner, mode and times of a directory the image already has (its attributes are kept). */
export interface DirAttrs {
  readonly mode: number
  readonly uid: number
  readonly gid: number
  readonly mtime: Date
}

/** One entry of the init layer; `path` is a union path ('/etc/hosts'). */
export type InitEntry =
  | { readonly kind: 'dir'; readonly path: string; readonly mode: number; readonly uid: number; readonly gid: number; readonly mtime?: Date }
  | { readonly kind: 'file'; readonly path: string; readonly mode: number; readonly content: string }

export interface InitLayerOptions {
  /** The container's host name (--hostname, or the host's when there is no UTS namespace). */
  readonly hostname: string
  readonly net: NetMode
  /** The host's /etc/resolv.conf, copied when the container shares the host's network. */
  readonly hostResolvConf?: string
  /** The image's attributes for a directory, when the image has it (so the init layer does not change them). */
  readonly imageDir?: (unionPath: string) => DirAttrs | undefined
}

/** Defaults for directories the image lacks: /proc and /sys as in the kernel, /tmp sticky. */
const DIR_MODES: Readonly<Record<string, number>> = { '/etc': 0o755, '/proc': 0o555, '/dev': 0o755, '/sys': 0o555, '/tmp': 0o1777 }

/** /etc/hosts: loopback names plus the container's name (what docker writes). */
export function hostsFile(hostname: string): string {
  return [
    '127.0.0.1\tlocalhost',
    '::1\tlocalhost ip6-localhost ip6-loopback',
    'fe00::0\tip6-localnet',
    'ff00::0\tip6-mcastprefix',
    'ff02::1\tip6-allnodes',
    'ff02::2\tip6-allrouters',
    `127.0.1.1\t${hostname}`,
    '',
  ].join('\n')
}

/**
 * /etc/resolv.conf: the host's as is when the network is shared (a 127.0.0.53 stub resolver is
 * reachable then), a comment only with `--net none` (no name server can be reached).
 */
export function resolvConfFile(net: NetMode, hostResolvConf: string | undefined): string {
  if (net === 'none') return '# layerfs run --net none: no network, no name servers\n'
  if (hostResolvConf === undefined || hostResolvConf.trim() === '') return '# layerfs run: the host has no /etc/resolv.conf\n'
  return hostResolvConf.endsWith('\n') ? hostResolvConf : hostResolvConf + '\n'
}

/** The entries of the init layer, parents first. Pure. */
export function initLayerEntries(opts: InitLayerOptions): InitEntry[] {
  const dir = (p: string): InitEntry => {
    const img = opts.imageDir?.(p)
    if (img) return { kind: 'dir', path: p, mode: img.mode & 0o7777, uid: img.uid, gid: img.gid, mtime: img.mtime }
    return { kind: 'dir', path: p, mode: DIR_MODES[p] ?? 0o755, uid: 0, gid: 0 }
  }
  return [
    dir('/etc'),
    { kind: 'file', path: '/etc/hosts', mode: 0o644, content: hostsFile(opts.hostname) },
    { kind: 'file', path: '/etc/hostname', mode: 0o644, content: `${opts.hostname}\n` },
    { kind: 'file', path: '/etc/resolv.conf', mode: 0o644, content: resolvConfFile(opts.net, opts.hostResolvConf) },
    ...MOUNT_POINTS.map(dir),
  ]
}

/**
 * Writes `entries` under the host directory `dir` (created when missing; entries already there
 * are replaced, anything else is left alone). Directory modes, owners and times are set last,
 * deepest first, so writing the files does not change them. Rejects with the fs error.
 */
export async function writeInitLayer(dir: string, entries: readonly InitEntry[]): Promise<void> {
  const fsp = fs.promises
  await fsp.mkdir(dir, { recursive: true })
  await fsp.chmod(dir, 0o755)
  const host = (p: string): string => path.join(dir, p)
  for (const e of entries) {
    if (e.kind === 'dir') {
      await fsp.mkdir(host(e.path), { recursive: true })
    } else {
      await fsp.rm(host(e.path), { force: true, recursive: true })
      await fsp.writeFile(host(e.path), e.content, { mode: e.mode })
      await fsp.chmod(host(e.path), e.mode)
    }
  }
  const dirs = entries.filter((e) => e.kind === 'dir').sort((a, b) => b.path.length - a.path.length)
  for (const d of dirs) {
    await fsp.chown(host(d.path), d.uid, d.gid)
    await fsp.chmod(host(d.path), d.mode)
    if (d.mtime) await fsp.utimes(host(d.path), d.mtime, d.mtime)
  }
}

/** The host's /etc/resolv.conf, or undefined when it cannot be read. */
export async function readHostResolvConf(): Promise<string | undefined> {
  try {
    return await fs.promises.readFile('/etc/resolv.conf', 'utf8')
  } catch {
    return undefined
  }
}
