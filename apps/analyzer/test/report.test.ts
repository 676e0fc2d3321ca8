import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

import { heartbeat, migrate, registerWorker, toQueryable } from '@skiplock/schema'
import { startDatabaseServer } from '@skiplock/schema/server'
import { test } from '@skiplock/schema/testing'
import pg from 'pg'
import { chromium } from 'playwright-core'
import { describe, expect, recordArtifact, type TestArtifactBase, type TestAttachment } from 'vitest'

import { meanRunSeconds } from '../src/job-series.ts'
import { writeRunReport } from '../src/run-report.ts'
import { readStatementStats } from '../src/statement-stats.ts'
import { syntheticStatements, writeSyntheticRun } from './synthetic-run.ts'

/** Debian's chromium package; the page test drives it with playwright-core. */
const chromiumPath = '/usr/bin/chromium'
const chromiumArgs = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']
const screenshotFile = fileURLToPath(new URL('../../../test-results/report.png', import.meta.url))

const jobPlots = ['throughput', 'queue-depth', 'latency']
const sampledPlots = ['connections', 'cpu', 'memory', 'database']

interface ReportScreenshotArtifact extends TestArtifactBase {
  type: 'skiplock:report-screenshot'
  attachments: TestAttachment[]
}

declare module 'vitest' {
  interface TestArtifactRegistry {
    'skiplock:report-screenshot': ReportScreenshotArtifact
  }
}

/** A fresh run directory under the system's temporary directory, removed after the test. */
async function temporaryRunDirectory(): Promise<URL> {
  return pathToFileURL(`${await mkdtemp(join(tmpdir(), 'skiplock-analyzer-'))}/`)
}

/** Width and height from a PNG's IHDR chunk, after checking its signature. */
function pngSize(png: Buffer): { width: number; height: number } {
  expect(png.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))
  return { width: png.readUInt32BE(16), height: png.readUInt32BE(20) }
}

describe('the run report', () => {
  test('draws every plot as SVG and PNG, prints the connection model, and writes a page Chromium shows without errors', async ({ task }) => {
    const directory = await temporaryRunDirectory()
    try {
      const input = await writeSyntheticRun(directory, { withSamples: true, statements: syntheticStatements })
      const report = await writeRunReport(directory, input)

      for (const name of [...jobPlots, ...sampledPlots]) {
        const svg = await readFile(new URL(`plots/${name}.svg`, directory), 'utf8')
        expect(svg, name).toMatch(/^<svg [^>]*width="\d+" height="\d+"/)
        expect(svg.length, name).toBeGreaterThan(5000)
        expect(svg, name).toContain('seconds since job creation began')
        const { width, height } = pngSize(await readFile(new URL(`plots/${name}.png`, directory)))
        expect(width, name).toBeGreaterThan(1000)
        expect(height, name).toBeGreaterThan(300)
      }

      const summary = await readFile(new URL('summary.md', directory), 'utf8')
      expect(summary).toContain('## Connection model')
      expect(summary).toMatch(/\| requested +\| N x \(P \+ 1\) = 3 x 3 +\| 9 +\| - +\| 9 +\| 9 +\|/)
      expect(summary).toMatch(/\| Q \(queries per job\) +\| 3 +\|/)
      expect(summary).toMatch(/\| L \(mean query latency, ms\) +\| 0\.20 +\|/)
      expect(summary).toMatch(/\| active +\| N x S x Q x L \/ T +\| [\d.]+ +\| [\d.]+ +\| [\d.]+ +\| \d+ +\|/)
      expect(summary).toContain('## Database and worker resources')
      expect(summary).toMatch(/\| postgres +\| \d+ +\| 0\.\d+ +\|/)
      expect(summary).not.toContain('not measured')

      // The formulas, from the run's own figures: T from its jobs, Q = 1200 calls / 400 jobs, L = 0.2 ms.
      const meanJobSeconds = meanRunSeconds(input.jobs)
      const perWorker = (4 * 3 * 0.0002) / meanJobSeconds
      const runJson = JSON.parse(await readFile(new URL('run.json', directory), 'utf8'))
      expect(runJson.connectionModel.inputs).toMatchObject({ workers: 3, concurrency: 4, poolSize: 2, listen: true, queriesPerJob: 3, meanJobSeconds })
      expect(runJson.connectionModel.inputs.meanQuerySeconds).toBeCloseTo(0.0002, 10)
      expect(runJson.connectionModel.predicted).toMatchObject({ requestedPool: 6, requestedWithListen: 9 })
      expect(runJson.connectionModel.predicted.active).toBeCloseTo(3 * perWorker, 10)
      expect(runJson.connectionModel.predicted.activePoolCapped).toBeCloseTo(3 * Math.min(2, perWorker), 10)
      expect(runJson.connectionModel.measured).toMatchObject({ workerConnectionsMean: 9, workerConnectionsPeak: 9, totalPeak: 10, maxConnections: 100 })
      expect(runJson.connectionModel.measured.activePeak).toBeGreaterThanOrEqual(runJson.connectionModel.measured.activeMean)
      expect(runJson.resources.map((row: { name: string }) => row.name)).toEqual(['postgres', 'workers'])
      expect(report.isClean).toBe(true)

      const page = await readFile(new URL('report.html', directory), 'utf8')
      expect(page).not.toMatch(/<script|https?:\/\/(?!www\.w3\.org\/)/)
      await showInChromium(fileURLToPath(new URL('report.html', directory)), [...jobPlots, ...sampledPlots])
      await recordArtifact(task, { type: 'skiplock:report-screenshot', attachments: [{ contentType: 'image/png', body: await readFile(screenshotFile) }] }).catch(() => {})
    } finally {
      await rm(directory, { recursive: true, force: true })
    }
  }, 90_000)

  test('says "not measured" without samples.jsonl or pg_stat_statements, and still draws the job plots', async () => {
    const directory = await temporaryRunDirectory()
    try {
      const input = await writeSyntheticRun(directory, { withSamples: false, statements: { notMeasured: 'pg_stat_statements is not installed in the run\'s database' } })
      const report = await writeRunReport(directory, input)
      for (const name of jobPlots) expect(existsSync(new URL(`plots/${name}.png`, directory)), name).toBe(true)
      for (const name of sampledPlots) expect(existsSync(new URL(`plots/${name}.svg`, directory)), name).toBe(false)
      expect(report.markdown).toMatch(/\| Q \(queries per job\) +\| not measured +\| pg_stat_statements is not installed/)
      expect(report.markdown).toMatch(/\| active +\| N x S x Q x L \/ T +\| not measured +\| not measured +\| not measured +\| not measured +\|/)
      expect(report.markdown).toMatch(/\| requested +\| N x \(P \+ 1\) = 3 x 3 +\| 9 +\|/)
      expect(report.markdown).toContain('## Database and worker resources\n\nnot measured: the run has no samples.jsonl')
      expect(report.connectionModel.predicted).toMatchObject({ requestedWithListen: 9, active: null, activePoolCapped: null })
      const page = await readFile(new URL('report.html', directory), 'utf8')
      expect(page).toContain('<figure class="plot not-measured" id="plot-connections">')
      expect(page.match(/<figure class="plot" /g)).toHaveLength(jobPlots.length)
    } finally {
      await rm(directory, { recursive: true, force: true })
    }
  })
})

describe('pg_stat_statements', () => {
  test('reads as "not measured" where the extension is not installed or its library not preloaded', async ({ db }) => {
    // Whatever the test server's template holds: this database must start without the extension.
    await db.query('drop extension if exists pg_stat_statements')
    expect(await readStatementStats(db.pool)).toEqual({ notMeasured: 'pg_stat_statements is not installed in the run\'s database' })
    await db.query('create extension if not exists pg_stat_statements')
    const { rows } = await db.query(`select count(*)::int as count from pg_settings where name = 'pg_stat_statements.max'`)
    // The setting exists only when the library is loaded; the test server may have been started with it.
    if (rows[0].count === 0) expect(await readStatementStats(db.pool)).toMatchObject({ notMeasured: expect.stringMatching(/shared_preload_libraries/) })
  })

  test('counts the worker\'s statements and their time where the server preloads it', async () => {
    // A server of our own even under DATABASE_URL: only a server we start can preload the library.
    await using server = await startDatabaseServer({ databaseUrl: '', settings: { shared_preload_libraries: 'pg_stat_statements', max_connections: 20 } })
    await migrate(server.url)
    const pool = new pg.Pool({ connectionString: server.url, max: 2 })
    try {
      await pool.query('create extension if not exists pg_stat_statements')
      const workerId = await registerWorker(toQueryable(pool), 'skiplock', 'w_statements', 30)
      await pool.query('select pg_stat_statements_reset()')
      const client = await pool.connect()
      try {
        for (let beat = 0; beat < 3; beat++) {
          await client.query('begin')
          await heartbeat(toQueryable(client), 'skiplock', workerId)
          await client.query('commit')
        }
      } finally {
        client.release()
      }
      const stats = await readStatementStats(pool)
      expect(stats).toMatchObject({
        calls: 9,
        totalExecMs: expect.any(Number),
        byStatement: [
          { statement: 'begin', calls: 3 },
          { statement: 'commit', calls: 3 },
          { statement: 'heartbeat', calls: 3 },
        ],
      })
    } finally {
      await pool.end()
    }
  }, 60_000)
})

/**
 * Opens the page in Debian's Chromium, offline: it must load with no console error and no request
 * beyond its own file, and show every plot's SVG at a non-zero size. Saves a full-page screenshot.
 */
async function showInChromium(reportFile: string, plotNames: readonly string[]): Promise<void> {
  if (!existsSync(chromiumPath)) {
    throw new Error(`${chromiumPath} is missing: the report page is tested in Debian's Chromium. Install it with: apt-get install -y chromium`)
  }
  const browser = await chromium.launch({ executablePath: chromiumPath, args: chromiumArgs, timeout: 60_000 })
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } })
    const problems: string[] = []
    page.on('console', (message) => {
      if (message.type() === 'error') problems.push(`console: ${message.text()}`)
    })
    page.on('pageerror', (error) => problems.push(`page error: ${error.message}`))
    const requests: string[] = []
    page.on('request', (request) => requests.push(request.url()))
    await page.goto(pathToFileURL(reportFile).href, { waitUntil: 'load' })

    for (const name of plotNames) {
      const svg = page.locator(`figure.plot#plot-${name} svg`).first()
      expect(await svg.isVisible(), name).toBe(true)
      const box = await svg.boundingBox()
      expect(box?.width, name).toBeGreaterThan(300)
      expect(box?.height, name).toBeGreaterThan(100)
    }
    expect(await page.locator('h2', { hasText: 'Connection model' }).isVisible()).toBe(true)
    expect(await page.locator('table').count()).toBeGreaterThan(8)
    expect(problems).toEqual([])
    expect(requests).toEqual([pathToFileURL(reportFile).href])

    await mkdir(join(screenshotFile, '..'), { recursive: true })
    await page.screenshot({ path: screenshotFile, fullPage: true })
  } finally {
    await browser.close()
  }
}
