import type { RunWindow } from './job-series.ts'
import { markdownTable } from './markdown.ts'
import { coresUsed, processesByName, type Samples, within } from './samples.ts'
import { formatNumber, mean, peak } from './statistics.ts'

/** CPU and memory of one process tree (the database's, or the workers') during the run window. */
export interface ProcessResources {
  name: string
  samples: number
  meanCores: number
  peakCores: number
  meanPssBytes: number
  peakPssBytes: number
}

/** CPU (cores used = Δ CPU seconds / Δ seconds) and PSS of each sampled process tree within the run window. */
export function processResources(samples: Samples | undefined, window: RunWindow): ProcessResources[] {
  if (!samples) return []
  const resources: ProcessResources[] = []
  for (const [name, list] of processesByName(samples.processes)) {
    const inWindow = Number.isFinite(window.startMs) ? within(list, window.startMs, window.endMs) : list
    if (inWindow.length === 0) continue
    const cores = coresUsed(inWindow).map((point) => point.perSecond)
    const pss = inWindow.map((sample) => sample.pssBytes)
    resources.push({ name, samples: inWindow.length, meanCores: mean(cores), peakCores: peak(cores), meanPssBytes: mean(pss), peakPssBytes: peak(pss) })
  }
  return resources.sort((a, b) => a.name.localeCompare(b.name))
}

const times = (count: number) => (count === 1 ? 'once' : `${count} times`)
const mebibytes = (bytes: number) => formatNumber(bytes / 2 ** 20)

/** The "Database and worker resources" section, with the monitor's sampler errors; "not measured" without samples. */
export function resourcesMarkdown(resources: readonly ProcessResources[], samples: Samples | undefined): string {
  const parts = ['## Database and worker resources']
  if (!samples) {
    parts.push('not measured: the run has no samples.jsonl')
  } else if (resources.length === 0) {
    parts.push('not measured: samples.jsonl has no process sample within the run')
  } else {
    parts.push(
      markdownTable(
        ['process', 'samples', 'mean cores', 'peak cores', 'mean PSS MiB', 'peak PSS MiB'],
        resources.map((row) => [row.name, row.samples, formatNumber(row.meanCores), formatNumber(row.peakCores), mebibytes(row.meanPssBytes), mebibytes(row.peakPssBytes)]),
      ),
      'Between the first job started and the last job finished; cores used = Δ CPU seconds / Δ seconds of the whole process tree, memory is summed PSS.',
    )
  }
  if (samples && samples.errors.length > 0) {
    const first = samples.errors[0]!
    parts.push(`The monitor's samplers failed ${times(samples.errors.length)}; first: ${first.sampler}: ${first.message}`)
  }
  if (samples && samples.malformedLines > 0) parts.push(`Lines of samples.jsonl that could not be read and were skipped: ${samples.malformedLines}.`)
  return parts.join('\n\n')
}
