// Saved conversations and the source panel, as a person uses them, against the real backend: a chat is created
// by the first question, a follow-up goes into it (and says what was searched), a reload keeps it, and it can be
// renamed and deleted; a citation opens the document at the passage.
import { expect, test, type Page } from '@playwright/test'
import { ask, baseUrl, openOn, seed, shot, solarMd, volcanoPdf, watchErrors } from './helpers'

/** The chats other tests left (the backend has no accounts here: every chat is everyone's). */
async function deleteAllChats(page: Page): Promise<void> {
  const res = await page.request.get(`${baseUrl()}/api/conversations`)
  for (const c of (await res.json()) as { id: string }[]) {
    expect((await page.request.delete(`${baseUrl()}/api/conversations/${c.id}`)).ok()).toBe(true)
  }
}

test('conversations: new chat, follow-up, reload keeps it, rename, delete', async ({ page }) => {
  const errors = watchErrors(page)
  await deleteAllChats(page)
  await seed(page.request, 'e2e-chats', [solarMd(), volcanoPdf()])
  await openOn(page, 'e2e-chats')
  const chats = page.getByTestId('conversations')
  await expect(chats).toBeVisible()

  const first = await ask(page, 'How do photovoltaic cells turn sunlight into electricity?')
  await expect(first.getByTestId('answer')).toBeVisible()
  // The new question stays in view while its answer is written below it.
  await expect(first.locator('.question')).toBeInViewport()
  const row = chats.getByTestId('conversation').filter({ hasText: 'photovoltaic' })
  await expect(row).toHaveCount(1)
  await expect(row.getByRole('button', { name: /photovoltaic/i }).first()).toHaveAttribute('aria-current', 'page')

  // A follow-up that only makes sense after the first question: retrieval searched with the earlier turn's terms.
  const followUp = await ask(page, 'and why does heat lower their output?')
  await expect(followUp.locator('.question')).toBeInViewport()
  const searched = followUp.getByTestId('search-query')
  await expect(searched).toContainText('Searched for:')
  await expect(searched).not.toHaveText('Searched for: “and why does heat lower their output?”')
  await expect(followUp.getByTestId('passage').first()).toHaveAttribute('data-source', 'solar-cells.md')
  await shot(page, 'chats-01-follow-up')

  // Feedback on the answer.
  await followUp.getByRole('button', { name: 'Good answer' }).click()
  await expect(followUp.getByRole('button', { name: 'Good answer' })).toHaveAttribute('aria-pressed', 'true')
  await expect(followUp.getByRole('status').filter({ hasText: 'Thanks' })).toBeVisible()

  // A reload shows the same conversation, from the server.
  await page.reload()
  await expect(page.getByTestId('turn')).toHaveCount(2)
  await expect(page.getByTestId('turn').first()).toContainText('photovoltaic cells')
  await expect(page.getByTestId('turn').last().getByRole('button', { name: 'Good answer' })).toHaveAttribute(
    'aria-pressed',
    'true',
  )

  // New chat: an empty thread; the old one stays in the list.
  await chats.getByRole('button', { name: 'New chat' }).click()
  await expect(page.getByTestId('turn')).toHaveCount(0)
  await ask(page, 'What happens during an explosive volcanic eruption?')
  await expect(chats.getByTestId('conversation')).toHaveCount(2)

  // Rename the first chat, then delete it (with confirmation).
  await chats.getByRole('button', { name: /^Rename .*photovoltaic/i }).click()
  const input = chats.getByRole('textbox', { name: 'New title' })
  await input.fill('Solar cells')
  await input.press('Enter')
  await expect(chats.getByRole('button', { name: 'Solar cells', exact: true })).toBeVisible()
  await page.reload()
  await expect(chats.getByRole('button', { name: 'Solar cells', exact: true })).toBeVisible()
  await shot(page, 'chats-02-list')
  await chats.getByRole('button', { name: 'Delete Solar cells' }).click()
  const dialog = page.getByRole('dialog', { name: /Delete “Solar cells”\?/ })
  await dialog.getByRole('button', { name: 'Delete' }).click()
  await expect(chats.getByRole('button', { name: 'Solar cells', exact: true })).toHaveCount(0)
  const listed = (await (await page.request.get(`${baseUrl()}/api/conversations`)).json()) as { title: string }[]
  expect(listed.map((c) => c.title)).not.toContain('Solar cells')
  expect(errors()).toEqual([])
})

test('source panel: text documents open at the passage, PDFs at the cited page', async ({ page }) => {
  const errors = watchErrors(page)
  await seed(page.request, 'e2e-sources', [solarMd(), volcanoPdf()])
  await openOn(page, 'e2e-sources')

  const turn = await ask(page, 'Why do installers leave an air gap behind solar panels?')
  const first = turn.getByTestId('citation').first()
  await first.click()
  const panel = page.getByTestId('source-panel')
  await expect(panel).toBeVisible()
  const mark = panel.getByTestId('source-mark')
  await expect(mark).toContainText('air gap')
  await expect(mark).toBeInViewport()
  // The marked text is exactly the passage the backend points at: text[char_start:char_end] by code points.
  const results = await page.evaluate(async () => {
    const res = await fetch('/api/query', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ query: 'Why do installers leave an air gap behind solar panels?', collection: 'e2e-sources' }),
    })
    return ((await res.json()) as { results: { document_id: string; char_start: number; char_end: number; source: string }[] }).results
  })
  const top = results.find((r) => r.source === 'solar-cells.md')
  expect(top).toBeTruthy()
  const text = await (await page.request.get(`${baseUrl()}/api/documents/${top?.document_id}/text`)).text()
  const sliced = Array.from(text).slice(top?.char_start, top?.char_end).join('')
  const marks = await page.evaluate(() => document.querySelector('[data-testid="source-mark"]')?.textContent ?? '')
  expect(sliced.includes(marks) || marks.includes(sliced.trim())).toBe(true)
  await expect(panel.getByRole('button', { name: 'Close' })).toBeFocused()
  await shot(page, 'sources-01-text')
  await page.keyboard.press('Escape')
  await expect(panel).toBeHidden()
  await expect(first).toBeFocused()

  const pdf = await ask(page, 'What happens during an explosive volcanic eruption?')
  const open = pdf.getByRole('button', { name: /^Open volcanoes\.pdf/ }).first()
  await open.click()
  await expect(panel.getByTestId('pdf-status')).toHaveText(/^Page \d of 2: the passage is highlighted$/)
  const hl = panel.locator('.textLayer .hl')
  expect(await hl.count()).toBeGreaterThan(0)
  await expect(hl.first()).toBeInViewport()
  await expect(panel.locator('canvas')).toBeVisible()
  await shot(page, 'sources-02-pdf')
  await panel.getByRole('button', { name: 'Close' }).click()
  await expect(open).toBeFocused()
  expect(errors()).toEqual([])
})
