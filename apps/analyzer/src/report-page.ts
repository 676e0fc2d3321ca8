import { escapeHtml, markdownToHtml } from './markdown-html.ts'
import type { RenderedPlot } from './plot-render.ts'
import type { RunFigures } from './report.ts'

/** Everything the report page shows. */
export interface ReportPageInput {
  title: string
  figures: RunFigures
  verdict: string
  isClean: boolean
  /** summary.md: its tables are rendered on the page. */
  markdown: string
  plots: readonly RenderedPlot[]
  scenario: Record<string, unknown>
  environment: Record<string, unknown>
}

const style = `
  body { font-family: 'DejaVu Sans', Verdana, sans-serif; color: #222; margin: 0; background: #fafafa; }
  main { max-width: 1100px; margin: 0 auto; padding: 24px; }
  h1 { font-size: 1.6em; margin: 0 0 16px; }
  h2 { font-size: 1.25em; margin: 32px 0 12px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
  .headline { display: grid; grid-template-columns: repeat(auto-fill, minmax(170px, 1fr)); gap: 12px; margin: 0; }
  .headline div { background: white; border: 1px solid #ddd; border-radius: 6px; padding: 10px 12px; }
  .headline dt { font-size: 0.8em; color: #666; }
  .headline dd { margin: 4px 0 0; font-size: 1.35em; font-variant-numeric: tabular-nums; }
  .verdict { margin: 16px 0; padding: 10px 12px; border-radius: 6px; font-family: 'DejaVu Sans Mono', monospace; }
  .verdict.clean { background: #e8f5e9; border: 1px solid #66bb6a; }
  .verdict.dirty { background: #ffebee; border: 1px solid #e57373; }
  figure.plot { background: white; border: 1px solid #ddd; border-radius: 6px; margin: 0 0 16px; padding: 8px; }
  figure.plot svg { display: block; max-width: 100%; height: auto; }
  figure.plot figcaption { font-size: 0.85em; color: #555; margin: 4px 4px 0; }
  figure.not-measured { color: #666; font-style: italic; }
  table { border-collapse: collapse; margin: 8px 0 16px; background: white; font-size: 0.9em; }
  th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top; }
  th { background: #f0f0f0; }
  td.number, th.number { text-align: right; font-variant-numeric: tabular-nums; }
  pre { background: white; border: 1px solid #ddd; padding: 8px; overflow-x: auto; }
`

/**
 * The run's report page: one HTML file with no script and nothing to fetch, so it opens offline and
 * from an archive. Its Content-Security-Policy forbids loading anything, which keeps it that way.
 */
export function buildReportPage(input: ReportPageInput): string {
  const { figures } = input
  const rate = (value: number) => (Number.isFinite(value) ? `${value.toFixed(1)} jobs/s` : '-')
  const headline: [string, string][] = [
    ['jobs', String(figures.jobs)],
    ['duration', Number.isFinite(figures.durationSeconds) ? `${figures.durationSeconds.toFixed(1)} s` : '-'],
    ['enqueue rate', rate(figures.enqueueJobsPerSecond)],
    ['backlog drain rate', rate(figures.drainJobsPerSecond)],
    ['steady-state rate', rate(figures.steadyJobsPerSecond)],
    ['succeeded / failed', `${figures.succeeded} / ${figures.failed}`],
    ['lost / dup results', `${figures.lost} / ${figures.dupResults}`],
  ]
  // summary.md's own title is the page's h1.
  const tables = markdownToHtml(input.markdown.replace(/^# .*\n+/, ''))
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<link rel="icon" href="data:,">
<title>${escapeHtml(input.title)}</title>
<style>${style}</style>
</head>
<body>
<main>
<h1>${escapeHtml(input.title)}</h1>
<dl class="headline">
${headline.map(([name, value]) => `<div><dt>${escapeHtml(name)}</dt><dd>${escapeHtml(value)}</dd></div>`).join('\n')}
</dl>
<p class="verdict ${input.isClean ? 'clean' : 'dirty'}">${escapeHtml(input.verdict)}</p>
<p>Duration runs from the first job created to the last job finished.</p>
<h2>Plots</h2>
${input.plots.map(plotFigure).join('\n')}
${tables}
<h2>Scenario</h2>
${keyValueTable(input.scenario)}
<h2>Environment</h2>
${keyValueTable(flatten(input.environment))}
</main>
</body>
</html>
`
}

function plotFigure(plot: RenderedPlot): string {
  const caption = `<figcaption>${escapeHtml(plot.caption)}</figcaption>`
  if (!plot.svg) {
    return `<figure class="plot not-measured" id="plot-${plot.name}"><p><strong>${escapeHtml(plot.title)}</strong>: ${escapeHtml(plot.notMeasured ?? 'not measured')}</p>${caption}</figure>`
  }
  // The SVG carries its title and caption itself, as the PNG beside it must.
  return `<figure class="plot" id="plot-${plot.name}">${inlineSvg(plot.svg, plot.name, `${plot.title}: ${plot.caption}`)}</figure>`
}

/**
 * Makes a standalone SVG safe to inline beside others: Vega numbers its clip paths and gradients from 1
 * in every SVG, and duplicate ids in one page would make each plot clip with the first plot's paths.
 */
export function inlineSvg(svg: string, prefix: string, label: string): string {
  return svg
    .replace(/^<\?xml[^>]*>\s*/, '')
    .replace(/\bid="([^"]+)"/g, `id="${prefix}-$1"`)
    .replace(/url\(#([^)]+)\)/g, `url(#${prefix}-$1)`)
    .replace(/href="#([^"]+)"/g, `href="#${prefix}-$1"`)
    .replace(/^<svg\b/, `<svg role="img" aria-label="${escapeHtml(label)}"`)
}

function keyValueTable(values: Record<string, unknown>): string {
  const rows = Object.entries(values).map(([key, value]) => {
    const text = typeof value === 'string' ? value : JSON.stringify(value)
    return `<tr><th>${escapeHtml(key)}</th><td>${escapeHtml(text ?? '')}</td></tr>`
  })
  return `<table>\n<tbody>${rows.join('\n')}</tbody>\n</table>`
}

/** `{ versions: { node: 'v24' } }` becomes `{ 'versions.node': 'v24' }`, one table row per setting. */
function flatten(values: Record<string, unknown>, prefix = ''): Record<string, unknown> {
  const flat: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(values)) {
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) Object.assign(flat, flatten(value as Record<string, unknown>, `${prefix}${key}.`))
    else flat[`${prefix}${key}`] = key === 'memoryBytes' && typeof value === 'number' ? `${(value / 2 ** 30).toFixed(1)} GiB` : value
  }
  return flat
}
