// One worker process of a peer, started by scenarios/s2-drain.ts with IPC. Protocol:
//   child -> { type: 'ready' }            modules loaded, nothing connected yet
//   parent -> { type: 'start' }           start the peer's worker
//   child -> { type: 'progress', executions } every 100 ms
//   parent -> { type: 'stop' }            stop the worker, then
//   child -> { type: 'done', ids }         every job id a handler saw, in order (duplicates kept)
import { type ConfigName, loadPeer, type PeerName, type RunningWorker } from './peers/peer.ts'

const [peerName, config, databaseUrl, redisUrl] = process.argv.slice(2) as [PeerName, ConfigName, string, string]
const peer = await loadPeer(peerName)
const ids: string[] = []
let worker: RunningWorker | undefined
let progressTimer: NodeJS.Timeout | undefined

const send = (message: unknown) => new Promise<void>((resolve) => process.send!(message, () => resolve()))

process.on('message', async (message: { type: 'start' | 'stop' }) => {
  if (message.type === 'start') {
    worker = await peer.startWorker({ databaseUrl, redisUrl: redisUrl || undefined }, config, (id) => ids.push(id))
    progressTimer = setInterval(() => void send({ type: 'progress', executions: ids.length }), 100)
  } else if (message.type === 'stop') {
    clearInterval(progressTimer)
    await worker?.stop()
    await send({ type: 'done', ids })
    process.disconnect()
    process.exit(0)
  }
})
await send({ type: 'ready' })
