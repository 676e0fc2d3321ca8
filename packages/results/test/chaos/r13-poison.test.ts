import { expect } from 'vitest'

import { chaosTest, waitForDrain } from './support/fleet.ts'
import { formatVerdict, printVerdict } from './support/ledger.ts'
import { chaosScale, scaled } from './support/scale.ts'
import { chaosTasks, retryBaseDelayMs } from './support/tasks.ts'

const throwingAttempts = 4
const killingAttempts = 3

chaosTest('R13: failing, process-killing and once-failing jobs retry with backoff, end failed with every error, or complete once', { timeout: 90_000 * chaosScale }, async ({ db, ledger, fleet }) => {
  const alwaysThrowing = scaled(10)
  const throwingOnce = scaled(10)
  const killing = Math.min(scaled(1), 4)
  const background = scaled(200)
  // A short poll, so a retry starts within a small part of its backoff.
  fleet.configure({ CONCURRENCY: 4, BATCH_SIZE: 4, LEASE_SECONDS: 2, HEARTBEAT_MS: 500, MAINTENANCE_MS: 500, POLL_MS: 50 })
  // Each process-killing job gets a queue and a process of its own, replaced when it dies: what the kills
  // do to the other jobs (a prefetched job loses an attempt with its process) is R2's subject, not this one's.
  await fleet.spawnMany(2, { QUEUES: 'default' })
  const poisonQueues = Array.from({ length: killing }, (_, index) => `poison-${index}`)
  await Promise.all(poisonQueues.map((queue) => fleet.spawn({ QUEUES: queue, CONCURRENCY: 1, BATCH_SIZE: 1 })))
  const stopSupervising = fleet.supervise()

  const throwingIds = await ledger.enqueue(chaosTasks.flaky, Array.from({ length: alwaysThrowing }, () => ({ ms: 5, fault: 'throw-always' as const, expected: 'fail' as const })), {
    maxAttempts: throwingAttempts,
  })
  const onceIds = await ledger.enqueue(chaosTasks.flaky, Array.from({ length: throwingOnce }, () => ({ ms: 5, fault: 'throw-once' as const })), { maxAttempts: throwingAttempts })
  const killingIds: string[] = []
  for (const queue of poisonQueues) {
    killingIds.push(...(await ledger.enqueue(chaosTasks.plain, [{ ms: 5, fault: 'kill-self', expected: 'fail' }], { queue, maxAttempts: killingAttempts })))
  }
  await ledger.produce(chaosTasks.plain, background, 50, () => ({ ms: 10 }))
  await waitForDrain(ledger, 60_000 * chaosScale)
  await stopSupervising()
  await fleet.stopAll()

  const verdict = await ledger.verdict()
  const kills = await ledger.countFaults(['kill-self'])
  // A poison process holds only its poison job: each kill runs it once more.
  const dupExecBound = kills

  // Each retry waited its backoff: base x 2^(attempt - 1), jittered to 50-100%, give or take 20%.
  const { rows: waits } = await db.query<{ attempt: number; waited_ms: number }>(
    `select (x.error ->> 'attempt')::int as attempt,
       extract(epoch from (select min(e.started_at) from public.chaos_executions as e where e.job_id = f.id and e.attempt = (x.error ->> 'attempt')::int + 1) - (x.error ->> 'failed_at')::timestamptz) * 1000 as waited_ms
     from skiplock.all_jobs as f
     cross join lateral jsonb_array_elements(f.errors) as x(error)
     where f.id = any($1::bigint[])
       and (x.error ->> 'attempt')::int < f.attempts`,
    [[...throwingIds, ...onceIds]],
  )
  const outOfBounds = waits.filter(({ attempt, waited_ms: waitedMs }) => {
    const nominalMs = retryBaseDelayMs * 2 ** (attempt - 1)
    return !(waitedMs >= nominalMs * 0.5 * 0.8 && waitedMs <= nominalMs * 1.2)
  })
  const worstRatio = Math.max(...waits.map(({ attempt, waited_ms: waitedMs }) => waitedMs / (retryBaseDelayMs * 2 ** (attempt - 1))))
  printVerdict(
    formatVerdict('R13', verdict, {
      faults: { kills },
      dupExecBound,
      extra: { retries: waits.length, backoff_out_of_bounds: outOfBounds.length, max_wait_ratio: worstRatio.toFixed(2) },
    }),
  )
  expect(verdict).toMatchObject({ lost: 0, unexpected: 0, dupResults: 0, completedWithoutResult: 0, resultsWithoutCompletion: 0 })
  expect(verdict.dupExec).toBeLessThanOrEqual(dupExecBound)
  expect(waits).toHaveLength(alwaysThrowing * (throwingAttempts - 1) + throwingOnce)
  expect(outOfBounds).toEqual([])

  // Always throwing: failed after its attempts, with each attempt's own error, in order.
  const { rows: thrown } = await db.query<{ state: string; attempts: number; messages: string[] }>(
    `select state, attempts, array(select x ->> 'message' from jsonb_array_elements(errors) as x) as messages
     from skiplock.all_jobs where id = any($1::bigint[])`,
    [throwingIds],
  )
  const plannedMessages = Array.from({ length: throwingAttempts }, (_, index) => `planned failure of attempt ${index + 1}`)
  expect(thrown).toEqual(Array.from({ length: alwaysThrowing }, () => ({ state: 'failed', attempts: throwingAttempts, messages: plannedMessages })))

  // Killing its process: rescued each time, then retired as failed once its attempts are used up.
  const { rows: killed } = await db.query<{ state: string; attempts: number; rescues: number; executions: number }>(
    `select state, attempts,
       (select count(*)::int from jsonb_array_elements(errors) as x where x ->> 'message' like '%stopped heartbeating%') as rescues,
       (select count(*)::int from public.chaos_executions as e where e.job_id = j.id) as executions
     from skiplock.all_jobs as j where id = any($1::bigint[])`,
    [killingIds],
  )
  expect(killed).toEqual(Array.from({ length: killing }, () => ({ state: 'failed', attempts: killingAttempts, rescues: killingAttempts, executions: killingAttempts })))
  expect(kills).toBe(killing * killingAttempts)

  // Throwing once: succeeded on its second attempt, with one result, after exactly two executions.
  const { rows: once } = await db.query<{ state: string; result_attempt: number; results: number; outcomes: string[] }>(
    `select j.state,
       (select max(r.attempt) from skiplock.job_results as r where r.job_id = j.id) as result_attempt,
       (select count(*)::int from skiplock.job_results as r where r.job_id = j.id) as results,
       array(select e.outcome from public.chaos_executions as e where e.job_id = j.id order by e.attempt) as outcomes
     from skiplock.all_jobs as j where id = any($1::bigint[])`,
    [onceIds],
  )
  expect(once).toEqual(Array.from({ length: throwingOnce }, () => ({ state: 'succeeded', result_attempt: 2, results: 1, outcomes: ['threw', 'returned'] })))
})
