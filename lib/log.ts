// Debug logging (off unless NODE_DEBUG=layerfs or --debug) and rate-limited warnings; stderr only.
import { debuglog, format } from 'node:util'

let forced = false
const warned = new Set<string>()

/** Turns on debug output for every logger (the CLI's --debug). */
export function enableDebug(): void { forced = true }

export interface Logger {
  readonly enabled: () => boolean
  debug(fmt: string, ...args: unknown[]): void
  /** Warns once per `cause` for the life of the process (cf. pr_warn_ratelimited). */
  warnOnce(cause: string, fmt: string, ...args: unknown[]): void
}

export function createLogger(ns: string): Logger {
  const base = debuglog('layerfs')
  const enabled = (): boolean => forced || base.enabled
  return {
    enabled,
    debug(fmt, ...args) {
      if (enabled()) process.stderr.write(`${ns} ${format(fmt, ...args)}\n`)
    },
    warnOnce(cause, fmt, ...args) {
      if (warned.has(cause)) return
      warned.add(cause)
      process.stderr.write(`${ns}: warning: ${format(fmt, ...args)}\n`)
    },
  }
}
