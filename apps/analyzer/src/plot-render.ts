import { existsSync } from 'node:fs'
import { mkdir, writeFile } from 'node:fs/promises'

import { Resvg, type ResvgRenderOptions } from '@resvg/resvg-js'
import { parse, View } from 'vega'
import { compile, type TopLevelSpec } from 'vega-lite'

import type { PlotSpec } from './plots.ts'

/** Debian's fonts-dejavu-core: the font the PNGs are drawn with. */
export const plotFontFile = '/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf'

/** A plot as the report page shows it: its SVG text, or why it is missing. */
export interface RenderedPlot {
  name: string
  title: string
  caption: string
  svg?: string
  notMeasured?: string
}

/** Compiles a Vega-Lite spec and renders it to SVG text, server-side (no browser, no canvas). */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const view = new View(parse(compile(spec).spec), { renderer: 'none' })
  try {
    return await view.toSVG()
  } finally {
    view.finalize()
  }
}

let fontOptions: ResvgRenderOptions['font'] | undefined

/**
 * Renders SVG text to PNG at twice its size, with DejaVu Sans. Without that font file it falls back to
 * the system's fonts and says so once on stderr: resvg draws no text at all when it finds no font.
 */
export function renderPng(svg: string): Buffer {
  if (fontOptions === undefined) {
    if (existsSync(plotFontFile)) {
      fontOptions = { fontFiles: [plotFontFile], loadSystemFonts: false, defaultFontFamily: 'DejaVu Sans' }
    } else {
      console.error(`analyzer: ${plotFontFile} is missing (Debian: apt-get install fonts-dejavu-core); PNG plots use the system's fonts`)
      fontOptions = { loadSystemFonts: true, defaultFontFamily: 'sans-serif' }
    }
  }
  return new Resvg(svg, { background: 'white', fitTo: { mode: 'zoom', value: 2 }, font: fontOptions }).render().asPng()
}

/** Renders each plot to `<directory>/plots/<name>.svg` and `.png`; plots that could not be drawn write no file. */
export async function writePlots(directory: URL, plots: readonly PlotSpec[]): Promise<RenderedPlot[]> {
  const plotDirectory = new URL('plots/', directory)
  await mkdir(plotDirectory, { recursive: true })
  const rendered: RenderedPlot[] = []
  for (const plot of plots) {
    const { name, title, caption } = plot
    if (!plot.spec) {
      rendered.push({ name, title, caption, notMeasured: plot.notMeasured ?? 'not measured' })
      continue
    }
    const svg = await renderSvg(plot.spec)
    await writeFile(new URL(`${name}.svg`, plotDirectory), svg)
    await writeFile(new URL(`${name}.png`, plotDirectory), renderPng(svg))
    rendered.push({ name, title, caption, svg })
  }
  return rendered
}
