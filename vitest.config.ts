import { defineConfig } from 'vitest/config'

// Two projects (style guide §4.7): the pure core runs in parallel; the FUSE suites run one
// file at a time, because two cores cannot host several FUSE daemons under load reliably.
export default defineConfig({
  test: {
    projects: [
      // A hang guard, not a timing: some unit tests reload every lib module (vi.resetModules),
      // which took 4–5 s on a loaded 2-core machine against vitest's default of 5 s.
      { test: { name: 'unit', include: ['test/unit/**/*.test.ts'], testTimeout: 30_000 } },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          fileParallelism: false,
          testTimeout: 60_000,
          hookTimeout: 60_000,
        },
      },
    ],
  },
})
