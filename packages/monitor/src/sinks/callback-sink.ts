import type { Sample } from '../samples.ts'
import type { Sink } from '../monitor.ts'

/**
 * Calls `write` with each round's samples: for tests, live dashboards, or forwarding to another system.
 * A throw (or rejection) is reported to the monitor's `onError` and the next round still arrives.
 */
export function callbackSink(write: (samples: readonly Sample[]) => void | Promise<void>, name = 'callback'): Sink {
  return { name, write }
}
