import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'

import { test } from '@skiplock/schema/testing'
import { describe, expect, it } from 'vitest'

import { postgresServerPid, processSampler, type ProcessSample } from '../src/index.ts'
import { deadPid, startProcessTree, temporaryDirectory } from './helpers.ts'

async function sampleProcess(sampler: ReturnType<typeof processSampler>): Promise<ProcessSample> {
  const [sample] = await sampler.sample()
  if (sample?.kind !== 'process') throw new Error(`expected a process sample, got ${JSON.stringify(sample)}`)
  return sample
}

describe('processSampler', () => {
  it('sums CPU and PSS over a process and the process it spawned', async () => {
    const tree = await startProcessTree()
    const sampler = processSampler({ name: 'tree', pid: tree.root.pid! })

    const before = await sampleProcess(sampler)
    expect(before).toMatchObject({ kind: 'process', name: 'tree', pid: tree.root.pid, processes: 2 })
    expect(before.pssBytes).toBeGreaterThan(0)

    await tree.busy(300)
    const after = await sampleProcess(sampler)
    expect(after.processes).toBe(2)
    // 300 ms of CPU, read in 10 ms ticks.
    expect(after.cpuSeconds - before.cpuSeconds).toBeGreaterThanOrEqual(0.28)
  })

  it('reads the root alone without includeChildren', async () => {
    const tree = await startProcessTree()
    const alone = await sampleProcess(processSampler({ name: 'root', pid: tree.root.pid!, includeChildren: false }))
    const child = await sampleProcess(processSampler({ name: 'child', pid: tree.childPid }))
    const whole = await sampleProcess(processSampler({ name: 'tree', pid: tree.root.pid! }))
    expect(alone.processes).toBe(1)
    expect(child.processes).toBe(1)
    expect(whole.pssBytes).toBeGreaterThan(alone.pssBytes)
  })

  it('fails with PROCESS_NOT_FOUND once the root process has exited', async () => {
    const tree = await startProcessTree()
    const sampler = processSampler({ name: 'tree', pid: tree.root.pid! })
    await sampleProcess(sampler)
    await tree.end()
    await expect(sampler.sample()).rejects.toMatchObject({ code: 'PROCESS_NOT_FOUND', pid: tree.root.pid })
    await expect(processSampler({ name: 'gone', pid: await deadPid() }).sample()).rejects.toMatchObject({
      code: 'PROCESS_NOT_FOUND',
      message: expect.stringMatching(/^process gone \(pid \d+\) is not running$/),
    })
  })

  it('refuses a pid that is not a positive integer', () => {
    expect(() => processSampler({ name: 'x', pid: 0 })).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }))
    expect(() => processSampler({ name: 'x', pid: 1.5 })).toThrow(/pid must be a positive integer, got 1.5/)
  })
})

describe('postgresServerPid', () => {
  test('finds the server of the test database, whose tree processSampler reads', async ({ db, skip }) => {
    const { rows } = await db.query<{ data_directory: string }>('show data_directory')
    const dataDirectory = rows[0]!.data_directory
    let pid: number
    try {
      pid = await postgresServerPid(dataDirectory)
    } catch {
      return skip(`the test server's data directory ${dataDirectory} is not on this machine`)
    }
    await db.connect()
    const sample = await sampleProcess(processSampler({ name: 'postgres', pid }))
    // The postmaster, its auxiliary processes (checkpointer, writers…) and at least this backend.
    expect(sample.processes).toBeGreaterThanOrEqual(3)
    expect(sample.pssBytes).toBeGreaterThan(0)
    expect(sample.cpuSeconds).toBeGreaterThan(0)
  })

  it('fails with POSTMASTER_PID_UNREADABLE for a missing or malformed postmaster.pid', async () => {
    const directory = await temporaryDirectory()
    await expect(postgresServerPid(directory)).rejects.toMatchObject({ code: 'POSTMASTER_PID_UNREADABLE', dataDirectory: directory })
    await writeFile(join(directory, 'postmaster.pid'), 'not a pid\n/var/lib/postgresql\n')
    await expect(postgresServerPid(directory)).rejects.toThrow(/line 1 is "not a pid", not a pid/)
    await writeFile(join(directory, 'postmaster.pid'), '4242\n/var/lib/postgresql\n')
    await expect(postgresServerPid(directory)).resolves.toBe(4242)
  })
})
