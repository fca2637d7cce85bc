// A progress bar for unpacking large layers, on a terminal only (cli-progress on stderr).
import { SingleBar, Presets } from 'cli-progress'
import type { LayerRef, ProgressFn } from '../image/store.js'

/** Layers smaller than this unpack too fast for a bar to help. */
const MIN_BYTES = 8 << 20

/**
 * A ProgressFn drawing one bar per large layer on stderr when it is a TTY, else undefined.
 * Call `done()` once all layers are in (it stops a bar left running by a failure).
 */
export function unpackProgress(stream: NodeJS.WriteStream = process.stderr): { onProgress?: ProgressFn; done(): void } {
  if (!stream.isTTY) return { done() {} }
  let bar: SingleBar | undefined
  let current: LayerRef | undefined
  const stop = (): void => { bar?.stop(); bar = undefined; current = undefined }
  const onProgress: ProgressFn = (layer, bytes, total) => {
    if (total === undefined || total < MIN_BYTES) return
    if (current !== layer) {
      stop()
      current = layer
      bar = new SingleBar({
        stream, format: `unpacking ${layer.diffId.slice(7, 19)} [{bar}] {percentage}% {value}/{total} MiB`,
        hideCursor: true, clearOnComplete: false,
      }, Presets.shades_classic)
      bar.start(Math.ceil(total / 2 ** 20), 0)
    }
    bar!.update(bytes >= total ? Math.ceil(total / 2 ** 20) : Math.floor(bytes / 2 ** 20))
    if (bytes >= total) stop()
  }
  return { onProgress, done: stop }
}
