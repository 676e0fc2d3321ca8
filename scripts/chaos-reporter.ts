import { writeFileSync } from 'node:fs'
import os from 'node:os'

import type { Reporter, SerializedError, TestModule, UserConsoleLog } from 'vitest/node'

/** A chaos test's verdict line: its id (`R5`, `R9/R1`, `S2/R2`), maybe a word or two, then `name=value` figures. */
const verdictLine = /^[RS]\d+(?:\/\S+)?\s(?:\S+\s){0,3}\S+=\S/

/**
 * Writes the chaos run's results to the Markdown file named by SKIPLOCK_CHAOS_REPORT: the command, the
 * run's settings, each test with its outcome and time, and every verdict line the tests printed.
 */
export default class ChaosReporter implements Reporter {
  readonly #verdicts: string[] = []
  #startedAt = new Date()

  onInit(): void {
    this.#startedAt = new Date()
  }

  onUserConsoleLog(log: UserConsoleLog): void {
    for (const line of log.content.split('\n')) {
      if (verdictLine.test(line)) this.#verdicts.push(line.trim())
    }
  }

  onTestRunEnd(testModules: ReadonlyArray<TestModule>, unhandledErrors: ReadonlyArray<SerializedError>): void {
    const path = process.env.SKIPLOCK_CHAOS_REPORT
    if (!path) return
    const byId = (a: string, b: string) => a.localeCompare(b, 'en', { numeric: true })
    const rows = testModules.flatMap((testModule) =>
      [...testModule.children.allTests()].map((testCase) => {
        const seconds = ((testCase.diagnostic()?.duration ?? 0) / 1000).toFixed(1)
        // `R9: through PgBouncer > ...` or `R5: ...`: the id, then what the test checks.
        const [id, ...what] = testCase.fullName.split(':')
        return `| ${id} | ${testCase.result().state} | ${seconds} s | ${what.join(':').trim()} |`
      }),
    ).sort(byId)
    const minutes = ((Date.now() - this.#startedAt.getTime()) / 60_000).toFixed(1)
    const text = [
      '# Chaos suite: a full run',
      '',
      'Made by `pnpm chaos` (`./run chaos` on a fresh machine), which runs every test of',
      '`packages/results/test/chaos` with `SKIPLOCK_CHAOS_SCALE=10` and `SKIPLOCK_CHAOS_FULL=1`, and the bad-input and',
      'security tests (R16, S1 to S4), one test file at a time so that timings are not shared, and writes this file.',
      `Replay a test's random choices with \`SKIPLOCK_CHAOS_SEED=<seed>\` (each line shows its seed).`,
      '',
      `- Started ${this.#startedAt.toISOString()}, ${minutes} minutes in all, on ${os.cpus().length} CPUs and ${Math.round(os.totalmem() / 2 ** 30)} GiB.`,
      `- Database: ${process.env.DATABASE_URL ? 'the server at DATABASE_URL' : 'embedded PostgreSQL 18'} (tests that crash, stop or limit a server start their own embedded PostgreSQL 18).`,
      `- Unhandled errors: ${unhandledErrors.length}.`,
      '',
      '| test | outcome | time | what it checks |',
      '| --- | --- | --- | --- |',
      ...rows,
      '',
      '## Verdict lines',
      '',
      '```',
      ...this.#verdicts.sort(byId),
      '```',
      '',
    ].join('\n')
    writeFileSync(path, text)
  }
}
