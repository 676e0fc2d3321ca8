import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

import { expect, onTestFinished } from 'vitest'

/** A fresh temporary directory, removed when the test finishes. */
export async function temporaryDirectory(): Promise<string> {
  const directory = await mkdtemp(join(tmpdir(), 'skiplock-monitor-'))
  onTestFinished(() => rm(directory, { recursive: true, force: true }))
  return directory
}

/** A running fixture tree: `root` is the spawned node process, `childPid` the process it spawned. */
export interface ProcessTree {
  readonly root: ChildProcess
  readonly childPid: number
  /** Makes the root use `cpuMs` of CPU and resolves when it has. */
  busy(cpuMs: number): Promise<void>
  /** Ends both processes and resolves when the root has exited. */
  end(): Promise<void>
}

/** Starts test/fixtures/process-tree.ts; both processes are ended when the test finishes. */
export async function startProcessTree(): Promise<ProcessTree> {
  const fixture = fileURLToPath(new URL('./fixtures/process-tree.ts', import.meta.url))
  const root = spawn(process.execPath, [fixture], { stdio: ['pipe', 'pipe', 'inherit'] })
  const lines: string[] = []
  const waiters: Array<() => void> = []
  let buffered = ''
  root.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    buffered += chunk
    const complete = buffered.split('\n')
    buffered = complete.pop() ?? ''
    lines.push(...complete)
    for (const wake of waiters.splice(0)) wake()
  })
  const nextLine = async (): Promise<string> => {
    while (lines.length === 0) {
      if (root.exitCode !== null) throw new Error('the process tree fixture exited')
      await new Promise<void>((resolve) => waiters.push(resolve))
    }
    return lines.shift()!
  }
  const exited = once(root, 'exit')
  const end = async (): Promise<void> => {
    if (root.exitCode === null && root.signalCode === null) {
      root.stdin!.end()
      await exited
    }
  }
  let childPid: number | undefined
  onTestFinished(async () => {
    await end()
    try {
      if (childPid !== undefined) process.kill(childPid)
    } catch {
      // Already ended by its parent.
    }
  })
  childPid = Number(await nextLine())
  return {
    root,
    childPid,
    async busy(cpuMs) {
      root.stdin!.write(`busy ${cpuMs}\n`)
      expect(await nextLine()).toBe('done')
    },
    end,
  }
}

/** The pid of a process that has already exited. */
export async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' })
  await once(child, 'exit')
  return child.pid!
}
