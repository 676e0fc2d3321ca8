// infra/ holds configuration that nothing here runs (no Docker engine, no cluster): these tests parse
// every file and check that what it refers to exists, so a rename in the repository breaks a test,
// not a team's first run on real servers.
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

import { test } from '@skiplock/schema/testing'
import { describe, expect } from 'vitest'
import { parse, parseAllDocuments } from 'yaml'

const repository = fileURLToPath(new URL('../../../', import.meta.url))
const infra = path.join(repository, 'infra')

/** The worker's default shutdownGracePeriodMs, in seconds: pods must be given longer to stop. */
const workerShutdownGraceSeconds = 30

/** The entry points the lab's containers may run, and the sources they are built from. */
const entryPointSources: Record<string, string> = {
  'packages/core/dist/cli/main.js': 'packages/core/src/cli/main.ts',
  'apps/orchestrator/dist/main.js': 'apps/orchestrator/src/main.ts',
  'apps/worker/dist/main.js': 'apps/worker/src/main.ts',
  'apps/analyzer/dist/main.js': 'apps/analyzer/src/main.ts',
}

function infraFiles(directory = infra): string[] {
  return readdirSync(directory, { withFileTypes: true }).flatMap((entry) => {
    const file = path.join(directory, entry.name)
    return entry.isDirectory() ? infraFiles(file) : [file]
  })
}

function read(file: string): string {
  return readFileSync(file, 'utf8')
}

function relative(file: string): string {
  return path.relative(repository, file)
}

/**
 * Compose's interpolation with every variable unset: `${X:-default}` gives the default, `${X:?message}`
 * and `${X}` a placeholder, so the file reads as it runs without a .env.
 */
function interpolate(text: string): string {
  return text.replace(/\$\{([A-Z_][A-Z0-9_]*)(?::?([-?])([^}]*))?\}/g, (_match, name: string, operator?: string, operand?: string) =>
    operator === '-' ? (operand ?? '') : `<${name}>`,
  )
}

const composeDirectory = path.join(infra, 'compose')
const composeFiles = readdirSync(composeDirectory)
  .filter((name) => name.startsWith('compose') && name.endsWith('.yaml'))
  .map((name) => path.join(composeDirectory, name))

interface ComposeService {
  image?: string
  build?: { context: string; dockerfile?: string }
  command?: string | string[]
  entrypoint?: string | string[]
  env_file?: string | string[]
  volumes?: (string | { type: string; source: string; target: string })[]
  deploy?: { resources?: { limits?: { cpus?: string; memory?: string } } }
  healthcheck?: { test?: unknown }
  stop_grace_period?: string
}

function readCompose(file: string): { services: Record<string, ComposeService> } {
  // Compose supports YAML merge keys (`<<: *lab`), which YAML 1.2 leaves to the parser's option.
  return parse(interpolate(read(file)), { merge: true })
}

const kubernetesDirectory = path.join(infra, 'kubernetes')
const kubernetesFiles = readdirSync(kubernetesDirectory)
  .filter((name) => name.endsWith('.yaml') && name !== 'kustomization.yaml')
  .map((name) => path.join(kubernetesDirectory, name))

interface Container {
  name: string
  command?: string[]
  args?: string[]
  env?: { name: string; value?: string }[]
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> }
}

interface Manifest {
  apiVersion?: string
  kind?: string
  metadata?: { name?: string; namespace?: string }
  data?: Record<string, string>
  spec?: {
    completionMode?: string
    parallelism?: number
    replicas?: number
    template?: { spec?: { containers?: Container[]; initContainers?: Container[]; terminationGracePeriodSeconds?: number } }
  }
}

function readManifests(file: string): Manifest[] {
  return parseAllDocuments(read(file)).map((document) => document.toJS() as Manifest)
}

const manifests = kubernetesFiles.flatMap((file) => readManifests(file).map((manifest) => ({ file, manifest })))

function containersOf(manifest: Manifest): Container[] {
  const pod = manifest.spec?.template?.spec
  return [...(pod?.initContainers ?? []), ...(pod?.containers ?? [])]
}

/** Every command line in compose and Kubernetes, as argv, with the file and service it comes from. */
function commandLines(): { where: string; argv: string[] }[] {
  const lines: { where: string; argv: string[] }[] = []
  const toArgv = (command: string | string[] | undefined) => (typeof command === 'string' ? command.trim().split(/\s+/) : (command ?? []))
  for (const file of composeFiles) {
    for (const [name, service] of Object.entries(readCompose(file).services)) {
      const argv = [...toArgv(service.entrypoint), ...toArgv(service.command)]
      if (argv.length > 0) lines.push({ where: `${relative(file)} service ${name}`, argv })
    }
  }
  for (const { file, manifest } of manifests) {
    for (const container of containersOf(manifest)) {
      const argv = [...(container.command ?? []), ...(container.args ?? [])]
      if (argv.length > 0) lines.push({ where: `${relative(file)} container ${container.name}`, argv })
    }
  }
  return lines
}

/** The script a `node [flags] <script> ...` command line runs, or undefined for other commands. */
function nodeScript(argv: readonly string[]): string | undefined {
  if (path.basename(argv[0] ?? '') !== 'node') return undefined
  return argv.slice(1).find((arg) => !arg.startsWith('-'))
}

/** `dist/.../x.js` inside a package or app → the `src/.../x.ts` it is compiled from. */
function sourceOf(script: string): string {
  return script.replace(/^((?:apps|packages)\/[^/]+)\/dist\/(.+)\.js$/, '$1/src/$2.ts')
}

/** `name = value  # comment` lines, and whether the block a setting sits in starts with a comment. */
function readPostgresqlConf(text: string): { name: string; value: string; isExplained: boolean; line: number }[] {
  const settings: { name: string; value: string; isExplained: boolean; line: number }[] = []
  let isBlockExplained = false
  let isBlockStart = true
  for (const [index, raw] of text.split('\n').entries()) {
    const line = raw.trim()
    if (line === '') {
      isBlockStart = true
      continue
    }
    if (line.startsWith('#')) {
      if (isBlockStart) isBlockExplained = true
      isBlockStart = false
      continue
    }
    if (isBlockStart) isBlockExplained = false
    isBlockStart = false
    const match = /^([a-z_][a-z0-9_.]*)\s*=\s*('(?:[^']|'')*'|[^\s#']+)\s*(#.*)?$/.exec(line)
    if (!match) throw new Error(`postgresql.conf line ${index + 1} is not "name = value": ${line}`)
    settings.push({ name: match[1]!, value: match[2]!, isExplained: isBlockExplained || match[3] !== undefined, line: index + 1 })
  }
  return settings
}

/** PgBouncer's INI: `[section]` headers and `key = value` lines; `;` and `#` start a comment line. */
function readIni(text: string): Record<string, Record<string, string>> {
  const sections: Record<string, Record<string, string>> = {}
  let section: Record<string, string> | undefined
  for (const [index, raw] of text.split('\n').entries()) {
    const line = raw.trim()
    if (line === '' || line.startsWith(';') || line.startsWith('#')) continue
    const header = /^\[([a-z_]+)\]$/.exec(line)
    if (header) {
      section = sections[header[1]!] = {}
      continue
    }
    const setting = /^([A-Za-z0-9_.*-]+)\s*=\s*(.*)$/.exec(line)
    if (!setting || !section) throw new Error(`pgbouncer.ini line ${index + 1} is neither a [section] nor "key = value" inside one: ${line}`)
    section[setting[1]!] = setting[2]!
  }
  return sections
}

describe('infra/', () => {
  test('parses every YAML file, the Kubernetes ones as streams of documents', () => {
    const yamlFiles = infraFiles().filter((file) => /\.ya?ml$/.test(file))
    expect(yamlFiles.length).toBeGreaterThanOrEqual(composeFiles.length + kubernetesFiles.length)
    for (const file of yamlFiles) {
      for (const document of parseAllDocuments(read(file), { merge: true })) {
        expect(document.errors.map((error) => `${relative(file)}: ${error.message}`)).toEqual([])
      }
    }
  })

  test('names every Kubernetes manifest by apiVersion, kind and metadata.name, in the lab namespace', () => {
    expect(manifests.length).toBeGreaterThan(0)
    for (const { file, manifest } of manifests) {
      const where = `${relative(file)} (${manifest.kind ?? 'no kind'})`
      expect(manifest.apiVersion, where).toMatch(/^[a-z0-9./]+$/)
      expect(manifest.kind, where).toMatch(/^[A-Z][A-Za-z]+$/)
      expect(manifest.metadata?.name, where).toMatch(/^[a-z0-9][a-z0-9-]*$/)
      if (manifest.kind !== 'Namespace') expect(manifest.metadata?.namespace, where).toBe('skiplock-lab')
    }
    const kinds = manifests.map(({ manifest }) => `${manifest.kind}/${manifest.metadata?.name}`)
    expect(kinds).toEqual(expect.arrayContaining(['Namespace/skiplock-lab', 'Secret/skiplock-database', 'Job/migrate', 'Job/orchestrator', 'Job/analyzer']))
  })

  test('lists every Kubernetes manifest in the kustomization, and nothing else', () => {
    const kustomization = parse(read(path.join(kubernetesDirectory, 'kustomization.yaml'))) as { resources: string[] }
    expect([...kustomization.resources].sort()).toEqual(kubernetesFiles.map((file) => path.basename(file)).sort())
  })

  test('runs the workers in Kubernetes with resources and more time to stop than their grace period', () => {
    const workers = manifests.filter(({ manifest }) =>
      containersOf(manifest).some((container) => nodeScript([...(container.command ?? []), ...(container.args ?? [])]) === 'apps/worker/dist/main.js'),
    )
    expect(workers).toHaveLength(1)
    const { manifest } = workers[0]!
    const isIndexedJob = manifest.kind === 'Job' && manifest.spec?.completionMode === 'Indexed'
    expect(manifest.kind === 'Deployment' || isIndexedJob, `workers run as ${manifest.kind}`).toBe(true)
    expect(manifest.spec?.replicas ?? manifest.spec?.parallelism).toBeGreaterThan(1)
    expect(manifest.spec?.template?.spec?.terminationGracePeriodSeconds).toBeGreaterThan(workerShutdownGraceSeconds)
    for (const container of containersOf(manifest)) {
      expect(Object.keys(container.resources?.requests ?? {}).sort(), container.name).toEqual(['cpu', 'memory'])
      expect(container.resources?.limits?.memory, container.name).toBeDefined()
    }
  })

  test('builds compose services from a Dockerfile and mounts only files that exist in the repository', () => {
    for (const file of composeFiles) {
      const directory = path.dirname(file)
      for (const [name, service] of Object.entries(readCompose(file).services)) {
        const where = `${relative(file)} service ${name}`
        if (service.build) {
          const context = path.resolve(directory, service.build.context)
          expect(existsSync(context), `${where}: build context ${relative(context)}`).toBe(true)
          const dockerfile = path.join(context, service.build.dockerfile ?? 'Dockerfile')
          expect(existsSync(dockerfile), `${where}: ${relative(dockerfile)}`).toBe(true)
          for (const [, sources] of read(dockerfile).matchAll(/^COPY\s+(?!--from)(.+)\s+\S+$/gm)) {
            for (const source of sources!.split(/\s+/)) {
              expect(existsSync(path.join(context, source)), `${relative(dockerfile)}: COPY ${source}`).toBe(true)
            }
          }
        }
        const envFiles = typeof service.env_file === 'string' ? [service.env_file] : (service.env_file ?? [])
        for (const envFile of envFiles) expect(existsSync(path.resolve(directory, envFile)), `${where}: env_file ${envFile}`).toBe(true)
        for (const volume of service.volumes ?? []) {
          // Short syntax names a bind mount by a path (./x, ../x, /x); anything else is a named volume.
          const source = typeof volume === 'string' ? volume.split(':')[0]! : volume.type === 'bind' ? volume.source : undefined
          if (source === undefined || !/^[./]/.test(source)) continue
          expect(path.isAbsolute(source), `${where}: ${source} is machine-specific`).toBe(false)
          expect(existsSync(path.resolve(directory, source)), `${where}: mounts ${source}`).toBe(true)
        }
      }
    }
  })

  test('runs the study in compose: postgres:18 on 2 CPUs / 2 GB with its config, 50 x 4 workers', () => {
    const { services } = readCompose(path.join(composeDirectory, 'compose.yaml'))
    expect(Object.keys(services)).toEqual(expect.arrayContaining(['postgres', 'pgbouncer', 'migrate', 'orchestrator', 'workers', 'analyzer']))
    const postgres = services.postgres!
    expect(postgres.image).toBe('postgres:18')
    expect(postgres.deploy?.resources?.limits).toEqual({ cpus: '2', memory: '2g' })
    expect(postgres.healthcheck?.test).toBeDefined()
    expect(postgres.command).toContain('config_file=/etc/postgresql/postgresql.conf')
    expect(postgres.command).toContain('max_connections=200')
    expect(services.pgbouncer!.image).toMatch(/^(edoburu|bitnami)\/pgbouncer:/)
    const workers = services.workers!.command as string[]
    expect(workers.slice(0, 2)).toEqual(['node', 'apps/worker/dist/main.js'])
    expect(workers.join(' ')).toContain('--processes 50 --concurrency 4')
    expect(Number.parseInt(services.workers!.stop_grace_period ?? '0', 10)).toBeGreaterThan(workerShutdownGraceSeconds)
  })

  test('runs in compose and Kubernetes only node entry points whose sources exist', () => {
    const lines = commandLines()
    const scripts = lines.flatMap(({ where, argv }) => {
      const script = nodeScript(argv)
      return script === undefined ? [] : [{ where, script }]
    })
    // Each script is one of the lab's entry points and is built from a source that exists.
    const missing = scripts
      .map(({ where, script }) => ({ where, script, source: sourceOf(script) }))
      .filter(({ script, source }) => source !== entryPointSources[script] || !existsSync(path.join(repository, source)))
      .map(({ where, script, source }) => `${where}: node ${script} is built from ${source}, which does not exist or is no entry point`)
    expect(missing).toEqual([])
    // Every service and container runs one of them (besides the database), and each is used.
    expect(lines.filter(({ argv }) => nodeScript(argv) === undefined && argv[0] !== 'postgres').map(({ where }) => where)).toEqual([])
    expect(new Set(scripts.map(({ script }) => script))).toEqual(new Set(Object.keys(entryPointSources)))
  })

  test('names only scenarios that exist in perf/scenarios', () => {
    const scenarioNames = [
      ...composeFiles.flatMap((file) => [...read(file).matchAll(/\$\{SCENARIO:-([^}]+)\}/g)].map((match) => match[1]!)),
      ...[...read(path.join(composeDirectory, '.env.example')).matchAll(/^SCENARIO=(.+)$/gm)].map((match) => match[1]!),
      ...manifests.flatMap(({ manifest }) => (manifest.data?.SCENARIO ? [manifest.data.SCENARIO] : [])),
    ]
    expect(scenarioNames.length).toBeGreaterThanOrEqual(3)
    for (const name of scenarioNames) expect(existsSync(path.join(repository, 'perf/scenarios', `${name}.json`)), name).toBe(true)
  })

  test('pools PgBouncer connections per transaction in front of the skiplock database', () => {
    const ini = readIni(read(path.join(infra, 'pgbouncer/pgbouncer.ini')))
    expect(ini.pgbouncer?.pool_mode).toBe('transaction')
    expect(ini.pgbouncer?.auth_file).toBe('/etc/pgbouncer/userlist.txt')
    expect(ini.databases?.skiplock).toMatch(/\bhost=\S+/)
    // Room under the server's 200 connections for the direct ones (LISTEN, migrate, psql).
    expect(Number(ini.pgbouncer?.max_db_connections)).toBeLessThan(200)
    expect(read(path.join(infra, 'pgbouncer/userlist.txt.example'))).toMatch(/^"[^"]+" "change-me"$/m)
  })

  test('configures postgresql.conf for the study with settings the server knows, each explained', async ({ db }) => {
    const settings = readPostgresqlConf(read(path.join(infra, 'postgresql/postgresql.conf')))
    const byName = new Map(settings.map((setting) => [setting.name, setting.value]))
    expect(byName.size, 'a setting appears twice').toBe(settings.length)
    expect(settings.filter((setting) => !setting.isExplained).map(({ name, line }) => `line ${line}: ${name}`)).toEqual([])
    expect(Object.fromEntries(['max_connections', 'synchronous_commit', 'listen_addresses'].map((name) => [name, byName.get(name)]))).toEqual({
      max_connections: '200',
      synchronous_commit: 'on',
      listen_addresses: "'*'",
    })
    for (const name of [
      'shared_buffers',
      'effective_cache_size',
      'work_mem',
      'maintenance_work_mem',
      'client_connection_check_interval',
      'idle_in_transaction_session_timeout',
      'autovacuum_naptime',
      'autovacuum_vacuum_scale_factor',
      'autovacuum_vacuum_cost_limit',
    ]) {
      expect(byName.has(name), name).toBe(true)
    }

    // Names and enum values are checked against the test server itself, not a list that could drift.
    const { rows } = await db.query<{ name: string; vartype: string; enumvals: string[] | null }>('select name, vartype, enumvals from pg_settings')
    // Setting names are case-insensitive: pg_settings says TimeZone, the file says timezone.
    const known = new Map(rows.map((row) => [row.name.toLowerCase(), row]))
    const preloaded = (byName.get('shared_preload_libraries') ?? "''").slice(1, -1).split(',').map((library) => library.trim())
    for (const { name, value } of settings) {
      const [prefix] = name.split('.')
      if (name.includes('.')) {
        expect(preloaded, `${name} belongs to a library that is not preloaded`).toContain(prefix)
        continue
      }
      const setting = known.get(name.toLowerCase())
      expect(setting, `${name} is not a PostgreSQL setting`).toBeDefined()
      const unquoted = value.replace(/^'(.*)'$/, '$1')
      if (setting?.vartype === 'bool') expect(['on', 'off', 'true', 'false'], name).toContain(unquoted)
      if (setting?.vartype === 'enum') expect(setting.enumvals, name).toContain(unquoted)
      if (setting?.vartype === 'integer' || setting?.vartype === 'real') expect(unquoted, name).toMatch(/^-?\d+(\.\d+)?(B|kB|MB|GB|TB|us|ms|s|min|h|d)?$/)
    }
  })

  test('holds no secrets and no machine-specific paths', () => {
    for (const file of infraFiles()) {
      // A compose variable (`${POSTGRES_PASSWORD:?...}`) is where a secret should come from: not one.
      const text = read(file).replace(/\$\{[^}]*\}/g, '${}')
      for (const [, password] of text.matchAll(/postgres(?:ql)?:\/\/[^:\s/@]+:([^@\s]+)@/g)) {
        expect(password === 'change-me' || password!.startsWith('${'), `${relative(file)}: a password in a URL`).toBe(true)
      }
      for (const [, password] of text.matchAll(/PASSWORD[=:]\s*(\S+)/g)) {
        expect(password === 'change-me' || password!.startsWith('${'), `${relative(file)}: a password`).toBe(true)
      }
      expect(text, relative(file)).not.toMatch(/\/(home|Users|work|root|tmp)\//)
    }
  })
})
