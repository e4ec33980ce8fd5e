import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { expect, type APIRequestContext, type Page } from '@playwright/test'
import { VOLCANO_PAGES, pdfBytes } from './pdf'

const HERE = dirname(fileURLToPath(import.meta.url))
export const SHOTS = join(HERE, '..', 'test-results', 'screenshots')
export const SOLAR_MD = join(HERE, 'fixtures', 'solar-cells.md')

export const baseUrl = (): string => {
  const url = process.env.E2E_BASE_URL
  if (!url) throw new Error('E2E_BASE_URL is not set: run through `npm run test:e2e` (global setup)')
  return url
}

export interface FilePayload {
  name: string
  mimeType: string
  buffer: Buffer
}

export const volcanoPdf = (): FilePayload => ({
  name: 'volcanoes.pdf',
  mimeType: 'application/pdf',
  buffer: pdfBytes(VOLCANO_PAGES, 'Volcanoes'),
})

export const solarMd = (): FilePayload => ({
  name: 'solar-cells.md',
  mimeType: 'text/markdown',
  buffer: readFileSync(SOLAR_MD),
})

/**
 * Collects what would be a bug in the page: uncaught exceptions, React errors, CSP violations. Failed requests
 * (a refused upload's 415, the offline test) are the page working as meant and are left out.
 */
export function watchErrors(page: Page): () => string[] {
  const errors: string[] = []
  page.on('pageerror', (err) => errors.push(`pageerror: ${err.message}`))
  page.on('console', (msg) => {
    if (msg.type() === 'error' && !msg.text().startsWith('Failed to load resource')) errors.push(msg.text())
  })
  return () => errors
}

/** A full-page picture of a key step, kept as a test artifact. */
export async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true })
}

/** Puts documents in place through the API (for tests about something else than uploading). */
export async function seed(request: APIRequestContext, collection: string, files: FilePayload[]): Promise<void> {
  const ids: string[] = []
  for (const file of files) {
    const res = await request.post(`${baseUrl()}/api/documents`, { multipart: { collection, files: file } })
    expect(res.status(), await res.text()).toBe(202)
    const body = (await res.json()) as { documents: { id: string }[] }
    ids.push(body.documents[0].id)
  }
  for (const id of ids) {
    await expect
      .poll(
        async () => ((await (await request.get(`${baseUrl()}/api/documents/${id}`)).json()) as { status: string }).status,
        { timeout: 90_000, intervals: [250, 500, 1000] },
      )
      .toBe('ready')
  }
}

/** Opens the page on a collection (the picker remembers its choice in localStorage). */
export async function openOn(page: Page, collection: string): Promise<void> {
  await page.addInitScript((name) => localStorage.setItem('rag.collection', JSON.stringify(name)), collection)
  await page.goto(baseUrl())
}

/** Asks a question the way a person does (typed, then Enter) and waits for the answer: its turn, once finished. */
export async function ask(page: Page, question: string) {
  const box = page.getByRole('textbox', { name: 'Question' })
  await box.fill(question)
  await box.press('Enter')
  const turn = page.getByTestId('turn').last()
  await expect(turn.getByTestId('turn-meta')).toBeVisible({ timeout: 60_000 })
  return turn
}
