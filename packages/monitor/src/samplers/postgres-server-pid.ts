import { readFile } from 'node:fs/promises'
import { join } from 'node:path'

import { errorMessage } from '../connection.ts'
import { PostmasterPidError } from '../errors.ts'

/**
 * The pid of the PostgreSQL server (the postmaster) that owns `dataDirectory`: line 1 of its
 * `postmaster.pid`. Pass it to `processSampler` to follow the server and all its backends, without
 * matching processes by name (another server may run on the machine).
 * @throws {PostmasterPidError} when the file is missing (server stopped, wrong directory) or malformed.
 */
export async function postgresServerPid(dataDirectory: string): Promise<number> {
  let text: string
  try {
    text = await readFile(join(dataDirectory, 'postmaster.pid'), 'utf8')
  } catch (error) {
    throw new PostmasterPidError({ dataDirectory, reason: errorMessage(error) }, { cause: error })
  }
  const firstLine = text.split('\n', 1)[0]?.trim() ?? ''
  const pid = Number(firstLine)
  if (!/^\d+$/.test(firstLine) || pid <= 0) {
    throw new PostmasterPidError({ dataDirectory, reason: `line 1 is ${JSON.stringify(firstLine)}, not a pid` })
  }
  return pid
}
