import type { Reporter, SerializedError, TestModule } from 'vitest/node'

/**
 * Prints `tests: N passed, N failed` as the run's last line. A file that failed to load and an
 * unhandled error each count as a failure, so a broken run can never read as green.
 */
export default class CountReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>, unhandledErrors: ReadonlyArray<SerializedError>): void {
    let passed = 0
    let failed = unhandledErrors.length
    for (const testModule of testModules) {
      let testCount = 0
      for (const testCase of testModule.children.allTests()) {
        testCount += 1
        const state = testCase.result().state
        if (state === 'passed') passed += 1
        else if (state === 'failed') failed += 1
      }
      if (testCount === 0 || (testModule.state() === 'failed' && testModule.errors().length > 0)) failed += 1
    }
    console.log(`tests: ${passed} passed, ${failed} failed`)
  }
}
