import { mkdir, open, type FileHandle } from 'node:fs/promises'
import { dirname } from 'node:path'

import type { Sink } from '../monitor.ts'

/**
 * Appends each sample as one JSON line to `path`, creating its parent directories; one write per round,
 * so a reader never sees half a round unless the disk is full. The file is opened on the first round.
 */
export function jsonlSink(path: string): Sink {
  let file: Promise<FileHandle> | undefined

  const openFile = async (): Promise<FileHandle> => {
    await mkdir(dirname(path), { recursive: true })
    return open(path, 'a')
  }

  return {
    name: `jsonl ${path}`,
    async write(samples) {
      if (samples.length === 0) return
      const opening = (file ??= openFile())
      let handle: FileHandle
      try {
        handle = await opening
      } catch (error) {
        file = undefined
        throw error
      }
      await handle.write(samples.map((sample) => `${JSON.stringify(sample)}\n`).join(''))
    },
    async close() {
      const opening = file
      file = undefined
      const handle = await opening
      await handle?.close()
    },
  }
}
