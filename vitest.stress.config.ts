import { defineConfig } from 'vitest/config'

// The slow suites (issue 7), outside the default run: `npm run test:stress` runs test/stress/
// (the 200-kill crash test, long stress-ng/fio runs); `npm run test:soak` runs test/soak/ (a
// mixed workload for LAYERFS_SOAK_SECONDS, reporting ops, errors and daemon memory).
export default defineConfig({
  test: {
    include: [process.env.LAYERFS_SOAK ? 'test/soak/**/*.test.ts' : 'test/stress/**/*.test.ts'],
    fileParallelism: false,
    testTimeout: 3 * 60 * 60_000,
    hookTimeout: 120_000,
  },
})
