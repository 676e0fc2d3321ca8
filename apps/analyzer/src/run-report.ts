import { writeFile } from 'node:fs/promises'

import type { ResultCounts, RunJobRow } from '@skiplock/schema'

import { type ConnectionModel, connectionModelMarkdown, evaluateConnectionModel, type ModelScenario } from './connection-model.ts'
import { meanRunSeconds, runWindow } from './job-series.ts'
import { type RenderedPlot, writePlots } from './plot-render.ts'
import { buildPlots } from './plots.ts'
import { buildReport, type EnqueueRecord, type Report } from './report.ts'
import { buildReportPage } from './report-page.ts'
import { type ProcessResources, processResources, resourcesMarkdown } from './resources.ts'
import { readSamples } from './samples.ts'
import type { NotMeasured, StatementStats } from './statement-stats.ts'

/** What the analyzer gathered about one run: its files, and what it read from the database. */
export interface RunInput {
  runId: string
  /** scenario.json, as the orchestrator wrote it. */
  scenario: Record<string, unknown>
  enqueue: EnqueueRecord
  jobs: readonly RunJobRow[]
  counts: ResultCounts
  statements: StatementStats | NotMeasured
  /** What the run ran on, for run.json and the page. */
  environment: Record<string, unknown>
}

/** The written report: summary.md's text and figures, and what run.json and the page were built from. */
export interface RunReport extends Report {
  isClean: boolean
  connectionModel: ConnectionModel
  resources: ProcessResources[]
  plots: RenderedPlot[]
}

/**
 * Writes a run's report into its directory: summary.md, run.json, plots/<name>.svg and .png, and
 * report.html. Reads samples.jsonl from the same directory when the monitor wrote one; without it the
 * sampled figures read "not measured".
 */
export async function writeRunReport(directory: URL, run: RunInput): Promise<RunReport> {
  const samples = await readSamples(new URL('samples.jsonl', directory))
  const window = runWindow(run.jobs)
  const connectionModel = evaluateConnectionModel({
    scenario: modelScenario(run.scenario),
    jobs: run.enqueue.deferred,
    meanJobSeconds: meanRunSeconds(run.jobs),
    statements: run.statements,
    samples,
    window,
  })
  const resources = processResources(samples, window)
  const title = `Run ${run.runId} (${String(run.scenario.name)})`
  const report = buildReport(title, run.jobs, run.enqueue, run.counts, [connectionModelMarkdown(connectionModel, run.statements), resourcesMarkdown(resources, samples)])
  const isClean = report.figures.lost === 0 && report.figures.dupResults === 0
  // The text reports first: a plot that fails to render must not cost the run its summary.
  await writeFile(new URL('summary.md', directory), report.markdown)
  await writeFile(
    new URL('run.json', directory),
    `${JSON.stringify({ runId: run.runId, scenario: run.scenario, figures: report.figures, verdict: report.verdict, connectionModel, resources, environment: run.environment }, null, 2)}\n`,
  )

  let originMs = Date.parse(run.enqueue.startedAt)
  for (const job of run.jobs) originMs = Math.min(originMs, job.enqueuedAt.getTime())
  const plots = await writePlots(
    directory,
    buildPlots({
      jobs: run.jobs,
      originMs,
      samples,
      steadyJobsPerSecond: report.figures.steadyJobsPerSecond,
      requestedConnections: connectionModel.predicted.requestedWithListen ?? connectionModel.predicted.requestedPool,
    }),
  )
  await writeFile(
    new URL('report.html', directory),
    buildReportPage({ title, figures: report.figures, verdict: report.verdict, isClean, markdown: report.markdown, plots, scenario: run.scenario, environment: run.environment }),
  )
  return { ...report, isClean, connectionModel, resources, plots }
}

function modelScenario(scenario: Record<string, unknown>): ModelScenario {
  const count = (field: string) => {
    const value = scenario[field]
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
      throw new Error(`scenario.json: ${field} is ${JSON.stringify(value)}, expected a whole number of at least 1`)
    }
    return value
  }
  return { processes: count('processes'), concurrency: count('concurrency'), poolSize: count('poolSize'), listen: scenario.listen !== false }
}
