import { createHash } from 'node:crypto'
import { readdir, readFile } from 'node:fs/promises'

/** A file of the SQL API, as shipped in the package's `sql/` folder. */
export interface SqlFile {
  /** `0001_create_queue` for a migration, `functions/fetch_jobs` for a function. */
  readonly name: string
  readonly sql: string
  /** sha256 of the file as written, so it does not depend on the schema it is applied to. */
  readonly checksum: string
}

// src/ and dist/ both sit beside sql/, so the same relative path works built or not.
const sqlDirectory = new URL('../sql/', import.meta.url)

async function readSqlFiles(folder: 'migrations' | 'functions', prefix: string): Promise<SqlFile[]> {
  const directory = new URL(`${folder}/`, sqlDirectory)
  const names = (await readdir(directory)).filter((name) => name.endsWith('.sql')).sort()
  return Promise.all(
    names.map(async (fileName) => {
      const sql = await readFile(new URL(fileName, directory), 'utf8')
      return {
        name: prefix + fileName.slice(0, -'.sql'.length),
        sql,
        checksum: createHash('sha256').update(sql).digest('hex'),
      }
    }),
  )
}

/** The numbered migrations, in the order they apply. */
export function readMigrations(): Promise<SqlFile[]> {
  return readSqlFiles('migrations', '')
}

/** The PL/pgSQL functions, one per file, applied with `create or replace` after the migrations. */
export function readFunctions(): Promise<SqlFile[]> {
  return readSqlFiles('functions', 'functions/')
}
