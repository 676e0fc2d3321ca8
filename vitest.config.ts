import { configDefaults, defineConfig } from 'vitest/config'

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
    // Chaos tests too long for every run (minute-long outages, a ten-minute snapshot pin) run in `pnpm chaos` only.
    exclude: [...configDefaults.exclude, ...(process.env.SKIPLOCK_CHAOS_FULL ? [] : ['packages/results/test/chaos/full/**'])],
    globalSetup: ['./packages/schema/src/testing/global-setup.ts'],
    reporters: ['default', './scripts/count-reporter.ts', ...(process.env.SKIPLOCK_CHAOS_REPORT ? ['./scripts/chaos-reporter.ts'] : [])],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
  },
})
