// The page as a person uses it, in Chromium, against the real backend and ml-api (see global-setup.ts).
// Each test works in a collection of its own, so that none depends on another's documents.
import { expect, test, type Page } from '@playwright/test'
import { ask, baseUrl, openOn, seed, shot, solarMd, volcanoPdf, watchErrors } from './helpers'

const SOLAR_QUESTION = 'How do photovoltaic cells turn sunlight into electricity?'
const VOLCANO_QUESTION = 'What happens during an explosive volcanic eruption?'

const documentRow = (page: Page, filename: string) =>
  page.locator(`[data-testid="document"][data-filename="${filename}"]`)

test('upload a Markdown and a PDF file, ask, follow a citation, delete a document', async ({ page }) => {
  const errors = watchErrors(page)
  await openOn(page, 'default')
  await expect(page.getByTestId('service-status')).toHaveAttribute('data-health', 'ready')
  await expect(page.getByText('Upload a document first')).toBeVisible()
  await shot(page, '01-empty')

  // A collection of its own, made with the picker.
  await page.getByLabel('Collection', { exact: true }).selectOption({ label: '+ New collection…' })
  await page.getByRole('textbox', { name: 'New collection' }).fill('e2e-main')
  await page.getByRole('button', { name: 'Create' }).click()
  await expect(page.getByLabel('Collection', { exact: true })).toHaveValue('e2e-main')

  // Two files at once through the file picker.
  const chooser = page.waitForEvent('filechooser')
  await page.getByRole('button', { name: 'choose files' }).click()
  await (await chooser).setFiles([solarMd(), volcanoPdf()])
  const tasks = page.getByTestId('upload-task')
  await expect(tasks).toHaveCount(2)
  await shot(page, '02-uploading')
  await expect(tasks.filter({ hasText: 'solar-cells.md' }).locator('.task-stage')).toHaveText('Ready', {
    timeout: 90_000,
  })
  await expect(tasks.filter({ hasText: 'volcanoes.pdf' }).locator('.task-stage')).toHaveText('Ready', {
    timeout: 90_000,
  })

  // The list shows both, ready, with their size, chunks, pages and collection.
  const solar = documentRow(page, 'solar-cells.md')
  const volcano = documentRow(page, 'volcanoes.pdf')
  await expect(solar.getByTestId('doc-status')).toHaveText('Ready')
  await expect(volcano.getByTestId('doc-status')).toHaveText('Ready')
  await expect(volcano).toContainText('2 pages')
  await expect(volcano).toContainText(/\d+ chunks?/)
  await expect(solar).toContainText('e2e-main')
  await shot(page, '03-documents-ready')

  // Ask: the answer streams in, and its first citation leads to the photovoltaic passage.
  const turn = await ask(page, SOLAR_QUESTION)
  await expect(turn.getByTestId('answer')).toBeVisible()
  const first = turn.getByTestId('citation').first()
  await expect(first).toHaveText('1')
  await expect(first).toHaveAttribute('aria-label', /^Source 1: solar-cells\.md, rerank score 0\.\d\d$/)
  await first.click()
  // The source panel opens on the document's parsed text, the passage marked and in view.
  const panel = page.getByRole('dialog', { name: /solar-cells\.md/ })
  const mark = panel.getByTestId('source-mark')
  await expect(mark).toContainText('Photovoltaic cells convert sunlight directly into electricity')
  await expect(mark).toBeInViewport()
  await expect(panel.getByRole('link', { name: 'Download' })).toHaveAttribute('href', /\/api\/documents\/.+\/content$/)
  await shot(page, '04-source-panel')
  await page.keyboard.press('Escape')
  await expect(panel).toBeHidden()
  await expect(first).toBeFocused()
  const cited = turn.locator('.passage.highlight')
  await expect(cited).toBeInViewport({ ratio: 0.5 })
  await expect(cited).toHaveAttribute('data-source', 'solar-cells.md')
  await expect(cited).toContainText('Photovoltaic cells convert sunlight directly into electricity')
  await expect(cited.getByTestId('rerank-score')).toHaveText(/^rerank 0\.\d\d$/)
  await expect(turn.getByTestId('turn-meta')).toContainText(/total \d/)
  await shot(page, '04-answer-with-citation')

  // The same question again is served from the cache, and says so.
  const again = await ask(page, SOLAR_QUESTION)
  await expect(again.getByTestId('cached')).toHaveText('served from cache')

  // Generation off: the top passages are the answer.
  await page.getByRole('switch', { name: 'Generate answer' }).uncheck()
  const plain = await ask(page, 'Why do installers leave an air gap behind solar panels?')
  await expect(plain.getByTestId('answer')).toHaveCount(0)
  await expect(plain.getByTestId('passage').first()).toHaveAttribute('data-source', 'solar-cells.md')
  await expect(plain.getByTestId('passage').first()).toContainText('air gap')
  await shot(page, '05-passages-only')

  // Delete with confirmation.
  await volcano.getByRole('button', { name: 'Delete volcanoes.pdf' }).click()
  const dialog = page.getByRole('dialog', { name: 'Delete volcanoes.pdf?' })
  await expect(dialog).toBeVisible()
  await shot(page, '06-confirm-delete')
  await dialog.getByRole('button', { name: 'Delete' }).click()
  await expect(dialog).toBeHidden()
  await expect(documentRow(page, 'volcanoes.pdf')).toHaveCount(0)
  await expect(page.getByTestId('document')).toHaveCount(1)
  const res = await page.request.get(`${baseUrl()}/api/documents?collection=e2e-main`)
  expect(((await res.json()) as { total: number }).total).toBe(1)
  await shot(page, '07-after-delete')
  expect(errors()).toEqual([])
})

test('drag and drop several files: a refused one shows its own error', async ({ page }) => {
  const errors = watchErrors(page)
  await openOn(page, 'e2e-drop')
  await expect(page.getByText(/No documents in e2e-drop yet/)).toBeVisible()

  const drop = await page.evaluateHandle(() => {
    const dt = new DataTransfer()
    dt.items.add(new File(['Tea is brewed from the leaves of Camellia sinensis.'], 'tea.txt', { type: 'text/plain' }))
    dt.items.add(new File([new Uint8Array([80, 75, 3, 4, 0, 0])], 'archive.zip', { type: 'application/zip' }))
    return dt
  })
  const zone = page.getByTestId('dropzone')
  await zone.dispatchEvent('dragenter', { dataTransfer: drop })
  await expect(zone).toHaveClass(/over/)
  await zone.dispatchEvent('drop', { dataTransfer: drop })

  const tasks = page.getByTestId('upload-task')
  const refused = tasks.filter({ hasText: 'archive.zip' })
  await expect(refused.locator('.task-stage')).toHaveText('Failed')
  await expect(refused.getByRole('alert')).toContainText(/archive|zip|unsupported|supported/i)
  await expect(refused.getByRole('button', { name: 'Retry' })).toBeVisible()
  await expect(tasks.filter({ hasText: 'tea.txt' }).locator('.task-stage')).toHaveText('Ready', {
    timeout: 90_000,
  })
  await expect(page.getByTestId('document')).toHaveCount(1)
  await shot(page, '08-drop-with-refused-file')
  expect(errors()).toEqual([])
})

/** About 6,000 words on tea: a few dozen chunks, each a long passage. */
function longMarkdown(): Buffer {
  const topics = ['green tea', 'black tea', 'oolong', 'white tea', 'pu-erh', 'matcha']
  const parts = ['# A long guide to tea\n']
  for (let i = 0; i < 120; i++) {
    const topic = topics[i % topics.length]
    parts.push(
      `## Section ${i + 1}: ${topic}\n\nThis section describes ${topic} in detail, part ${i + 1}. ` +
        `Leaves of ${topic} are harvested, withered, rolled and dried; the grower decides how far they oxidise. ` +
        `Brewing ${topic} well depends on water temperature, steeping time and the amount of leaf used per cup. ` +
        `Green tea should steep for two to three minutes in water at about 80 degrees Celsius, never boiling. ` +
        `Storage matters too: keep the leaves dry, away from light and strong smells, in an airtight tin.\n`,
    )
  }
  return Buffer.from(parts.join('\n'))
}

test('a long document: ingestion progress, then long passages that expand', async ({ page }) => {
  const errors = watchErrors(page)
  await openOn(page, 'e2e-long')
  await page
    .getByTestId('file-input')
    .setInputFiles({ name: 'tea-guide.md', mimeType: 'text/markdown', buffer: longMarkdown() })
  const task = page.getByTestId('upload-task')
  // Past the upload, the stages of ingestion show on the same row until it is ready.
  await expect(task.locator('.task-stage')).toHaveText(/Parsing|Chunking|Embedding|Indexing|Ready/)
  await shot(page, '09-long-document-ingesting')
  await expect(task.locator('.task-stage')).toHaveText('Ready', { timeout: 120_000 })
  const row = page.locator('[data-testid="document"][data-filename="tea-guide.md"]')
  const chunks = Number((await row.locator('.doc-meta').innerText()).match(/(\d+) chunks/)?.[1])
  expect(chunks).toBeGreaterThan(15)

  const box = page.getByRole('textbox', { name: 'Question' })
  await box.fill('How long should green tea steep?')
  await box.press('Enter')
  const turn = page.getByTestId('turn').last()
  await expect(turn.getByTestId('turn-meta')).toBeVisible({ timeout: 60_000 })
  const passage = turn.getByTestId('passage').first()
  const more = passage.getByRole('button', { name: 'Show full passage' })
  await expect(more).toBeVisible()
  const before = (await passage.locator('.passage-text').innerText()).length
  await more.click()
  await expect(passage.getByRole('button', { name: 'Show less' })).toHaveAttribute('aria-expanded', 'true')
  expect((await passage.locator('.passage-text').innerText()).length).toBeGreaterThan(before)
  expect(errors()).toEqual([])
})

test('narrow window: one pane at a time, keyboard only', async ({ page }) => {
  const errors = watchErrors(page)
  await seed(page.request, 'e2e-narrow', [volcanoPdf(), solarMd()])
  await page.setViewportSize({ width: 400, height: 820 })
  await openOn(page, 'e2e-narrow')
  await expect(page.getByTestId('document')).toHaveCount(2)
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)
  expect(overflow).toBeLessThanOrEqual(0)
  await shot(page, '10-narrow-documents')

  await page.getByRole('button', { name: 'Ask', exact: true }).click()
  await expect(page.getByText('2 documents are ready')).toBeVisible()
  const box = page.getByRole('textbox', { name: 'Question' })
  await box.focus()
  await page.keyboard.type(VOLCANO_QUESTION)
  await page.keyboard.press('Enter')
  const turn = page.getByTestId('turn').last()
  await expect(turn.getByTestId('turn-meta')).toBeVisible({ timeout: 60_000 })
  const first = turn.getByTestId('citation').first()
  await expect(first).toHaveAttribute('aria-label', /^Source 1: volcanoes\.pdf, (page \d, )?rerank score/)
  // Keyboard: focus the citation and follow it with Enter: the PDF opens at the cited page, passage highlighted.
  await first.focus()
  await page.keyboard.press('Enter')
  const panel = page.getByRole('dialog', { name: /volcanoes\.pdf/ })
  await expect(panel.getByTestId('pdf-status')).toHaveText(/^Page \d of 2: the passage is highlighted$/)
  await expect(panel.locator('.textLayer .hl').first()).toBeInViewport()
  await shot(page, '11-narrow-source-panel')
  await page.keyboard.press('Escape')
  await expect(first).toBeFocused()
  const cited = turn.locator('.passage.highlight')
  await expect(cited).toContainText('Pyroclastic flows')
  await expect(cited).toBeInViewport({ ratio: 0.5 })
  expect(await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)).toBeLessThanOrEqual(0)
  await shot(page, '11-narrow-answer')
  expect(errors()).toEqual([])
})

test('backend unreachable: a message, then retry once it is back', async ({ page }) => {
  const errors = watchErrors(page)
  await seed(page.request, 'e2e-offline', [solarMd()])
  // The browser loses the backend (the page itself still loads): every API call fails at the network level.
  const cut = (route: { abort: () => Promise<void> }) => route.abort()
  await page.route('**/ready', cut)
  await page.route('**/api/**', cut)
  await openOn(page, 'e2e-offline')
  await expect(page.getByRole('alert').filter({ hasText: 'Retrying automatically' })).toBeVisible()
  await expect(page.getByTestId('service-status')).toHaveAttribute('data-health', 'offline')

  const box = page.getByRole('textbox', { name: 'Question' })
  await box.fill(SOLAR_QUESTION)
  await box.press('Enter')
  const turn = page.getByTestId('turn').last()
  await expect(turn.getByRole('alert')).toContainText("Can't reach the backend")
  await shot(page, '12-backend-unreachable')

  await page.unrouteAll()
  await page.getByRole('button', { name: 'Retry now' }).click()
  await expect(page.getByTestId('service-status')).toHaveAttribute('data-health', 'ready')
  await expect(page.getByText("Can't reach the backend. Retrying")).toBeHidden()
  await expect(page.getByTestId('document')).toHaveCount(1)
  await turn.getByRole('button', { name: 'Retry' }).click()
  await expect(turn.getByTestId('turn-meta')).toBeVisible({ timeout: 60_000 })
  await expect(turn.getByTestId('passage').first()).toHaveAttribute('data-source', 'solar-cells.md')
  await shot(page, '13-recovered')
  expect(errors()).toEqual([])
})
