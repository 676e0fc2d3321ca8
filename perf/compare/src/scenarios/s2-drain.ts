import { type ChildProcess, fork } from 'node:child_process'
import { once } from 'node:events'
import { setTimeout as delay } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'

import pg from 'pg'

import { measure } from '../measure.ts'
import type { ScenarioResult, ScenarioRun } from './scenario.ts'

type ChildMessage = { type: 'ready' } | { type: 'progress'; executions: number } | { type: 'done'; ids: string[] }

const workerScript = fileURLToPath(new URL('../worker-process.ts', import.meta.url))

/**
 * S2: `jobs` no-op jobs are queued before any worker starts; the measured interval runs from
 * starting the worker processes to an empty queue (every job executed and its completion committed).
 */
export async function runDrain({ peer, config, target, postmasterPid, options }: ScenarioRun): Promise<ScenarioResult> {
  await peer.setup(target)
  await peer.enqueue(target, options.jobs)
  if (peer.usesPostgres) {
    // Every peer starts from the same point: the enqueue's dirty pages written out.
    const client = new pg.Client({ connectionString: target.databaseUrl })
    await client.connect()
    await client.query('checkpoint')
    await client.end()
  }
  const plan = peer.workerPlan(config)
  const children = Array.from({ length: plan.processes }, () =>
    fork(workerScript, [peer.name, config, target.databaseUrl, target.redisUrl ?? ''], {
      execArgv: ['--conditions=development'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    }),
  )
  const executions = new Map<ChildProcess, number>()
  const idsByChild = new Map<ChildProcess, string[]>()
  const readiness = children.map(
    (child) =>
      new Promise<void>((resolve, reject) => {
        child.once('exit', (code) => reject(new Error(`${peer.name} worker exited with ${code} before it was ready`)))
        child.on('message', (message: ChildMessage) => {
          if (message.type === 'ready') resolve()
          else if (message.type === 'progress') executions.set(child, message.executions)
          else if (message.type === 'done') idsByChild.set(child, message.ids)
        })
      }),
  )
  let stopping: Promise<void> | undefined
  // Stops every worker (it reports the ids it ran) and waits for the processes to exit.
  const stopChildren = () =>
    (stopping ??= Promise.all(
      children.map(async (child) => {
        if (child.exitCode !== null) return
        const exited = once(child, 'exit')
        child.send({ type: 'stop' })
        await exited
      }),
    ).then(() => {}))
  try {
    await Promise.all(readiness)
    const total = () => [...executions.values()].reduce((sum, count) => sum + count, 0)
    const { measurement, result: isPartial } = await measure(
      {
        databaseUrl: peer.usesPostgres ? target.databaseUrl : undefined,
        postmasterPid: peer.usesPostgres ? postmasterPid : undefined,
        clientPids: children.map((child) => child.pid!),
        settle: () => stopChildren(),
      },
      async () => {
        const deadline = performance.now() + options.maxSeconds * 1000
        for (const child of children) child.send({ type: 'start' })
        while (total() < options.jobs) {
          if (performance.now() > deadline) return true
          await delay(20)
        }
        // Executed is not yet completed: wait for the completions to commit.
        while ((await peer.countRemaining(target)) > 0) {
          if (performance.now() > deadline) return true
          await delay(20)
        }
        return false
      },
    )
    await stopChildren()
    const ids = [...idsByChild.values()].flat()
    const distinct = new Set(ids).size
    const remaining = await peer.countRemaining(target)
    const isExactlyOnce = isPartial ? distinct === ids.length && distinct + remaining === options.jobs : ids.length === options.jobs && distinct === options.jobs && remaining === 0
    const duplicates = ids.length - distinct
    return {
      scenario: 'S2',
      peer: peer.name,
      config,
      configDescription: plan.description,
      jobs: options.jobs,
      // A partial run's rate counts what the handlers ran within the interval.
      jobsDone: isPartial ? Math.min(distinct, Math.round(total())) : options.jobs,
      measurement,
      isExactlyOnce,
      isPartial,
      note: [
        isPartial ? `stopped after ${options.maxSeconds} s with ${remaining} of ${options.jobs} left` : '',
        duplicates ? `${duplicates} duplicate executions` : '',
      ]
        .filter(Boolean)
        .join('; '),
    }
  } finally {
    for (const child of children) if (child.exitCode === null) child.kill('SIGKILL')
  }
}
