// Starts a throwaway PostgreSQL (a container where Docker answers, else embedded), prints its URL
// and keeps it until Ctrl-C, SIGTERM, or the end of stdin; then removes it with all its data.
//
//   node --conditions=development scripts/start-database.ts [--setting name=value ...]
//
// DATABASE_URL is ignored on purpose: the point is a fresh server.
import { fstatSync } from 'node:fs'
import { parseArgs } from 'node:util'

import { startDatabaseServer, type ServerSettings } from '@skiplock/schema/server'

const usage = 'usage: start-database.ts [--setting name=value ...]   e.g. --setting max_connections=200'

let settings: ServerSettings
try {
  const { values } = parseArgs({ options: { setting: { type: 'string', short: 's', multiple: true } } })
  settings = Object.fromEntries((values.setting ?? []).map(parseSetting))
} catch (error) {
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n${usage}\n`)
  process.exit(2)
}

const server = await startDatabaseServer({ databaseUrl: '', settings })
process.stdout.write(`${server.url}\n`)
process.stderr.write(`${server.kind} PostgreSQL is running; Ctrl-C stops it and deletes its data\n`)

const stop = () => {
  void server.stop().then(
    () => process.exit(0),
    (error: unknown) => {
      process.stderr.write(`${String(error)}\n`)
      process.exit(1)
    },
  )
}
process.once('SIGINT', stop).once('SIGTERM', stop)
// Only a terminal or a pipe held by a parent ends meaningfully: /dev/null would stop the server at once.
const stdin = fstatSync(0)
if (process.stdin.isTTY || stdin.isFIFO() || stdin.isSocket()) process.stdin.once('end', stop).resume()
// The server does not keep this process alive; this timer does until one of the above stops it.
setInterval(() => {}, 60_000)

function parseSetting(text: string): [string, string] {
  const separatorIndex = text.indexOf('=')
  if (separatorIndex <= 0) throw new Error(`--setting ${JSON.stringify(text)} is not name=value`)
  return [text.slice(0, separatorIndex), text.slice(separatorIndex + 1)]
}
