// Attribute filters at 100,000 waiting jobs: how long one claim takes with and without a filter, and the
// plan the claim query gets. Writes perf/results/attribute-filters.md. Usage: see `usageText` below.
//
// Every claim runs as `begin; select ... from skiplock.fetch_jobs(...); rollback;`, so the 100,000 jobs stay
// waiting and every claim sees the same set; only the fetch statement is timed (client side, so one loopback
// round trip is included). Each (variant, case, batch size) claims in a session of its own, hence its own plan
// cache, after a few unmeasured warm-up claims (PL/pgSQL may switch to a generic plan after five); the
// sessions take turns, one claim each per round, so the noise of a shared machine spreads over all of them.
// The plan is the one the claim query inside skiplock.claim_jobs ran for one more claim at the end of each
// session, caught by auto_explain (nested statements, analyze) and delivered to this client as a notice.
// Variants (--variants) apply a change to the index or to skiplock.claim_jobs in their own database only.
import { randomBytes } from 'node:crypto'
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

import { migrate } from '@skiplock/schema'
import { startDatabaseServer } from '@skiplock/schema/server'
import pg from 'pg'

const repositoryRoot = fileURLToPath(new URL('../../../', import.meta.url))
const applicationName = 'perf-attribute-filters'

const usageText = `usage: node --conditions=development perf/compare/src/attribute-filters.ts
       [--database-url URL (default DATABASE_URL, else an embedded PostgreSQL 18)]
       [--jobs 100000] [--claims 300] [--warmup 10] [--claims-before-analyze 30] [--analyze-repeats 20]
       [--variants current,fastupdate-off[,pending-list-N]] [--cases id,...] [--print-plans]
       [--out perf/results/attribute-filters.md]`

function usage(message: string): never {
  console.error(`attribute-filters: ${message}\n${usageText}`)
  process.exit(2)
}

// `pnpm ... attribute-filters -- --claims 100` passes the `--` through.
const args = process.argv.slice(2).filter((arg, index) => !(index === 0 && arg === '--'))
let parsed
try {
  parsed = parseArgs({
    args,
    options: {
      help: { type: 'boolean', short: 'h' },
      'database-url': { type: 'string' },
      jobs: { type: 'string', default: '100000' },
      claims: { type: 'string', default: '300' },
      warmup: { type: 'string', default: '10' },
      'claims-before-analyze': { type: 'string', default: '30' },
      'analyze-repeats': { type: 'string', default: '20' },
      cases: { type: 'string' },
      'print-plans': { type: 'boolean', default: false },
      variants: { type: 'string', default: 'current,fastupdate-off' },
      out: { type: 'string', default: path.join(repositoryRoot, 'perf/results/attribute-filters.md') },
    },
  })
} catch (error) {
  usage((error as Error).message)
}
const { values } = parsed
if (values.help) {
  console.log(usageText)
  process.exit(0)
}
const positiveInteger = (flag: string, value: string, allowZero = false): number => {
  const number = Number(value)
  if (!Number.isInteger(number) || number < (allowZero ? 0 : 1)) usage(`--${flag}: expected a ${allowZero ? 'non-negative' : 'positive'} integer`)
  return number
}
const jobCount = positiveInteger('jobs', values.jobs)
const claimCount = positiveInteger('claims', values.claims)
const warmupCount = positiveInteger('warmup', values.warmup, true)
const claimsBeforeAnalyze = positiveInteger('claims-before-analyze', values['claims-before-analyze'], true)
const analyzeRepeats = positiveInteger('analyze-repeats', values['analyze-repeats'], true)
const insertBatchSize = 5000
const batchSizes = [10, 1] as const

// ---------------------------------------------------------------------------------------------------------
// The jobs and the cases

const regions = 10
const tenants = 1000
const tiers = ['gold', 'silver', 'bronze'] as const
/** A small seeded generator (mulberry32): every run inserts the same attributes. */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

type Attributes = Record<string, string>

function jobAttributes(random: () => number, index: number): Attributes {
  return {
    region: `r${Math.floor(random() * regions)}`,
    tenant: `t${Math.floor(random() * tenants)}`,
    tier: tiers[Math.floor(random() * tiers.length)]!,
    // Each insert batch gets its own value, so one value's jobs are adjacent in claim order.
    batch: `b${Math.floor(index / insertBatchSize)}`,
  }
}

interface Case {
  id: string
  label: string
  /** What share of the jobs the generator makes match, in words. */
  expected: string
  filter: Record<string, string | string[]> | null
  /** Not one of the issue's cases, but a risk the plan choice carries. */
  isExtra?: boolean
}

const lastBatch = `b${Math.ceil(jobCount / insertBatchSize) - 1}`
const allCases: Case[] = [
  { id: 'unfiltered', label: 'unfiltered', expected: '100 %', filter: null },
  { id: 'region', label: "region = 'r3'", expected: '10 %', filter: { region: 'r3' } },
  { id: 'tier', label: 'tier in (gold, silver)', expected: '67 %', filter: { tier: ['gold', 'silver'] } },
  { id: 'tenant', label: "tenant = 't42'", expected: '0.1 %', filter: { tenant: 't42' } },
  { id: 'tenants', label: 'tenant in (t42, t420, t777)', expected: '0.3 %', filter: { tenant: ['t42', 't420', 't777'] } },
  { id: 'region-tier', label: "region = 'r3' and tier in (gold, silver)", expected: '6.7 %', filter: { region: 'r3', tier: ['gold', 'silver'] } },
  {
    id: 'newest-batch',
    label: `batch = '${lastBatch}' (the newest jobs only)`,
    expected: `${((insertBatchSize / jobCount) * 100).toFixed(0)} %, all last in claim order`,
    filter: { batch: lastBatch },
    isExtra: true,
  },
  { id: 'no-match', label: "region = 'r99' (matches nothing)", expected: '0', filter: { region: 'r99' }, isExtra: true },
]

const caseIds = values.cases?.split(',').map((id) => id.trim()).filter(Boolean)
for (const id of caseIds ?? []) {
  if (!allCases.some((theCase) => theCase.id === id)) usage(`--cases: unknown "${id}" (expected ${allCases.map((theCase) => theCase.id).join(', ')})`)
}
/** The cases to run; the unfiltered one always, as every ratio's base. */
const cases = caseIds ? allCases.filter((theCase) => theCase.id === 'unfiltered' || caseIds.includes(theCase.id)) : allCases

// ---------------------------------------------------------------------------------------------------------
// Variants to compare, applied in the benchmark's own database only (never to packages/schema).

interface Variant {
  description: string
  /** Runs after migrate, before the jobs are inserted. */
  sql: string | null
}

const variants: Record<string, Variant> = {
  current: { description: 'the schema as migrated', sql: null },
  'fastupdate-off': {
    description: '`alter index skiplock.jobs_attributes_idx set (fastupdate = off)`: no GIN pending list, inserts go straight into the index',
    sql: 'alter index skiplock.jobs_attributes_idx set (fastupdate = off)',
  },
}
// `pending-list-N`: fastupdate kept, with a pending list of at most N kB (64 and up; the migration sets 256).
for (const name of values.variants.split(',')) {
  const pending = /^pending-list-(\d+)$/.exec(name.trim())
  if (pending) {
    variants[name.trim()] = {
      description: `\`alter index skiplock.jobs_attributes_idx set (gin_pending_list_limit = ${pending[1]})\`: a pending list of at most ${pending[1]} kB`,
      sql: `alter index skiplock.jobs_attributes_idx set (gin_pending_list_limit = ${pending[1]})`,
    }
  }
}
const variantNames = values.variants.split(',').map((name) => name.trim()).filter(Boolean)
for (const name of variantNames) {
  if (!(name in variants)) usage(`--variants: unknown "${name}" (expected ${Object.keys(variants).join(', ')})`)
}
if (variantNames.length === 0) usage('--variants: expected at least one')

// ---------------------------------------------------------------------------------------------------------
// Helpers

function percentile(sorted: number[], fraction: number): number {
  if (sorted.length === 0) return Number.NaN
  const rank = Math.ceil(fraction * sorted.length)
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!
}

interface Latency {
  p50: number
  p95: number
  p99: number
  max: number
  count: number
}

function summarize(samples: number[]): Latency {
  const sorted = [...samples].sort((a, b) => a - b)
  return {
    p50: percentile(sorted, 0.5),
    p95: percentile(sorted, 0.95),
    p99: percentile(sorted, 0.99),
    max: sorted[sorted.length - 1] ?? Number.NaN,
    count: sorted.length,
  }
}

const caseOf = (id: string) => cases.find((theCase) => theCase.id === id)!
const count = (value: number) => value.toLocaleString('en-US')
const ms = (value: number) => (value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2))

async function connect(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url, application_name: applicationName })
  await client.connect()
  return client
}

// ---------------------------------------------------------------------------------------------------------
// Plans

interface CapturedPlan {
  /** How the plan was caught: `auto_explain` inside fetch_jobs, or `explain` of claim_jobs' query run by hand. */
  source: 'auto_explain' | 'explain'
  /** The statements of skiplock.claim_jobs that touch the jobs, in the order they ran (one, unless a variant splits the claim). */
  statements: PlannedStatement[]
  /** The whole fetch_jobs statement as auto_explain timed it (instrumented, so slower than the timed claims), in ms. */
  fetchDurationMs: number | null
}

interface PlannedStatement {
  /** `claim` for a claim query (`with claimable ...`), `walk` for a filtered claim's first look, at the head of the claim order (`with candidate ...`). */
  kind: 'claim' | 'walk'
  /** The plan as text, without the query text. */
  text: string
  /** Execution time as auto_explain or explain reported it, in ms. */
  durationMs: number | null
  /** Whether the plan shows parameters ($1...) rather than the call's values: a cached generic plan. */
  isGeneric: boolean
}

const isGenericPlan = (plan: CapturedPlan) => plan.statements.some((statement) => statement.isGeneric)

/** One cell for the tables: each statement's access path, `walk:` and `claim:` when there are several. */
function planSummary(plan: CapturedPlan): string {
  const many = plan.statements.length > 1 || plan.statements.some((statement) => statement.kind === 'walk')
  const text = plan.statements.map((statement) => `${many ? `${statement.kind}: ` : ''}${accessPath(statement.text)}`).join('; then ')
  return `${text || '(no plan)'}${isGenericPlan(plan) ? ' (generic plan)' : ''}`
}

/** The lines that say how the claim found its jobs: scans (with index and rows), filters' removed rows, sorts, limit. */
function keyLines(plan: string): string[] {
  const lines = plan.split('\n')
  const keep: string[] = []
  for (const line of lines) {
    const trimmed = line.trim().replace(/^->\s*/, '')
    if (
      /^(Limit|LockRows|Sort|Incremental Sort|Index Scan|Index Only Scan|Bitmap Heap Scan|Bitmap Index Scan|BitmapOr|Seq Scan)\b/.test(trimmed) ||
      /^(Rows Removed by Filter|Rows Removed by Index Recheck|Sort Method|Heap Blocks|Index Cond|Recheck Cond|Filter)\b/.test(trimmed)
    ) {
      keep.push(line.replace(/\s+$/, ''))
    }
  }
  return keep
}

/** One line for the table: the claimable CTE's access path and how many rows it touched. */
function accessPath(plan: string): string {
  const claimable = claimablePart(plan)
  const parts: string[] = []
  for (const line of claimable.split('\n')) {
    const trimmed = line.trim().replace(/^->\s*/, '')
    const rows = (value: string) => value.replace(/\.00$/, '')
    let match = /^(Index Scan|Index Only Scan)(?: Backward)? using (\S+) on \S+(?: \w+)?\s+\(cost=\S+ rows=(\d+)[^)]*\)\s+\(actual time=[^ ]+ rows=([\d.]+)/.exec(trimmed)
    if (match) parts.push(`${match[1]} ${match[2]} (rows ${rows(match[4]!)}, est. ${match[3]})`)
    match = /^Bitmap Index Scan on (\S+)\s+\(cost=\S+ rows=(\d+)[^)]*\)\s+\(actual time=[^ ]+ rows=([\d.]+)/.exec(trimmed)
    if (match) parts.push(`Bitmap Index Scan ${match[1]} (rows ${rows(match[3]!)}, est. ${match[2]})`)
    match = /^Seq Scan on (\S+).*\(actual time=[^ ]+ rows=([\d.]+)/.exec(trimmed)
    if (match) parts.push(`Seq Scan ${match[1]} (rows ${rows(match[2]!)})`)
    match = /^Rows Removed by Filter: (\d+)/.exec(trimmed)
    if (match) parts.push(`${match[1]} removed by filter`)
    match = /^Sort Method: (.+)$/.exec(trimmed)
    if (match) parts.push(`sort: ${match[1]}`)
  }
  return parts.join(', ') || '(no scan found)'
}

/** The plan of the CTEs that find the jobs (`candidate`, `claimable`): each from its `CTE` line to the next node at its depth. */
function claimablePart(plan: string): string {
  const lines = plan.split('\n')
  const blocks: string[] = []
  for (const name of ['candidate', 'claimable']) {
    const start = lines.findIndex((line) => new RegExp(`CTE ${name}$`).test(line.trimEnd()))
    if (start === -1) continue
    const indent = lines[start]!.search(/\S/)
    const end = lines.findIndex((line, index) => index > start && line.trim() !== '' && line.search(/\S/) <= indent)
    blocks.push(lines.slice(start, end === -1 ? undefined : end).join('\n'))
  }
  return blocks.length > 0 ? blocks.join('\n') : plan
}

async function enableAutoExplain(client: pg.Client): Promise<boolean> {
  try {
    await client.query(`load 'auto_explain'`)
    await client.query(`
      select
        set_config('auto_explain.log_min_duration', '-1', false),
        set_config('auto_explain.log_nested_statements', 'on', false),
        set_config('auto_explain.log_analyze', 'on', false),
        set_config('auto_explain.log_buffers', 'on', false),
        set_config('auto_explain.log_timing', 'on', false),
        set_config('auto_explain.log_format', 'text', false),
        set_config('auto_explain.log_level', 'notice', false),
        set_config('client_min_messages', 'notice', false)`)
    return true
  } catch {
    return false
  }
}

/**
 * Runs one more claim with auto_explain on and returns the plan of claim_jobs' query, or, without
 * auto_explain, explains that query (taken from pg_proc) with the claim's arguments.
 */
async function capturePlan(
  client: pg.Client,
  hasAutoExplain: boolean,
  workerId: string,
  batchSize: number,
  filter: Case['filter'],
): Promise<CapturedPlan> {
  if (hasAutoExplain) {
    const notices: string[] = []
    const onNotice = (notice: { message?: string }) => notices.push(notice.message ?? '')
    client.on('notice', onNotice)
    try {
      await client.query('begin')
      await client.query(`select set_config('auto_explain.log_min_duration', '0', true)`)
      await client.query(fetchStatement(workerId, batchSize, filter))
      await client.query('rollback')
    } finally {
      client.off('notice', onNotice)
    }
    if (values['print-plans']) for (const text of notices) console.error(text)
    const statements: PlannedStatement[] = []
    let fetchDurationMs: number | null = null
    for (const notice of notices) {
      // auto_explain's text: "duration: ... ms  plan:\nQuery Text: <query>\n<plan>". The query may span many
      // lines; the plan starts at its first node, the first line after the query with no indentation.
      const queryText = /Query Text: ([^\n]*)/.exec(notice)?.[1] ?? ''
      const duration = /duration: ([\d.]+) ms/.exec(notice)
      const durationMs = duration ? Number(duration[1]) : null
      if (/skiplock\.fetch_jobs\(/.test(queryText)) fetchDurationMs = durationMs
      const kind = /^with claimable/.test(queryText.trim()) ? 'claim' : /^with candidate/.test(queryText.trim()) ? 'walk' : null
      if (!kind) continue
      const planStart = notice.search(/\n(Result|Sort|Limit|CTE Scan|Nested Loop|Hash Join|Merge Join|Update|Incremental Sort)\s+\(/)
      const text = planStart === -1 ? notice : notice.slice(planStart + 1)
      statements.push({ kind, text, durationMs, isGeneric: /\$\d/.test(text) })
    }
    if (statements.length > 0) return { source: 'auto_explain', statements, fetchDurationMs }
    console.error('attribute-filters: auto_explain reported no plan for the claim query; explaining it by hand')
  }
  return explainByHand(client, workerId, batchSize, filter)
}

/** claim_jobs' query with its arguments as parameters $1..$6, under the settings claim_jobs uses. */
async function explainByHand(client: pg.Client, workerId: string, batchSize: number, filter: Case['filter']): Promise<CapturedPlan> {
  const { rows } = await client.query<{ prosrc: string }>(
    `select prosrc from pg_proc where oid = 'skiplock.claim_jobs(bigint, text[], text[], integer, timestamptz, jsonb[])'::regprocedure`,
  )
  const source = rows[0]?.prosrc ?? ''
  const query = /return query\s+(with claimable[\s\S]*?);\s*end;/.exec(source)?.[1]
  if (!query) throw new Error('could not find the claim query in skiplock.claim_jobs')
  const parameters: Record<string, string> = {
    worker_id: '$1::bigint',
    queue_names: '$2::text[]',
    excluded_queue_names: '$3::text[]',
    batch_size: '$4::integer',
    now: '$5::timestamptz',
    attribute_documents: '$6::jsonb[]',
  }
  // The claim's own limit is what is left of the batch after a filtered claim's look at the head of the queue.
  const text = query.replace(/claim_jobs\.(\w+)/g, (whole, name: string) => parameters[name] ?? whole).replace(/\bv_remaining\b/g, '$4::integer')
  await client.query('begin')
  try {
    await client.query(`set local enable_seqscan = off`)
    await client.query(`set local enable_bitmapscan = ${filter ? 'on' : 'off'}`)
    const { rows: documents } = await client.query<{ documents: string[] | null }>(
      'select skiplock.attribute_filter_documents($1::jsonb)::text[] as documents',
      [filter === null ? null : JSON.stringify(filter)],
    )
    const { rows: planRows } = await client.query<{ 'QUERY PLAN': string }>(`explain (analyze, buffers) ${text}`, [
      workerId,
      null,
      null,
      batchSize,
      new Date(),
      documents[0]?.documents ?? null,
    ])
    const plan = planRows.map((row) => row['QUERY PLAN']).join('\n')
    const execution = /Execution Time: ([\d.]+) ms/.exec(plan)
    return {
      source: 'explain',
      statements: [{ kind: 'claim', text: plan, durationMs: execution ? Number(execution[1]) : null, isGeneric: false }],
      fetchDurationMs: null,
    }
  } finally {
    await client.query('rollback')
  }
}

// ---------------------------------------------------------------------------------------------------------
// Claims

function fetchStatement(workerId: string, batchSize: number, filter: Case['filter']): pg.QueryConfig {
  return {
    name: 'attribute-filters-fetch',
    text: 'select id from skiplock.fetch_jobs($1::bigint, null, $2::integer, now(), $3::jsonb)',
    values: [workerId, batchSize, filter === null ? null : JSON.stringify(filter)],
  }
}

interface Measurement {
  caseId: string
  batchSize: number
  latency: Latency
  /** Jobs the measured claims returned, per claim (all claims return the same number: the set is constant). */
  claimedPerClaim: number
  /** The ids the last measured claim returned, sorted: every variant should claim the same jobs. */
  claimedIds: string
  plan: CapturedPlan
}

/** A session claiming for one (variant, case, batch size): its own plan cache, its own samples. */
interface Session {
  variant: string
  theCase: Case
  batchSize: number
  workerId: string
  client: pg.Client
  hasAutoExplain: boolean
  statement: pg.QueryConfig
  samples: number[]
  claimed: number
  claimedIds: string
}

async function openSession(variant: string, url: string, workerId: string, theCase: Case, batchSize: number): Promise<Session> {
  const client = await connect(url)
  const hasAutoExplain = await enableAutoExplain(client)
  const statement = fetchStatement(workerId, batchSize, theCase.filter)
  return { variant, theCase, batchSize, workerId, client, hasAutoExplain, statement, samples: [], claimed: -1, claimedIds: '' }
}

async function claimOnce(session: Session, isMeasured: boolean): Promise<void> {
  const { client } = session
  await client.query('begin')
  const started = process.hrtime.bigint()
  const result = await client.query<{ id: string }>(session.statement)
  const elapsedMs = Number(process.hrtime.bigint() - started) / 1e6
  await client.query('rollback')
  if (!isMeasured) return
  session.samples.push(elapsedMs)
  const rows = result.rowCount ?? 0
  session.claimed = session.claimed === -1 ? rows : Math.min(session.claimed, rows)
  session.claimedIds = result.rows
    .map((row) => BigInt(row.id))
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
    .join(',')
}

/**
 * Interleaves the sessions: every round makes one claim in each session, in an order shuffled per round, so a
 * noisy moment of a shared machine touches every case and every variant rather than one. Then captures the
 * plan of each session's next claim and closes the sessions.
 */
async function measureSessions(sessions: Session[], warmup: number, count: number, label: string): Promise<Measurement[]> {
  const random = seededRandom(7)
  const order = sessions.map((_, index) => index)
  const started = performance.now()
  try {
    for (let round = 0; round < warmup + count; round++) {
      for (let index = order.length - 1; index > 0; index--) {
        const other = Math.floor(random() * (index + 1))
        ;[order[index], order[other]] = [order[other]!, order[index]!]
      }
      for (const index of order) await claimOnce(sessions[index]!, round >= warmup)
      if ((round + 1) % 50 === 0) console.error(`${label}: round ${round + 1}/${warmup + count} (${((performance.now() - started) / 1000).toFixed(0)} s)`)
    }
    const measurements: Measurement[] = []
    for (const session of sessions) {
      const plan = await capturePlan(session.client, session.hasAutoExplain, session.workerId, session.batchSize, session.theCase.filter)
      const measurement: Measurement = {
        caseId: session.theCase.id,
        batchSize: session.batchSize,
        latency: summarize(session.samples),
        claimedPerClaim: session.claimed,
        claimedIds: session.claimedIds,
        plan,
      }
      console.error(`[${session.variant}] ${label} ${describe(session.theCase, measurement)}`)
      measurements.push(measurement)
    }
    return measurements
  } finally {
    await Promise.all(sessions.map((session) => session.client.end().catch(() => {})))
  }
}

function describe(theCase: Case, measurement: Measurement): string {
  const { latency } = measurement
  return (
    `${theCase.label.padEnd(48)} batch ${String(measurement.batchSize).padStart(2)}: ` +
    `p50 ${ms(latency.p50)} ms, p95 ${ms(latency.p95)} ms, p99 ${ms(latency.p99)} ms, claimed ${measurement.claimedPerClaim}; ` +
    planSummary(measurement.plan)
  )
}

// ---------------------------------------------------------------------------------------------------------
// The run

interface VariantResult {
  name: string
  loadSeconds: number
  matches: Map<string, number>
  ginPending: { pages: number; tuples: number } | null
  beforeAnalyze: Measurement[]
  afterAnalyze: Measurement[]
  /** Per filtered case, the planner's pick after each of `analyzeRepeats` fresh `analyze` runs. */
  stability: Map<string, StabilityRow> | null
}

interface StabilityRow {
  /** The planner's estimate of the matching jobs, per analyze. */
  estimates: number[]
  /** `walk`: jobs_claim_idx in claim order, filtering; `index`: bitmap scan of jobs_attributes_idx and a sort. */
  paths: ('walk' | 'index' | 'other')[]
  /** The claim query's execution time under auto_explain, per analyze. */
  durations: number[]
}

/**
 * `analyze` samples 30,000 rows and keeps about 100 values as a histogram: whether a rare filter value is in the
 * sample decides the estimate of `attributes @> ...` (matchingsel), and the estimate the claim's path. Re-analyzes
 * `repeats` times and records, per filtered case, the estimate and the path of one claim (batch size 10).
 */
async function planStability(databaseUrl: string, workerId: string, repeats: number): Promise<Map<string, StabilityRow>> {
  const client = await connect(databaseUrl)
  const rows = new Map<string, StabilityRow>()
  try {
    const hasAutoExplain = await enableAutoExplain(client)
    for (let repeat = 0; repeat < repeats; repeat++) {
      await client.query('analyze skiplock.jobs')
      for (const theCase of cases) {
        if (theCase.filter === null) continue
        const plan = await capturePlan(client, hasAutoExplain, workerId, 10, theCase.filter)
        const text = plan.statements.find((statement) => statement.kind === 'claim')?.text ?? ''
        const bitmap = /Bitmap Index Scan on jobs_attributes_idx\s+\(cost=\S+ rows=(\d+)/.exec(text)
        const walk = /Index Scan using jobs_claim_idx on jobs j\s+\(cost=\S+ rows=(\d+)/.exec(text)
        const row = rows.get(theCase.id) ?? { estimates: [], paths: [], durations: [] }
        row.paths.push(bitmap ? 'index' : walk ? 'walk' : 'other')
        row.estimates.push(Number((bitmap ?? walk)?.[1] ?? Number.NaN))
        row.durations.push(plan.statements[0]?.durationMs ?? Number.NaN)
        rows.set(theCase.id, row)
      }
    }
    return rows
  } finally {
    await client.end()
  }
}

interface PreparedVariant {
  name: string
  databaseName: string
  databaseUrl: string
  workerId: string
  result: VariantResult
}

/** Entries waiting in the GIN index's pending list (fastupdate), which every search of the index reads through. */
async function ginPendingList(client: pg.Client): Promise<{ pages: number; tuples: number } | null> {
  try {
    await client.query('create extension if not exists pgstattuple')
    const { rows } = await client.query<{ pending_pages: number; pending_tuples: string }>(
      `select pending_pages, pending_tuples from pgstatginindex('skiplock.jobs_attributes_idx')`,
    )
    return rows[0] ? { pages: rows[0].pending_pages, tuples: Number(rows[0].pending_tuples) } : null
  } catch {
    return null
  }
}

/** A fresh database on the server: migrate, apply the variant, insert the jobs, register the worker. */
async function prepareVariant(serverUrl: string, admin: pg.Client, name: string): Promise<PreparedVariant> {
  const variant = variants[name]!
  const databaseName = `skiplock_attribute_filters_${randomBytes(4).toString('hex')}`
  await admin.query(`create database ${databaseName}`)
  const url = new URL(serverUrl)
  url.pathname = `/${databaseName}`
  const databaseUrl = url.toString()
  let client: pg.Client | undefined
  try {
    client = await connect(databaseUrl)
    await migrate(client)
    if (variant.sql) await client.query(variant.sql)
    // Autovacuum would analyze the table (and clean the GIN pending list) at a moment of its choosing:
    // this run analyzes it at a known point instead.
    await client.query('alter table skiplock.jobs set (autovacuum_enabled = off)')

    const loadStarted = performance.now()
    const random = seededRandom(20261201)
    for (let offset = 0; offset < jobCount; offset += insertBatchSize) {
      const size = Math.min(insertBatchSize, jobCount - offset)
      const attributes = Array.from({ length: size }, (_, index) => JSON.stringify(jobAttributes(random, offset + index)))
      await client.query('select count(*) from skiplock.defer_jobs(task_names => $1::text[], attributes => $2::jsonb[])', [
        Array.from({ length: size }, () => 'bench'),
        attributes,
      ])
    }
    const loadSeconds = (performance.now() - loadStarted) / 1000
    console.error(`[${name}] inserted ${jobCount} jobs in ${loadSeconds.toFixed(1)} s`)

    const { rows: workerRows } = await client.query<{ id: string }>(`select id from skiplock.register_worker('bench')`)
    const workerId = workerRows[0]!.id

    // Matching jobs per case, counted with the filter's own documents.
    const matches = new Map<string, number>()
    for (const theCase of cases) {
      const { rows } = await client.query<{ count: string }>(
        `select count(*) from skiplock.jobs
         where state = 'todo' and ($1::jsonb is null or attributes @> any(skiplock.attribute_filter_documents($1::jsonb)))`,
        [theCase.filter === null ? null : JSON.stringify(theCase.filter)],
      )
      matches.set(theCase.id, Number(rows[0]!.count))
    }
    const ginPending = await ginPendingList(client)
    return {
      name,
      databaseName,
      databaseUrl,
      workerId,
      result: { name, loadSeconds, matches, ginPending, beforeAnalyze: [], afterAnalyze: [], stability: null },
    }
  } catch (error) {
    await client?.end().catch(() => {})
    client = undefined
    await admin.query(`drop database if exists ${databaseName} with (force)`).catch(() => {})
    throw error
  } finally {
    await client?.end()
  }
}

async function analyzeJobs(databaseUrl: string): Promise<void> {
  const client = await connect(databaseUrl)
  try {
    await client.query('analyze skiplock.jobs')
  } finally {
    await client.end()
  }
}

const startedAt = new Date()
const explicitUrl = values['database-url'] ?? process.env.DATABASE_URL ?? ''
const server = await startDatabaseServer({ databaseUrl: explicitUrl })
let report: string
try {
  const admin = await connect(server.url)
  const prepared: PreparedVariant[] = []
  try {
    const { rows: versionRows } = await admin.query<{ version: string }>('select version()')
    const postgresVersion = versionRows[0]?.version ?? 'unknown'
    console.error(`attribute-filters: ${postgresVersion} (${server.kind})`)
    for (const name of variantNames) prepared.push(await prepareVariant(server.url, admin, name))

    // Before analyze: the tables have never been analyzed (autovacuum is off for them).
    if (claimsBeforeAnalyze > 0) {
      const sessions: Session[] = []
      for (const variant of prepared) {
        for (const theCase of cases) sessions.push(await openSession(variant.name, variant.databaseUrl, variant.workerId, theCase, 10))
      }
      const measurements = await measureSessions(sessions, 0, claimsBeforeAnalyze, 'before analyze')
      sessions.forEach((session, index) => prepared.find((variant) => variant.name === session.variant)!.result.beforeAnalyze.push(measurements[index]!))
    }

    // After analyze.
    for (const variant of prepared) await analyzeJobs(variant.databaseUrl)
    const sessions: Session[] = []
    for (const variant of prepared) {
      for (const batchSize of batchSizes) {
        for (const theCase of cases) sessions.push(await openSession(variant.name, variant.databaseUrl, variant.workerId, theCase, batchSize))
      }
    }
    const measurements = await measureSessions(sessions, warmupCount, claimCount, 'after analyze')
    sessions.forEach((session, index) => prepared.find((variant) => variant.name === session.variant)!.result.afterAnalyze.push(measurements[index]!))

    // The planner's pick over repeated analyzes, where the migrated claim_jobs lets it pick.
    for (const variant of prepared) {
      if (analyzeRepeats === 0) continue
      console.error(`[${variant.name}] the planner's pick over ${analyzeRepeats} analyzes`)
      variant.result.stability = await planStability(variant.databaseUrl, variant.workerId, analyzeRepeats)
    }

    report = renderReport(
      postgresVersion,
      server.kind,
      (Date.now() - startedAt.getTime()) / 1000,
      prepared.map((variant) => variant.result),
    )
  } finally {
    for (const variant of prepared) await admin.query(`drop database if exists ${variant.databaseName} with (force)`).catch(() => {})
    await admin.end()
  }
} finally {
  await server.stop()
}

await fs.mkdir(path.dirname(values.out), { recursive: true })
await fs.writeFile(values.out, report)
console.log(report)
console.error(`wrote ${path.relative(process.cwd(), values.out)}`)

// ---------------------------------------------------------------------------------------------------------
// The report

function resultTable(result: VariantResult, batchSize: number): string[] {
  const rows = result.afterAnalyze.filter((measurement) => measurement.batchSize === batchSize)
  const baseline = rows.find((measurement) => measurement.caseId === 'unfiltered')
  const out = [
    '| case | matching jobs | claimed | p50 ms | p95 ms | p99 ms | max ms | p50 / unfiltered | claim query: access path (actual rows) |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |',
  ]
  for (const measurement of rows) {
    const theCase = caseOf(measurement.caseId)
    const { latency } = measurement
    const ratio = baseline ? latency.p50 / baseline.latency.p50 : Number.NaN
    out.push(
      `| ${theCase.label}${theCase.isExtra ? ' \\*' : ''} | ${count(result.matches.get(theCase.id)!)} (${theCase.expected}) | ${measurement.claimedPerClaim} | ` +
        `${ms(latency.p50)} | ${ms(latency.p95)} | ${ms(latency.p99)} | ${ms(latency.max)} | ${ratio.toFixed(2)}x | ` +
        `${planSummary(measurement.plan)} |`,
    )
  }
  return out
}

function beforeAnalyzeTable(result: VariantResult): string[] {
  const baseline = result.beforeAnalyze.find((measurement) => measurement.caseId === 'unfiltered')
  const out = [
    '| case | p50 ms | p95 ms | max ms | p50 / unfiltered | claim query: access path (actual rows) |',
    '| --- | ---: | ---: | ---: | ---: | --- |',
  ]
  for (const measurement of result.beforeAnalyze) {
    const theCase = caseOf(measurement.caseId)
    const { latency } = measurement
    out.push(
      `| ${theCase.label}${theCase.isExtra ? ' \\*' : ''} | ${ms(latency.p50)} | ${ms(latency.p95)} | ${ms(latency.max)} | ` +
        `${baseline ? (latency.p50 / baseline.latency.p50).toFixed(2) : '?'}x | ` +
        `${planSummary(measurement.plan)} |`,
    )
  }
  return out
}

function planBlocks(result: VariantResult, level: string, withWholePlans: boolean): string[] {
  const out: string[] = []
  for (const measurement of result.afterAnalyze.filter((item) => item.batchSize === 10)) {
    const theCase = caseOf(measurement.caseId)
    const plan = measurement.plan
    out.push(`${level} ${theCase.label}`, '')
    const fetchNote = plan.fetchDurationMs !== null ? ` The whole fetch_jobs call took ${plan.fetchDurationMs.toFixed(3)} ms under auto_explain's instrumentation.` : ''
    out.push(
      plan.statements.length > 1
        ? `${plan.statements.length} statements of claim_jobs touched the jobs (${plan.source}).${fetchNote}`
        : `One claim query (${plan.source}).${fetchNote}`,
      '',
    )
    for (const statement of plan.statements) {
      out.push(
        `${statement.kind === 'walk' ? 'Claim from the head of the claim order' : 'Claim query'}: ${statement.durationMs !== null ? `${statement.durationMs.toFixed(3)} ms` : ''}, ` +
          `${statement.isGeneric ? 'generic plan' : 'custom plan'}. Key lines${statement.kind === 'claim' ? ' of the `claimable` part' : ''}:`,
        '',
        '```',
        ...keyLines(claimablePart(statement.text)),
        '```',
        '',
      )
      if (withWholePlans) out.push('<details><summary>whole plan</summary>', '', '```', statement.text.trimEnd(), '```', '', '</details>', '')
    }
  }
  return out
}

function renderReport(postgresVersion: string, serverKind: string, totalSeconds: number, results: VariantResult[]): string {
  // A database URL holds a password: the report names the flag, not the URL.
  const shownArgs = args.map((arg, index) =>
    args[index - 1] === '--database-url' ? '"$DATABASE_URL"' : arg.startsWith('--database-url=') ? '--database-url="$DATABASE_URL"' : arg,
  )
  const command = `node --conditions=development perf/compare/src/attribute-filters.ts ${shownArgs.join(' ')}`.trim()
  const first = results[0]!
  const out: string[] = []
  out.push(`# Attribute filters: claim latency at ${count(jobCount)} waiting jobs`, '')
  out.push(
    `Command: \`${command}\` (from the repository root; ${serverKind === 'embedded' ? 'embedded PostgreSQL, started by the command' : serverKind === 'url' ? 'an existing server, given by URL; its settings are its own' : `a ${serverKind} server`}; ` +
      `also \`pnpm --filter @skiplock/perf-compare attribute-filters\`).`,
    '',
  )
  out.push(
    `Machine: ${os.cpus().length} CPUs | ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB | node ${process.version} | ${postgresVersion}${serverKind === 'embedded' ? ', initdb defaults' : ''}. ` +
      `Run ${startedAt.toISOString()}, ${totalSeconds.toFixed(0)} s in all. Only ratios from one run compare.`,
    '',
  )
  out.push('## Setup', '')
  out.push(
    `- Each variant gets a fresh database on the same server: \`migrate\`, the variant's change, then ${count(jobCount)} waiting jobs inserted by ` +
      `\`skiplock.defer_jobs(task_names => $1::text[], attributes => $2::jsonb[])\` in batches of ${count(insertBatchSize)}: one queue, equal priority, no locks. ` +
      `Attributes from a seeded generator: \`region\` uniform over ${regions} values, \`tenant\` uniform over ${count(tenants)}, \`tier\` uniform over ${tiers.join('/')}, ` +
      `and \`batch\`, the insert batch (b0..${lastBatch}), so one batch's jobs are adjacent in claim order.`,
    `- Autovacuum is off for \`skiplock.jobs\`, so statistics change only where this run says: first every case on the never-analyzed table, then \`analyze skiplock.jobs\`, then every case again.`,
    `- Manual \`analyze\` does not empty a GIN index's pending list (fastupdate; autoanalyze and vacuum do), and no claim adds to it (a claimed job leaves the partial index): every case of a variant sees the list the load left.`,
    `- One worker (\`select id from skiplock.register_worker('bench')\`). A claim is \`begin; select id from skiplock.fetch_jobs(worker, null, batch, now(), filter); rollback;\`: the rollback leaves the jobs waiting, so every claim sees the same set. Only the fetch statement is timed, on the client (one loopback round trip included).`,
    `- Each (variant, case, batch size) claims in a session of its own (its own plan cache), and the sessions take turns: every round makes one claim in each, in a shuffled order, so a noisy moment of the machine touches every case and variant alike. ` +
      `${warmupCount} warm-up rounds, then ${claimCount} timed ones (before analyze: ${claimsBeforeAnalyze}, batch size 10, no warm-up). ` +
      `The plan is that of the claim query inside \`skiplock.claim_jobs\` for one more claim at the end of the session, caught by \`auto_explain\` ` +
      `(\`log_nested_statements\`, \`log_analyze\`, \`log_buffers\`, \`log_level = notice\`, so it reaches the client): the plan the timed claims used, custom or cached generic.`,
    `- Cases marked \\* are not the issue's: \`batch\` = the newest insert batch has matches only at the end of the claim order (the planner assumes them spread evenly), and a filter that matches nothing is what an idle filtered worker polls with.`,
    '',
  )

  out.push('| variant | what | insert of the jobs | GIN pending list after the insert |', '| --- | --- | ---: | --- |')
  for (const result of results) {
    out.push(
      `| \`${result.name}\` | ${variants[result.name]!.description} | ${result.loadSeconds.toFixed(1)} s | ` +
        `${result.ginPending ? `${count(result.ginPending.pages)} pages, ${count(result.ginPending.tuples)} entries` : 'unknown (no pgstattuple)'} |`,
    )
  }
  out.push('')

  if (results.length > 1) {
    const mismatches: string[] = []
    for (const result of results.slice(1)) {
      for (const measurement of result.afterAnalyze) {
        const reference = first.afterAnalyze.find((item) => item.caseId === measurement.caseId && item.batchSize === measurement.batchSize)
        if (reference && reference.claimedIds !== measurement.claimedIds) {
          mismatches.push(`\`${result.name}\` ${caseOf(measurement.caseId).label}, batch ${measurement.batchSize}: ${measurement.claimedIds || 'none'} against ${reference.claimedIds || 'none'}`)
        }
      }
    }
    out.push(
      mismatches.length === 0
        ? `Every variant claimed the same jobs as \`${first.name}\` in every case and batch size (same seeded data, same ids; compared on each session's last timed claim).`
        : `Claims that differ from \`${first.name}\`'s: ${mismatches.join('; ')}.`,
      '',
    )
    out.push('## p50 of every variant (ms, and ratio to the same variant\'s unfiltered claim)', '')
    for (const batchSize of batchSizes) {
      out.push(`Batch size ${batchSize}, after \`analyze\`:`, '')
      out.push(`| case | ${results.map((result) => `\`${result.name}\` p50 | p99`).join(' | ')} |`)
      out.push(`| --- | ${results.map(() => '---: | ---:').join(' | ')} |`)
      for (const theCase of cases) {
        const cells = results.map((result) => {
          const measurement = result.afterAnalyze.find((item) => item.caseId === theCase.id && item.batchSize === batchSize)
          const baseline = result.afterAnalyze.find((item) => item.caseId === 'unfiltered' && item.batchSize === batchSize)
          if (!measurement || !baseline) return '| '
          return `${ms(measurement.latency.p50)} (${(measurement.latency.p50 / baseline.latency.p50).toFixed(1)}x) | ${ms(measurement.latency.p99)}`
        })
        out.push(`| ${theCase.label}${theCase.isExtra ? ' \\*' : ''} | ${cells.join(' | ')} |`)
      }
      out.push('')
    }
    out.push('More than 3x the unfiltered p50, after `analyze`:', '')
    for (const result of results) {
      const slow = result.afterAnalyze
        .filter((measurement) => {
          const baseline = result.afterAnalyze.find((item) => item.caseId === 'unfiltered' && item.batchSize === measurement.batchSize)
          return baseline && measurement.latency.p50 > 3 * baseline.latency.p50
        })
        .map((measurement) => {
          const baseline = result.afterAnalyze.find((item) => item.caseId === 'unfiltered' && item.batchSize === measurement.batchSize)!
          return `${caseOf(measurement.caseId).label} (batch ${measurement.batchSize}: ${(measurement.latency.p50 / baseline.latency.p50).toFixed(1)}x)`
        })
      out.push(`- \`${result.name}\`: ${slow.length === 0 ? 'none' : slow.join('; ')}`)
    }
    out.push('')
    if (results.every((result) => result.beforeAnalyze.length > 0)) {
      out.push('Batch size 10, table never analyzed:', '')
      out.push(`| case | ${results.map((result) => `\`${result.name}\` p50`).join(' | ')} |`)
      out.push(`| --- | ${results.map(() => '---:').join(' | ')} |`)
      for (const theCase of cases) {
        const cells = results.map((result) => {
          const measurement = result.beforeAnalyze.find((item) => item.caseId === theCase.id)
          const baseline = result.beforeAnalyze.find((item) => item.caseId === 'unfiltered')
          return measurement && baseline ? `${ms(measurement.latency.p50)} (${(measurement.latency.p50 / baseline.latency.p50).toFixed(1)}x)` : ''
        })
        out.push(`| ${theCase.label}${theCase.isExtra ? ' \\*' : ''} | ${cells.join(' | ')} |`)
      }
      out.push('')
    }
  }

  const withStability = results.filter((result) => result.stability !== null)
  if (withStability.length > 0) {
    out.push(`## The planner's pick over ${analyzeRepeats} \`analyze\` runs (batch size 10)`, '')
    out.push(
      'Each `analyze` samples 30,000 of the jobs and keeps about 100 `attributes` values as a histogram; the estimate of `attributes @> ...` ' +
        'is the share of those values that match (clamped to at least 0.01 %). Whether a rare value happens to be in the sample decides the estimate, ' +
        'and the estimate decides whether the claim walks `jobs_claim_idx` in claim order (stopping after the batch) or reads every match through `jobs_attributes_idx` and sorts them. ' +
        'Here the table is re-analyzed, then one claim is explained, again and again: the same data, the same query.',
      '',
    )
    for (const result of withStability) {
      out.push(`\`${result.name}\`:`, '')
      out.push('| case | matching jobs | estimated matches: min / median / max | walk `jobs_claim_idx` | bitmap `jobs_attributes_idx` | claim query ms: median / max |')
      out.push('| --- | ---: | ---: | ---: | ---: | ---: |')
      for (const theCase of cases) {
        const row = result.stability!.get(theCase.id)
        if (!row) continue
        const estimates = [...row.estimates].sort((a, b) => a - b)
        const durations = [...row.durations].sort((a, b) => a - b)
        const walks = row.paths.filter((pathName) => pathName === 'walk').length
        const indexes = row.paths.filter((pathName) => pathName === 'index').length
        out.push(
          `| ${theCase.label}${theCase.isExtra ? ' \\*' : ''} | ${count(result.matches.get(theCase.id)!)} | ` +
            `${count(estimates[0]!)} / ${count(percentile(estimates, 0.5))} / ${count(estimates[estimates.length - 1]!)} | ` +
            `${walks} | ${indexes} | ${ms(percentile(durations, 0.5))} / ${ms(durations[durations.length - 1]!)} |`,
        )
      }
      out.push('')
    }
  }

  for (const result of results) {
    const isFirst = result === first
    out.push(`## \`${result.name}\`: ${variants[result.name]!.description}`, '')
    for (const batchSize of batchSizes) {
      out.push(`### After \`analyze\`, batch size ${batchSize}, ${claimCount} claims per case`, '', ...resultTable(result, batchSize), '')
    }
    if (result.beforeAnalyze.length > 0) {
      out.push(`### Before \`analyze\` (never analyzed), batch size 10, ${claimsBeforeAnalyze} claims per case`, '', ...beforeAnalyzeTable(result), '')
    }
    if (isFirst) {
      out.push(`### Plans after \`analyze\`, batch size 10`, '', ...planBlocks(result, '####', true))
    } else {
      out.push('<details><summary>Plans after <code>analyze</code>, batch size 10 (key lines)</summary>', '', ...planBlocks(result, '####', false), '</details>', '')
    }
  }
  return `${out.join('\n').trimEnd()}\n`
}
