// docs/cli.md is the CLI's own help text, literally (style guide §4.8); regenerate it with
// `npm run docs:cli` after changing an option.
import * as fs from 'node:fs'
import * as path from 'node:path'
import { describe, expect, it } from 'vitest'

const ROOT = path.resolve(__dirname, '../..')
const built = fs.existsSync(path.join(ROOT, 'dist/bin/layerfs.js'))

describe.skipIf(!built)('docs/cli.md', () => {
  it('matches the help the CLI prints', async () => {
    // @ts-expect-error: a plain .mjs script without types
    const { helpTexts, render } = await import('../../scripts/gen-cli-doc.mjs')
    const expected = render(await helpTexts())
    expect(fs.readFileSync(path.join(ROOT, 'docs/cli.md'), 'utf8')).toBe(expected)
  }, 30_000)
})
