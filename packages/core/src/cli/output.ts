/** A column of {@link formatTable}: its heading, and whether its cells line up on the right (numbers). */
export interface Column {
  heading: string
  isNumeric?: boolean
}

/**
 * Lays rows out in aligned columns under upper-case headings, two spaces apart. Plain text only: no
 * colours or box drawing, so the output reads the same on a terminal, in a pipe and in a log file.
 */
export function formatTable(columns: readonly Column[], rows: readonly (readonly string[])[]): string {
  const headings = columns.map((column) => column.heading.toUpperCase())
  const widths = columns.map((_, index) => Math.max(headings[index]!.length, ...rows.map((row) => (row[index] ?? '').length)))
  const formatRow = (cells: readonly string[]) =>
    columns
      .map((column, index) => {
        const cell = cells[index] ?? ''
        return column.isNumeric ? cell.padStart(widths[index]!) : cell.padEnd(widths[index]!)
      })
      .join('  ')
      .trimEnd()
  return [formatRow(headings), ...rows.map(formatRow)].join('\n') + '\n'
}

/** Writes `text` to stdout. */
export function print(text: string): void {
  process.stdout.write(text.endsWith('\n') ? text : `${text}\n`)
}

/** Writes `value` as indented JSON to stdout: dates as ISO 8601 strings, job ids as strings. */
export function printJson(value: unknown): void {
  print(JSON.stringify(value, null, 2))
}

/** A moment as ISO 8601 in UTC, or `-` when there is none. */
export function formatTime(date: Date | null | undefined): string {
  return date ? date.toISOString() : '-'
}

/** How long ago `date` was, coarsely (`45s`, `12m`, `3h 5m`, `2d 4h`), or `-` when there is none. */
export function formatAge(date: Date | null | undefined, now = new Date()): string {
  if (!date) return '-'
  const seconds = Math.max(0, Math.floor((now.getTime() - date.getTime()) / 1000))
  if (seconds < 60) return `${seconds}s`
  const minutes = Math.floor(seconds / 60)
  if (minutes < 60) return `${minutes}m`
  const hours = Math.floor(minutes / 60)
  if (hours < 24) return `${hours}h ${minutes % 60}m`
  return `${Math.floor(hours / 24)}d ${hours % 24}h`
}

/** A one-line progress display on stderr. */
export interface Progress {
  /** Shows `<label> <count>`, at most every 100 ms. */
  update(count: number): void
  /** Clears the line, so the final message stands alone. */
  done(): void
}

const PROGRESS_INTERVAL_MS = 100

/**
 * Progress for long operations, shown only when stderr is a terminal: in a pipe or a log file,
 * carriage returns would leave a smear of half-lines, so nothing extra is written there.
 */
export function createProgress(label: string): Progress {
  if (!process.stderr.isTTY) return { update: () => {}, done: () => {} }
  let lastShownAtMs = 0
  let isShown = false
  return {
    update(count) {
      const nowMs = Date.now()
      if (nowMs - lastShownAtMs < PROGRESS_INTERVAL_MS) return
      lastShownAtMs = nowMs
      isShown = true
      process.stderr.write(`\r\x1b[K${label} ${count}`)
    },
    done() {
      if (isShown) process.stderr.write('\r\x1b[K')
    },
  }
}
