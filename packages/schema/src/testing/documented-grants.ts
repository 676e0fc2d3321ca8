import { readFile } from 'node:fs/promises'

import pg from 'pg'

import { quoteSchemaName, renderSql } from '../schema-name.ts'

/**
 * The grants the README documents under "## Roles", for `role` on `schema`: tests run the documentation
 * itself, so a grant missing there fails a test rather than a deployment.
 */
export async function documentedGrants(schema: string, role: string): Promise<string> {
  const readme = await readFile(new URL('../../README.md', import.meta.url), 'utf8')
  const section = readme.slice(readme.indexOf('## Roles'))
  const sql = /```sql\n([\s\S]*?)```/.exec(section)?.[1]
  if (!sql) throw new Error('the README has no SQL block under "## Roles"')
  return renderSql(sql, schema)
    .replace(/\bschema skiplock\b/g, `schema ${quoteSchemaName(schema)}`)
    .replace(/\bskiplock_runtime\b/g, pg.escapeIdentifier(role))
}

/** `url` logging in as `role` instead. */
export function urlForRole(url: string, role: string, password: string): string {
  const parsed = new URL(url)
  parsed.username = role
  parsed.password = encodeURIComponent(password)
  return parsed.toString()
}
