// A record of a FUSE conversation (LAYERFS_FUSE_TRACE=FILE): each message as one frame —
// 1 byte direction ('>' request from the kernel, '<' reply), 4 bytes length (LE), the bytes.
// The unit tests replay recorded frames through the codec (test/fixtures/fuse/).
import { fs } from '../../fs.js'

export interface Frame {
  readonly dir: '>' | '<'
  readonly bytes: Buffer
}

export class Trace {
  readonly #fd: number

  constructor(file: string) {
    this.#fd = fs.openSync(file, 'a', 0o600)
  }

  request(bytes: Buffer): void {
    this.#frame('>', bytes)
  }

  reply(bytes: Buffer): void {
    this.#frame('<', bytes)
  }

  #frame(dir: '>' | '<', bytes: Buffer): void {
    const head = Buffer.alloc(5)
    head.write(dir, 0, 'latin1')
    head.writeUInt32LE(bytes.length, 1)
    fs.writeSync(this.#fd, Buffer.concat([head, bytes]))
  }
}

/** The frames of a trace file's contents. */
export function parseTrace(data: Buffer): Frame[] {
  const frames: Frame[] = []
  for (let off = 0; off + 5 <= data.length;) {
    const dir = data.toString('latin1', off, off + 1) as '>' | '<'
    const len = data.readUInt32LE(off + 1)
    frames.push({ dir, bytes: data.subarray(off + 5, off + 5 + len) })
    off += 5 + len
  }
  return frames
}
