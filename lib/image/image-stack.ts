// An image as a lower stack: read it, bring its layers into the store, list the layer dirs top
// first. What `layerfs mount --image` and the API's imageStack() use.
import { imageBranches, readImage, unpackImage, type ImageInfo } from './oci.js'
import { LayerStore, type ProgressFn } from './store.js'

export interface ImageStackOptions {
  /** The layer store dir (default: defaultStoreDir()). */
  readonly store?: string
  readonly onProgress?: ProgressFn
}

/** An image ready to mount: its description and its ro branches, top first. */
export interface ImageStack {
  readonly image: ImageInfo
  readonly branches: string[]
}

/**
 * Reads the image `ref` ('PATH[:TAG]'), unpacks its missing layers into the store (verified,
 * atomically) and returns the branch dirs, top first, ready for a stack spec with `ro` modes.
 * Throws ConfigError (see readImage and LayerStore.ingest).
 */
export async function imageStack(ref: string, opts: ImageStackOptions = {}): Promise<ImageStack> {
  const image = await readImage(ref)
  const dirs = await unpackImage(image, new LayerStore(opts.store), opts.onProgress)
  return { image, branches: imageBranches(dirs) }
}

/** The stack spec of image branches: 'L3=ro:L2=ro:L1=ro' (':' in a path written '\:'). */
export function branchSpec(branches: readonly string[]): string {
  return branches.map((b) => `${b.replace(/:/g, '\\:')}=ro`).join(':')
}
