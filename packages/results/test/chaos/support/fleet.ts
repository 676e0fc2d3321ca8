import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

import { test } from '@skiplock/core/testing'
import type { TestDatabase } from '@skiplock/schema/testing'

import { Ledger } from './ledger.ts'
import { createRandom, sleep } from './scale.ts'

const workerScript = fileURLToPath(new URL('./chaos-worker.ts', import.meta.url))

/** Settings of a chaos worker process (see chaos-worker.ts); numbers in the units their names say. */
export interface WorkerSettings {
  CONCURRENCY?: number
  BATCH_SIZE?: number
  POOL_SIZE?: number
  LEASE_SECONDS?: number
  HEARTBEAT_MS?: number
  MAINTENANCE_MS?: number
  POLL_MS?: number
  GRACE_MS?: number
  MAX_JOB_MS?: number
  QUEUES?: string
  /** The worker's `attributeFilter`, as JSON. */
  ATTRIBUTE_FILTER?: string
  /** Where the worker connects; default the test database. */
  DATABASE_URL?: string
  /** A separate URL for its LISTEN connection (e.g. direct, when DATABASE_URL goes through a pooler). */
  LISTEN_URL?: string
  /** Where the process records executions; default DATABASE_URL. */
  RECORDER_URL?: string
  /** Connections of the process's recorder pool; default 2. */
  RECORDER_POOL_SIZE?: number
  /** Any value: the worker's log lines are printed as `log` events. */
  LOG?: string
}

/** A line a worker process printed on stdout. */
export interface WorkerEvent {
  event: string
  [field: string]: unknown
}

export interface Exit {
  code: number | null
  signal: NodeJS.Signals | null
  /** When the test saw the process end (`Date.now()`). */
  atMs: number
}

/** A running chaos worker process. */
export class WorkerProcess {
  readonly name: string
  readonly child: ChildProcess
  /** What it was spawned with beyond the fleet's settings; a replacement gets the same. */
  readonly settings: WorkerSettings
  /** The worker id it registered under first. */
  workerId = ''
  /** Lines printed after `started`, and lines on stderr (worker errors). */
  readonly events: WorkerEvent[] = []
  readonly errors: string[] = []
  readonly exited: Promise<Exit>

  constructor(name: string, child: ChildProcess, settings: WorkerSettings) {
    this.name = name
    this.child = child
    this.settings = settings
    this.exited = once(child, 'exit').then(([code, signal]) => ({ code: code as number | null, signal: signal as NodeJS.Signals | null, atMs: Date.now() }))
    createInterface({ input: child.stderr! }).on('line', (line) => this.errors.push(line))
  }

  get pid(): number {
    return this.child.pid!
  }

  get isAlive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null
  }

  /** Events of one kind printed so far. */
  eventsOf(kind: string): WorkerEvent[] {
    return this.events.filter((event) => event.event === kind)
  }
}

/**
 * The worker processes of one test: spawns them, sends them real signals (recording each fault in the
 * ledger), and kills whatever is left when the test ends.
 */
export class Fleet {
  readonly #db: TestDatabase
  readonly #ledger: Ledger
  #settings: WorkerSettings = {}
  readonly #processes: WorkerProcess[] = []
  #spawned = 0
  #isSupervising = false
  readonly #replacements: Promise<WorkerProcess>[] = []

  constructor(db: TestDatabase, ledger: Ledger) {
    this.#db = db
    this.#ledger = ledger
  }

  /** Settings for every process spawned from now on, including replacements after kills. */
  configure(settings: WorkerSettings): void {
    this.#settings = { ...this.#settings, ...settings }
  }

  /** Processes not yet exited (a stopped one counts: it may be continued). */
  get alive(): WorkerProcess[] {
    return this.#processes.filter((process) => process.isAlive)
  }

  /** Every process spawned so far. */
  get all(): readonly WorkerProcess[] {
    return this.#processes
  }

  /** Spawns a worker process and resolves once it has registered and runs. */
  async spawn(settings: WorkerSettings = {}): Promise<WorkerProcess> {
    this.#spawned += 1
    const name = `chaos-${this.#spawned}`
    const env = { ...this.#settings, ...settings }
    const child = spawn(process.execPath, ['--conditions=development', workerScript], {
      env: {
        ...process.env,
        DATABASE_URL: this.#db.url,
        ...Object.fromEntries(Object.entries(env).map(([key, value]) => [key, String(value)])),
        WORKER_NAME: name,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    const worker = new WorkerProcess(name, child, settings)
    this.#processes.push(worker)
    void worker.exited.then((exit) => {
      if (!this.#isSupervising || exit.signal !== 'SIGKILL') return
      const replacement = this.spawn(worker.settings)
      replacement.catch(() => {}) // reported when the supervision ends
      this.#replacements.push(replacement)
    })
    const lines = createInterface({ input: child.stdout! })
    const started = new Promise<void>((resolve) => {
      lines.on('line', (line) => {
        const event = parseEvent(line)
        if (event.event === 'started') {
          worker.workerId = String(event.workerId)
          resolve()
        } else {
          worker.events.push(event)
        }
      })
    })
    await Promise.race([
      started,
      worker.exited.then((exit) => {
        throw new Error(`worker process ${name} exited (${exit.code ?? exit.signal}) before it ran: ${worker.errors.join('\n')}`)
      }),
    ])
    return worker
  }

  async spawnMany(count: number, settings: WorkerSettings = {}): Promise<WorkerProcess[]> {
    return Promise.all(Array.from({ length: count }, () => this.spawn(settings)))
  }

  /**
   * From now on, replaces every process that dies of SIGKILL (its own or the test's), as a process
   * manager would. Returns a function that stops replacing and waits for the replacements to run.
   */
  supervise(): () => Promise<void> {
    this.#isSupervising = true
    return async () => {
      this.#isSupervising = false
      await Promise.all(this.#replacements)
    }
  }

  /**
   * Sends `signal`; a SIGKILL or SIGSTOP is recorded in the ledger as the moment the worker stopped,
   * which is what rescue times are measured from.
   */
  async signal(worker: WorkerProcess, signal: NodeJS.Signals): Promise<void> {
    worker.child.kill(signal)
    const stopsWorker = signal === 'SIGKILL' || signal === 'SIGSTOP'
    await this.#ledger.recordFault(signal, worker.pid, worker.workerId, stopsWorker)
  }

  /**
   * SIGKILLs a random live worker every `everyMs`, `kills` times, spawning a replacement after each,
   * so the fleet keeps its size while jobs are lost from under it. The victims come from a random stream
   * of their own, so a seed replays them whatever else the test draws.
   */
  async killRepeatedly(options: {
    kills: number
    everyMs: number
    /** Picks the victim among the live processes, e.g. one running a job; a random one when it returns undefined. */
    choose?: (candidates: readonly WorkerProcess[]) => Promise<WorkerProcess | undefined>
  }): Promise<void> {
    const random = createRandom()
    for (let kill = 0; kill < options.kills; kill += 1) {
      await sleep(options.everyMs)
      const candidates = this.alive
      const randomVictim = candidates[Math.floor(random() * candidates.length)]!
      const victim = (await options.choose?.(candidates)) ?? randomVictim
      await this.signal(victim, 'SIGKILL')
      await victim.exited
      await this.spawn(victim.settings)
    }
  }

  /** SIGTERMs every live process and waits for them; each must exit 0. */
  async stopAll(): Promise<Exit[]> {
    const running = this.alive
    for (const worker of running) worker.child.kill('SIGTERM')
    const exits = await Promise.all(running.map((worker) => worker.exited))
    const failed = exits.flatMap((exit, index) => (exit.code === 0 ? [] : [`${running[index]!.name}: ${exit.code ?? exit.signal}`]))
    if (failed.length > 0) throw new Error(`worker processes did not exit 0 after SIGTERM: ${failed.join(', ')}`)
    return exits
  }

  /** Kills what is left, continuing stopped processes first so they can die. */
  killAll(): void {
    this.#isSupervising = false
    for (const worker of this.alive) {
      worker.child.kill('SIGKILL')
      worker.child.kill('SIGCONT')
    }
  }
}

/** `test` with the chaos ledger and a fleet of worker processes, killed when the test ends. */
export const chaosTest = test.extend<{ ledger: Ledger; fleet: Fleet }>({
  ledger: async ({ db, skiplock }, use) => {
    await use(await Ledger.create(db, skiplock))
  },
  fleet: async ({ db, ledger }, use) => {
    const fleet = new Fleet(db, ledger)
    try {
      await use(fleet)
    } finally {
      fleet.killAll()
      await Promise.all(fleet.all.map((worker) => worker.exited))
    }
  },
})

/** Waits until every acknowledged job reached a final state, or `timeoutMs` passes (then the verdict shows what was lost). */
export async function waitForDrain(ledger: Ledger, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while ((await ledger.unfinished()) > 0 && Date.now() < deadline) await sleep(100)
}

/**
 * Waits until every named worker has started a job after `sinceMs` (the handlers record each start), and
 * returns how long the slowest took; throws once twice `boundMs` has passed, naming the workers still idle.
 */
export async function waitUntilEachClaims(db: TestDatabase, workerNames: readonly string[], sinceMs: number, boundMs: number): Promise<number> {
  const deadline = sinceMs + boundMs * 2
  for (;;) {
    const { rows } = await db
      .query<{ worker_name: string; first_ms: number }>(
        `select worker_name, extract(epoch from min(started_at)) * 1000 as first_ms
         from public.chaos_executions
         where started_at >= to_timestamp($1 / 1000.0) and worker_name = any($2::text[])
         group by worker_name`,
        [sinceMs, workerNames],
      )
      .catch(() => ({ rows: [] }))
    if (rows.length === workerNames.length) return Math.max(...rows.map((row) => Number(row.first_ms) - sinceMs))
    if (Date.now() > deadline) {
      const idle = workerNames.filter((name) => !rows.some((row) => row.worker_name === name))
      throw new Error(`workers ${idle.join(', ')} started no job within ${deadline - sinceMs} ms`)
    }
    await sleep(100)
  }
}

/** A line of a worker's stdout: its JSON event, or the raw line if something else printed it. */
function parseEvent(line: string): WorkerEvent {
  try {
    const event = JSON.parse(line) as unknown
    if (typeof event === 'object' && event !== null && typeof (event as WorkerEvent).event === 'string') return event as WorkerEvent
  } catch {
    // not an event: kept as output below
  }
  return { event: 'output', line }
}
