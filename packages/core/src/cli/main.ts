#!/usr/bin/env node
import { runCli } from './program.ts'

const exitCode = await runCli(process.argv)
// Exit explicitly: a worker module may hold handles of its own (pools, timers) that would keep the
// process alive after the worker stopped. Wait for stdout first, which may be an asynchronous pipe.
process.stdout.write('', () => process.exit(exitCode))
