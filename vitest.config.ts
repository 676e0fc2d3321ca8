import { defineConfig } from 'vitest/config'

export default defineConfig({
  resolve: {
    // Workspace packages resolve to their sources: nothing needs a build before the tests run.
    conditions: ['development'],
  },
  ssr: {
    resolve: { conditions: ['development'] },
  },
  test: {
    include: ['packages/*/test/**/*.test.ts', 'apps/*/test/**/*.test.ts'],
    globalSetup: ['./packages/schema/src/testing/global-setup.ts'],
    reporters: ['default', './scripts/count-reporter.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
  },
})
