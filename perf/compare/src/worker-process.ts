// One worker process of a peer, started by scenarios/run-workers.ts with IPC. Protocol:
//   child -> { type: 'ready' }            modules loaded, nothing connected yet
//   parent -> { type: 'start' }           start the peer's worker
//   child -> { type: 'started' }          the worker is running
//   child -> { type: 'progress', executions } every 100 ms
//   parent -> { type: 'stop' }            stop the worker, then
//   child -> { type: 'done', ids, pickupsMs, maxRssBytes }
//            every job id a handler saw, in order (duplicates kept); the pickup latency of each job
//            whose payload carried `enqueuedAt`; the process's peak resident set size
import { resourceUsage } from 'node:process'
import { setTimeout as delay } from 'node:timers/promises'

import { loadPeer, type PeerName, type RunningWorker, type WorkerPlan } from './peers/peer.ts'

const [peerName, planJson, databaseUrl, redisUrl] = process.argv.slice(2) as [PeerName, string, string, string]
const plan = JSON.parse(planJson) as WorkerPlan
const peer = await loadPeer(peerName)
const ids: string[] = []
const pickupsMs: number[] = []
let worker: RunningWorker | undefined
let progressTimer: NodeJS.Timeout | undefined

const send = (message: unknown) => new Promise<void>((resolve) => process.send!(message, () => resolve()))
// performance.timeOrigin + now() is a high-resolution wall clock shared by every process on the machine.
const now = () => performance.timeOrigin + performance.now()

process.on('message', async (message: { type: 'start' | 'stop' }) => {
  if (message.type === 'start') {
    worker = await peer.startWorker({ databaseUrl, redisUrl: redisUrl || undefined }, plan, async (id, payload) => {
      if (payload.enqueuedAt !== undefined) pickupsMs.push(now() - payload.enqueuedAt)
      ids.push(id)
      if (payload.sleepMs) await delay(payload.sleepMs)
    })
    progressTimer = setInterval(() => void send({ type: 'progress', executions: ids.length }), 100)
    await send({ type: 'started' })
  } else if (message.type === 'stop') {
    clearInterval(progressTimer)
    await worker?.stop()
    // ru_maxrss is in kilobytes.
    await send({ type: 'done', ids, pickupsMs, maxRssBytes: resourceUsage().maxRSS * 1024 })
    process.disconnect()
    process.exit(0)
  }
})
await send({ type: 'ready' })
