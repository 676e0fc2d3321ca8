import { type ChildProcess, fork } from 'node:child_process'
import { once } from 'node:events'
import { setTimeout as delay } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'

import type { Inspection } from '../inspect.ts'
import { type Measurement, measure } from '../measure.ts'
import type { Peer, PeerTarget, WorkerPlan } from '../peers/peer.ts'

type ChildMessage =
  | { type: 'ready' | 'started' }
  | { type: 'progress'; executions: number }
  | { type: 'done'; ids: string[]; pickupsMs: number[]; maxRssBytes: number }

const workerScript = fileURLToPath(new URL('../worker-process.ts', import.meta.url))

export interface WorkersRunOptions {
  peer: Peer
  target: PeerTarget
  /** The harness's own URL (monitoring, counting); undefined without PostgreSQL. */
  adminUrl: string | undefined
  postmasterPid: number | undefined
  plan: WorkerPlan
  /** Executions the run waits for before it waits for an empty queue. */
  jobs: number
  maxSeconds: number
  /**
   * `false`: the measured interval starts with starting the workers (a backlog is already queued).
   * `true`: the workers are started and idle first; the interval starts with `produce`.
   */
  isIdleAtStart: boolean
  /** Runs at the start of the measured interval (enqueues, for idle workers). */
  produce?: () => Promise<void>
}

export interface WorkersOutcome {
  measurement: Measurement
  inspection: Inspection | null
  /** Seconds from the end of `produce` (or the start) to an empty queue. */
  drainSeconds: number
  /** Stopped at `maxSeconds` before the queue was empty. */
  isPartial: boolean
  /** Every execution's job id, duplicates kept. */
  ids: string[]
  /** Handlers started within the interval (equals `ids.length` unless partial). */
  executionsInInterval: number
  pickupsMs: number[]
  /** The largest peak resident set size among the worker processes. */
  maxRssBytes: number
  remaining: number
}

/**
 * Forks `plan.processes` worker processes of a peer, measures until every job ran and the queue is
 * empty (or `maxSeconds` passed), then stops them and collects what each handler saw.
 */
export async function runWorkers(options: WorkersRunOptions): Promise<WorkersOutcome> {
  const { peer, target, plan } = options
  // Counting runs as the harness, so it stays out of the peer's statements.
  const countTarget = { ...target, databaseUrl: options.adminUrl ?? target.databaseUrl }
  const children = Array.from({ length: plan.processes }, () =>
    fork(workerScript, [peer.name, JSON.stringify(plan), target.databaseUrl, target.redisUrl ?? ''], {
      execArgv: ['--conditions=development'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    }),
  )
  const executions = new Map<ChildProcess, number>()
  const reports = new Map<ChildProcess, Extract<ChildMessage, { type: 'done' }>>()
  const waitForMessage = (child: ChildProcess, type: 'ready' | 'started') =>
    new Promise<void>((resolve, reject) => {
      const onExit = (code: number | null) => reject(new Error(`${peer.name} worker exited with ${code} before it was ${type}`))
      child.once('exit', onExit)
      child.on('message', (message: ChildMessage) => {
        if (message.type !== type) return
        child.off('exit', onExit)
        resolve()
      })
    })
  for (const child of children) {
    child.on('message', (message: ChildMessage) => {
      if (message.type === 'progress') executions.set(child, message.executions)
      else if (message.type === 'done') reports.set(child, message)
    })
  }
  const startChildren = async () => {
    const started = children.map((child) => waitForMessage(child, 'started'))
    for (const child of children) child.send({ type: 'start' })
    return started
  }
  let stopping: Promise<void> | undefined
  // Stops every worker (it reports what it ran) and waits for the processes to exit.
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
    await Promise.all(children.map((child) => waitForMessage(child, 'ready')))
    if (options.isIdleAtStart) await Promise.all(await startChildren())
    const total = () => [...executions.values()].reduce((sum, count) => sum + count, 0)
    let drainSeconds = 0
    const { measurement, inspection, result: isPartial } = await measure(
      {
        databaseUrl: options.adminUrl,
        inspectJobs: options.jobs,
        postmasterPid: peer.usesPostgres ? options.postmasterPid : undefined,
        clientPids: children.map((child) => child.pid!),
        settle: () => stopChildren(),
      },
      async () => {
        const deadline = performance.now() + options.maxSeconds * 1000
        if (!options.isIdleAtStart) {
          // A worker that fails to start shows as missing executions: the run ends partial.
          void startChildren()
            .then((started) => Promise.all(started))
            .catch((error: Error) => console.error(`${peer.name}: ${error.message}`))
        }
        await options.produce?.()
        const drainStartedAt = performance.now()
        try {
          while (total() < options.jobs) {
            if (performance.now() > deadline) return true
            await delay(10)
          }
          // Executed is not yet completed: wait for the completions to commit.
          while ((await peer.countRemaining(countTarget)) > 0) {
            if (performance.now() > deadline) return true
            await delay(10)
          }
          return false
        } finally {
          drainSeconds = (performance.now() - drainStartedAt) / 1000
        }
      },
    )
    const executionsInInterval = total()
    await stopChildren()
    const childReports = [...reports.values()]
    return {
      measurement,
      inspection,
      drainSeconds,
      isPartial,
      ids: childReports.flatMap((report) => report.ids),
      executionsInInterval,
      pickupsMs: childReports.flatMap((report) => report.pickupsMs),
      maxRssBytes: Math.max(...childReports.map((report) => report.maxRssBytes)),
      remaining: await peer.countRemaining(countTarget),
    }
  } finally {
    for (const child of children) if (child.exitCode === null) child.kill('SIGKILL')
  }
}

/**
 * Exactly once: every job ran once and the queue is empty. For a partial run: nothing ran twice and
 * nothing vanished (a job running when the run stopped may be both executed and still in the queue).
 */
export function checkExactlyOnce(outcome: WorkersOutcome, jobs: number): { isExactlyOnce: boolean; note: string } {
  const distinct = new Set(outcome.ids).size
  const duplicates = outcome.ids.length - distinct
  const isExactlyOnce = outcome.isPartial
    ? duplicates === 0 && distinct <= jobs && distinct + outcome.remaining >= jobs
    : outcome.ids.length === jobs && distinct === jobs && outcome.remaining === 0
  const note = [
    outcome.isPartial ? `stopped with ${outcome.remaining} of ${jobs} left` : '',
    duplicates ? `${duplicates} duplicate executions` : '',
  ]
    .filter(Boolean)
    .join('; ')
  return { isExactlyOnce, note }
}
