// The control channel's messages: one JSON object per line each way, one response per request,
// in order. Shared by the daemon's server and the client (docs/control.md).
import type { Explanation, EntryType } from '../branches/explain.js'

export type ControlRequest =
  | { op: 'which'; path: string }
  | { op: 'ls'; path: string }
  | { op: 'status' }
  | { op: 'branch-add'; dir: string; below?: number; topRo?: boolean }
  | { op: 'branch-remove'; index: number }
  | { op: 'checkpoint'; to?: string }

export interface BranchInfo {
  readonly index: number
  readonly path: string
  readonly mode: 'rw' | 'ro'
  /** Files open through the mount whose host file is in this branch. */
  readonly openFiles: number
}

export interface WhichResult {
  readonly path: string
  readonly visible: boolean
  /** The branch that supplies the path (a merged dir: its top-most branch). */
  readonly origin?: BranchInfo
  /** Every branch merged into a directory, top first. */
  readonly merged?: readonly number[]
  readonly explanation: Explanation
}

export interface LsEntry {
  readonly name: string
  readonly type: EntryType
  /** The branch that supplies the entry. */
  readonly index: number
  /** Branches merged into a directory entry, top first. */
  readonly merged?: readonly number[]
}

export interface StatusResult {
  readonly mountpoint: string
  readonly pid: number
  readonly started: string
  readonly uptimeSeconds: number
  readonly branches: readonly BranchInfo[]
  readonly openFiles: number
  readonly cache: { readonly resolutions: number; readonly inodes: number }
  /** Entries copied up to the rw branch; `filesOffThread`: files whose data a worker thread copied. */
  readonly copyUps: { readonly files: number; readonly filesOffThread: number; readonly dirs: number; readonly others: number }
  readonly operations: Readonly<Record<string, number>>
  readonly inflight: number
  /** The FUSE transport serving the mount, and what the native one negotiated with the kernel. */
  readonly transport: 'native' | 'fuse-native'
  readonly protocol?: {
    readonly minor: number
    readonly passthrough: boolean
    /** The kernel's writeback cache is on (mount --writeback-cache). */
    readonly writebackCache: boolean
    readonly kernelNodes: number
    /** Busy polling of /dev/fuse: the window now and its bound (µs), requests read while polling, returns to the event loop. */
    readonly busyPoll?: { readonly windowMicros: number; readonly maxMicros: number; readonly caught: number; readonly loopReturns: number }
    /** Metadata read-ahead: branch directories read ahead, entries lstat'ed, jobs dropped unrun; absent when off. */
    readonly readAhead?: { readonly dirs: number; readonly entries: number; readonly dropped: number; readonly kept: number }
  }
  readonly options: { readonly entryTimeout: number; readonly attrTimeout: number; readonly negativeTimeout: number; readonly revalidate?: number; readonly coherent: boolean }
}

export interface StackChangeResult {
  readonly branches: readonly BranchInfo[]
  /** Seconds the kernel may still answer from its caches (entry/attr/negative timeouts). */
  readonly kernelCacheSeconds: number
  /** checkpoint: where the sealed layer now is. */
  readonly sealed?: string
}

export type ControlResponse =
  | { ok: true; result: unknown }
  | { ok: false; code: string; message: string }
