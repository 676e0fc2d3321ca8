/** Escapes text for HTML content and attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (character) => `&#${character.charCodeAt(0)};`)
}

/**
 * Converts the Markdown the analyzer writes to HTML: headings, pipe tables, fenced code blocks and
 * paragraphs, with `inline code`. Anything else is shown as escaped text, never as markup.
 */
export function markdownToHtml(markdown: string): string {
  const lines = markdown.split('\n')
  const html: string[] = []
  let index = 0
  while (index < lines.length) {
    const line = lines[index]!
    if (line.trim() === '') {
      index++
    } else if (line.startsWith('```')) {
      const code: string[] = []
      for (index++; index < lines.length && !lines[index]!.startsWith('```'); index++) code.push(lines[index]!)
      index++
      html.push(`<pre><code>${escapeHtml(code.join('\n'))}</code></pre>`)
    } else if (/^#{1,6} /.test(line)) {
      const level = line.indexOf(' ')
      html.push(`<h${level}>${inline(line.slice(level + 1).trim())}</h${level}>`)
      index++
    } else if (isTableRow(line) && isSeparator(lines[index + 1])) {
      const rows: string[][] = []
      for (; index < lines.length && isTableRow(lines[index]!); index++) rows.push(cells(lines[index]!))
      html.push(table(rows[0]!, rows.slice(2)))
    } else {
      const paragraph: string[] = []
      for (; index < lines.length && lines[index]!.trim() !== '' && !lines[index]!.startsWith('```') && !/^#{1,6} /.test(lines[index]!); index++) {
        paragraph.push(lines[index]!.trim())
      }
      html.push(`<p>${inline(paragraph.join(' '))}</p>`)
    }
  }
  return html.join('\n')
}

const isTableRow = (line: string) => line.trim().startsWith('|') && line.trim().endsWith('|')
const isSeparator = (line: string | undefined) => line !== undefined && /^\|(\s*:?-+:?\s*\|)+$/.test(line.trim())
const cells = (line: string) => line.trim().slice(1, -1).split('|').map((cell) => cell.trim())
// Right-align columns of numbers, as a reader compares them digit by digit.
const isNumeric = (cell: string) => /^-?[\d.,]+(e[-+]?\d+)?$/.test(cell) || cell === '-'

function table(headers: string[], rows: string[][]): string {
  const numeric = headers.map((_, column) => rows.length > 0 && rows.every((row) => isNumeric(row[column] ?? '')))
  const cell = (tag: 'th' | 'td', text: string, column: number) => `<${tag}${numeric[column] ? ' class="number"' : ''}>${inline(text)}</${tag}>`
  return [
    '<table>',
    `<thead><tr>${headers.map((header, column) => cell('th', header, column)).join('')}</tr></thead>`,
    `<tbody>${rows.map((row) => `<tr>${row.map((text, column) => cell('td', text, column)).join('')}</tr>`).join('\n')}</tbody>`,
    '</table>',
  ].join('\n')
}

function inline(text: string): string {
  return text
    .split(/(`[^`]+`)/)
    .map((part) => (part.startsWith('`') && part.endsWith('`') && part.length > 1 ? `<code>${escapeHtml(part.slice(1, -1))}</code>` : escapeHtml(part)))
    .join('')
}
