import { defineConfig } from 'vitest/config'

// Two projects (style guide §4.7): the pure core runs in parallel; the FUSE suites run one
// file at a time, because two cores cannot host several FUSE daemons under load reliably.
export default defineConfig({
  test: {
    projects: [
      { test: { name: 'unit', include: ['test/unit/**/*.test.ts'] } },
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
