// The control channel as API functions (exported by lib/index.ts): the same requests the CLI's
// which/ls/status/branch/checkpoint send. Each takes a mount point or a path inside a mount.
import * as path from 'node:path'
import { fs } from '../fs.js'
import { controlRequest, flushKernelWrites, liveMounts, locate } from './client.js'
import type { LsEntry, StackChangeResult, StatusResult, WhichResult } from './protocol.js'

/** Which branch supplies `p` (a path inside a mount), with what hides the other branches' entries. */
export async function whichBranch(p: string): Promise<WhichResult> {
  const loc = await locate(p)
  return controlRequest<WhichResult>(loc.mountpoint, { op: 'which', path: loc.unionPath })
}

/** The entries of directory `dir` (inside a mount), each with the branch it comes from. */
export async function listLayers(dir: string): Promise<LsEntry[]> {
  const loc = await locate(dir)
  return controlRequest<LsEntry[]>(loc.mountpoint, { op: 'ls', path: loc.unionPath })
}

/** The status of the mount at `mnt`, or of every running mount. */
export async function mountStatus(mnt?: string): Promise<StatusResult[]> {
  const points = mnt !== undefined ? [(await locate(mnt)).mountpoint] : liveMounts().map((r) => r.mountpoint)
  return Promise.all(points.map((p) => controlRequest<StatusResult>(p, { op: 'status' })))
}

/** Adds `dir` as a ro branch of the live mount `mnt`: at the bottom, `below` branch N, or `topRo`. */
export async function addBranch(mnt: string, dir: string, where: { below?: number; topRo?: boolean } = {}): Promise<StackChangeResult> {
  const loc = await locate(mnt)
  const real = await fs.promises.realpath(path.resolve(dir))
  return controlRequest<StackChangeResult>(loc.mountpoint, { op: 'branch-add', dir: real, ...where })
}

/** Removes ro branch `index` from the live mount `mnt`; rejects with code EBUSY while files from it are open. */
export async function removeBranch(mnt: string, index: number): Promise<StackChangeResult> {
  const loc = await locate(mnt)
  return controlRequest<StackChangeResult>(loc.mountpoint, { op: 'branch-remove', index })
}

/**
 * Seals the rw branch of `mnt` as a new ro branch (moved to `to`, default UPPER.ckpt-N) and
 * starts a fresh empty rw branch at its old path, while the mount stays in use. First makes the
 * kernel send the mount's cached writes (writeback cache, shared mmap) to the daemon, so they
 * are in the sealed layer.
 */
export async function checkpoint(mnt: string, opts: { to?: string } = {}): Promise<StackChangeResult> {
  const loc = await locate(mnt)
  let to: string | undefined
  if (opts.to !== undefined) {
    const abs = path.resolve(opts.to)
    to = path.join(await fs.promises.realpath(path.dirname(abs)), path.basename(abs))
  }
  await flushKernelWrites(loc.mountpoint)
  return controlRequest<StackChangeResult>(loc.mountpoint, { op: 'checkpoint', to })
}
