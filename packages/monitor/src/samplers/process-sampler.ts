import { existsSync } from 'node:fs'
import { readdir, readFile } from 'node:fs/promises'

import { InvalidOptionError, ProcessNotFoundError, ProcessUnreadableError } from '../errors.ts'
import type { Sampler } from '../monitor.ts'
import type { ProcessSample } from '../samples.ts'

/** Options of {@link processSampler}. */
export interface ProcessSamplerOptions {
  /** Names the tree in its samples, e.g. `postgres` or `workers`. */
  readonly name: string
  /** The root of the tree. */
  readonly pid: number
  /** Also read every descendant of `pid`, found afresh each sample (default true). */
  readonly includeChildren?: boolean
}

/** What one process contributes. */
interface ProcessReading {
  readonly startTicks: number
  readonly cpuTicks: number
  readonly pssBytes: number
  readonly children: readonly number[]
}

// /proc reports times in USER_HZ ticks, which the kernel fixes at 100 per second on every architecture
// Node runs on (`getconf CLK_TCK`); no need to spawn getconf.
const CLOCK_TICKS_PER_SECOND = 100

/**
 * Reads CPU time and PSS of a process and its descendants from `/proc/<pid>/stat` and
 * `/proc/<pid>/smaps_rollup` (Linux only). PSS, unlike RSS, counts a shared page once across the tree,
 * so PostgreSQL's shared buffers are not counted once per backend. It is also what a sample pays for:
 * the kernel walks each process's page tables, about 0.2-0.3 ms per PostgreSQL backend (8 ms for a
 * server with 25 processes, `scripts/sample-cost.ts`), against 2 ms for one Node process.
 * CPU includes what each process's reaped children used (`cutime + cstime`): the CPU of PostgreSQL
 * backends that disconnected stays in the postmaster's total instead of vanishing with them.
 * A descendant that exits while it is read is skipped. When the root process is gone, or its pid now
 * belongs to a process started later, the sample fails (an error sample) with `ProcessNotFoundError`.
 * @throws {InvalidOptionError} at once when `pid` is not a positive integer.
 */
export function processSampler(options: ProcessSamplerOptions): Sampler {
  const { name, pid, includeChildren = true } = options
  if (!Number.isInteger(pid) || pid <= 0) throw new InvalidOptionError({ option: 'pid', value: pid, expected: 'a positive integer' })
  let rootStartTicks: number | undefined

  return {
    name,
    async sample(): Promise<[ProcessSample]> {
      const findChildren = !includeChildren ? noChildren : hasChildrenFiles() ? childrenOf : await scanChildren()
      const root = await readProcess(pid, findChildren)
      if (root === undefined) throw new ProcessNotFoundError({ pid, name, reason: 'is not running' })
      rootStartTicks ??= root.startTicks
      if (root.startTicks !== rootStartTicks) {
        throw new ProcessNotFoundError({ pid, name, reason: 'exited; its pid now belongs to another process' })
      }
      let processes = 1
      let cpuTicks = root.cpuTicks
      let pssBytes = root.pssBytes
      // Level by level, every process of a level read in parallel: PostgreSQL's tree is two levels deep.
      let level = root.children
      while (level.length > 0) {
        const readings = await Promise.all(level.map((child) => readProcess(child, findChildren)))
        const nextLevel: number[] = []
        for (const reading of readings) {
          if (reading === undefined) continue
          processes += 1
          cpuTicks += reading.cpuTicks
          pssBytes += reading.pssBytes
          nextLevel.push(...reading.children)
        }
        level = nextLevel
      }
      return [{ kind: 'process', name, pid, processes, cpuSeconds: cpuTicks / CLOCK_TICKS_PER_SECOND, pssBytes }]
    },
  }
}

/** Lists a process's children, or returns undefined when it has exited. */
type ChildrenFinder = (pid: number) => Promise<readonly number[] | undefined>

/** Reads one process, or returns undefined when it has exited. */
async function readProcess(pid: number, findChildren: ChildrenFinder): Promise<ProcessReading | undefined> {
  const [stat, smapsRollup, children] = await Promise.all([
    readProcFile(pid, `/proc/${pid}/stat`),
    readProcFile(pid, `/proc/${pid}/smaps_rollup`),
    findChildren(pid),
  ])
  if (stat === undefined || smapsRollup === undefined || children === undefined) return undefined
  // The command name in parentheses may itself hold spaces and parentheses: fields start after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  // Fields 14-17 (utime, stime, cutime, cstime) and 22 (starttime), counted from 1 with pid and comm first.
  const field = (number: number): number => Number(fields[number - 3])
  // A zombie has no memory map: its smaps_rollup is empty and it adds no PSS.
  const pssKib = /^Pss:\s+(\d+) kB$/m.exec(smapsRollup)?.[1]
  return {
    startTicks: field(22),
    cpuTicks: field(14) + field(15) + field(16) + field(17),
    pssBytes: Number(pssKib ?? 0) * 1024,
    children,
  }
}

const noChildren: ChildrenFinder = async () => []

let childrenFilesExist: boolean | undefined

// /proc/<pid>/task/<tid>/children needs CONFIG_PROC_CHILDREN, which mainstream kernels enable; without it
// the whole process table is scanned instead.
function hasChildrenFiles(): boolean {
  childrenFilesExist ??= existsSync(`/proc/${process.pid}/task/${process.pid}/children`)
  return childrenFilesExist
}

/** Children of every thread of `pid` (a child belongs to the thread that forked it): cost grows with the tree only. */
async function childrenOf(pid: number): Promise<number[] | undefined> {
  let threads: string[]
  try {
    threads = await readdir(`/proc/${pid}/task`)
  } catch (error) {
    if (isGone(error)) return undefined
    throw new ProcessUnreadableError({ pid, path: `/proc/${pid}/task` }, { cause: error })
  }
  // A thread that ended since the listing simply has no children left to report.
  const lists = await Promise.all(threads.map((thread) => readProcFile(pid, `/proc/${pid}/task/${thread}/children`)))
  return lists.flatMap((list) => (list ?? '').split(' ').filter((child) => child !== '').map(Number))
}

/** Reads the parent of every process on the machine once, for kernels without children files. */
async function scanChildren(): Promise<ChildrenFinder> {
  const pids = (await readdir('/proc')).filter((entry) => /^\d+$/.test(entry))
  const stats = await Promise.all(pids.map((pid) => readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined)))
  const childrenByParent = new Map<number, number[]>()
  stats.forEach((stat, index) => {
    if (stat === undefined) return
    const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
    const children = childrenByParent.get(parent) ?? []
    children.push(Number(pids[index]))
    childrenByParent.set(parent, children)
  })
  return async (pid) => childrenByParent.get(pid) ?? []
}

/** Reads a /proc file, returning undefined when the process (or thread) has exited. */
async function readProcFile(pid: number, path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8')
  } catch (error) {
    if (isGone(error)) return undefined
    throw new ProcessUnreadableError({ pid, path }, { cause: error })
  }
}

function isGone(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code
  return code === 'ENOENT' || code === 'ESRCH'
}
