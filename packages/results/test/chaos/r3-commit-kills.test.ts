import { waitFor } from '@skiplock/core/testing'
import { expect } from 'vitest'

import { chaosTest, waitForDrain } from './support/fleet.ts'
import { formatVerdict, printVerdict } from './support/ledger.ts'
import { chaosScale, createRandom, scaled } from './support/scale.ts'
import { chaosTasks, type Fault } from './support/tasks.ts'

const selfKills = ['kill-before-commit', 'kill-after-commit']

chaosTest(
  'R3: a worker killed just before or just after the completion COMMIT leaves exactly one result per job',
  { timeout: 90_000 * chaosScale },
  async ({ db, ledger, fleet }) => {
    const plainJobs = scaled(1500)
    const transactionalJobs = scaled(500)
    const random = createRandom()
    fleet.configure({ CONCURRENCY: 4, BATCH_SIZE: 4, LEASE_SECONDS: 2, HEARTBEAT_MS: 500, MAINTENANCE_MS: 500 })
    await fleet.spawnMany(3)
    const stopSupervising = fleet.supervise()

    // Background load on both completion paths: group commits, and handlers' own transactions.
    const background = Promise.all([
      ledger.produce(chaosTasks.plain, plainJobs, 150, () => ({ ms: 5 + Math.floor(random() * 20) })),
      ledger.produce(chaosTasks.transactional, transactionalJobs, 50, () => ({ ms: 5 + Math.floor(random() * 20) })),
    ])
    // One faulty job at a time, each on attempt 1 only, so every kill is one planned fault.
    const plan: { fault: Fault; task: typeof chaosTasks.plain }[] = []
    for (let round = 0; round < scaled(2); round += 1) {
      for (const fault of selfKills as Fault[]) {
        plan.push({ fault, task: chaosTasks.plain }, { fault, task: chaosTasks.transactional })
      }
    }
    const faulty: { fault: Fault; jobId: string }[] = []
    for (const { fault, task } of plan) {
      const killsBefore = await ledger.countFaults(selfKills)
      const [jobId] = await ledger.enqueue(task, [{ ms: 10, fault }])
      faulty.push({ fault, jobId: jobId! })
      await waitFor(async () => (await ledger.countFaults(selfKills)) > killsBefore, { description: `the ${fault} job to kill its worker`, timeoutMs: 15_000 })
      // Finished before the next fault, so no later kill lands on its second attempt.
      await waitFor(async () => (await db.query(`select from skiplock.finished_jobs where id = $1`, [jobId])).rowCount === 1, {
        description: `the ${fault} job to finish`,
        timeoutMs: 15_000,
      })
    }
    await background
    await stopSupervising()
    await waitForDrain(ledger, 60_000 * chaosScale)
    await fleet.stopAll()

    const verdict = await ledger.verdict()
    const kills = await ledger.countFaults(selfKills)
    const { rows: effects } = await db.query<{ jobs: number; effects: number; matching: number }>(
      `select count(distinct e.job_id)::int as jobs, count(*)::int as effects, count(r.job_id)::int as matching
       from public.chaos_effects as e
       left join skiplock.job_results as r
         on r.job_id = e.job_id and r.attempt = e.attempt`,
    )
    printVerdict(
      formatVerdict('R3', verdict, {
        faults: { kills },
        extra: {
          completed_without_result: verdict.completedWithoutResult,
          results_without_completion: verdict.resultsWithoutCompletion,
          dup_effects: effects[0]!.effects - effects[0]!.jobs,
        },
      }),
    )
    expect(kills).toBe(plan.length)
    expect(verdict).toMatchObject({
      acknowledged: plainJobs + transactionalJobs + plan.length,
      lost: 0,
      unexpected: 0,
      dupResults: 0,
      completedWithoutResult: 0,
      resultsWithoutCompletion: 0,
    })
    // The handlers' own writes committed once per transactional job, with its result.
    expect(effects[0]).toEqual({ jobs: transactionalJobs + plan.length / 2, effects: transactionalJobs + plan.length / 2, matching: transactionalJobs + plan.length / 2 })

    const { rows } = await db.query<{ job_id: string; executions: number; result_attempt: number }>(
      `select r.job_id::text, r.attempt as result_attempt, (select count(*)::int from public.chaos_executions as e where e.job_id = r.job_id) as executions
       from skiplock.job_results as r
       where r.job_id = any($1::bigint[])`,
      [faulty.map((job) => job.jobId)],
    )
    const outcomes = new Map(rows.map((row) => [row.job_id, row]))
    for (const { fault, jobId } of faulty) {
      if (fault === 'kill-before-commit') {
        // The first attempt's completion and result rolled back with the process; the job ran again.
        expect(outcomes.get(jobId), `job ${jobId} (${fault})`).toMatchObject({ result_attempt: 2, executions: 2 })
      } else {
        // The completion committed before the process died: the job never runs again.
        expect(outcomes.get(jobId), `job ${jobId} (${fault})`).toMatchObject({ result_attempt: 1, executions: 1 })
      }
    }
  },
)
