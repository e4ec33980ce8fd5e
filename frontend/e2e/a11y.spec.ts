// Accessibility of the page in each state a person meets, checked by axe-core (WCAG 2.0/2.1 A and AA) against the
// real stack, plus what axe cannot see: the focus ring's contrast and its survival in forced-colors mode.
import AxeBuilder from '@axe-core/playwright'
import { expect, test, type Page } from '@playwright/test'
import { ask, openOn, seed, solarMd, volcanoPdf, watchErrors } from './helpers'

const TAGS = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']

/** Zero violations, each one reported with its rule, impact and the elements that break it. */
async function expectNoViolations(page: Page, state: string): Promise<void> {
  const { violations } = await new AxeBuilder({ page }).withTags(TAGS).analyze()
  const report = violations.map((v) => ({
    rule: v.id,
    impact: v.impact,
    help: v.help,
    nodes: v.nodes.slice(0, 5).map((n) => `${n.target.join(' ')}: ${n.failureSummary}`),
  }))
  expect(report, `axe violations in state "${state}"`).toEqual([])
}

/** WCAG relative luminance contrast between two CSS rgb() colours. */
function contrast(a: string, b: string): number {
  const lum = (c: string) => {
    const [r, g, bl] = (c.match(/[\d.]+/g) ?? []).slice(0, 3).map((v) => {
      const s = Number(v) / 255
      return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4
    })
    return 0.2126 * r + 0.7152 * g + 0.0722 * bl
  }
  const [hi, lo] = [lum(a), lum(b)].sort((x, y) => y - x)
  return (hi + 0.05) / (lo + 0.05)
}

/** Tab until `name`'s element has keyboard focus (focus-visible), at most 60 presses. */
async function tabTo(page: Page, selector: string): Promise<void> {
  for (let i = 0; i < 60; i++) {
    await page.keyboard.press('Tab')
    if (await page.evaluate((s) => document.activeElement?.matches(s) ?? false, selector)) return
  }
  throw new Error(`Tab never reached ${selector}`)
}

/** The focused element's outline (or, for the switch, its track's) and the colour of the surface behind it. */
async function focusRing(page: Page) {
  return page.evaluate(() => {
    const el = document.activeElement as HTMLElement
    const ringOn = el.matches('.switch input') ? (el.nextElementSibling as HTMLElement) : el
    const style = getComputedStyle(ringOn)
    let bg = 'rgba(0, 0, 0, 0)'
    for (let n: HTMLElement | null = ringOn.parentElement; n; n = n.parentElement) {
      const c = getComputedStyle(n).backgroundColor
      if (!/rgba\(.*, 0\)$/.test(c) && c !== 'transparent') {
        bg = c
        break
      }
    }
    return { style: style.outlineStyle, width: parseFloat(style.outlineWidth), color: style.outlineColor, bg }
  })
}

test('axe: empty, uploading, documents ready, answered, source panel, narrow, dark', async ({ page }) => {
  const errors = watchErrors(page)
  await openOn(page, 'e2e-a11y')
  await expect(page.getByTestId('service-status')).toHaveAttribute('data-health', 'ready')
  await expect(page.getByText('Upload a document first')).toBeVisible()
  await expectNoViolations(page, 'empty')

  // Uploading: the upload request is held back so the progress row stays on screen while axe looks at it.
  let release: () => void = () => {}
  const held = new Promise<void>((r) => (release = r))
  await page.route('**/api/documents', async (route) => {
    if (route.request().method() === 'POST') await held
    await route.continue()
  })
  await page.getByTestId('file-input').setInputFiles([solarMd(), volcanoPdf()])
  await expect(page.getByTestId('upload-task')).toHaveCount(2)
  await expectNoViolations(page, 'uploading')
  release()
  await expect(page.getByTestId('document')).toHaveCount(2, { timeout: 90_000 })
  await expect(page.getByTestId('doc-status')).toHaveText(['Ready', 'Ready'], { timeout: 90_000 })
  await page.unrouteAll()
  await expectNoViolations(page, 'documents ready')

  const turn = await ask(page, 'How do photovoltaic cells turn sunlight into electricity?')
  await expect(turn.getByTestId('answer')).toBeVisible()
  // The answer's citations are one Tab stop: the first is tabbable, the others are reached with the arrow keys.
  const tabbable = await turn.getByTestId('citation').evaluateAll((els) => els.map((e) => (e as HTMLElement).tabIndex))
  expect(tabbable.filter((t) => t === 0)).toHaveLength(1)
  await expectNoViolations(page, 'answered')

  await turn.getByTestId('citation').first().click()
  const panel = page.getByTestId('source-panel')
  await expect(panel.getByTestId('source-mark')).toBeVisible()
  await expectNoViolations(page, 'source panel (text)')
  await page.keyboard.press('Escape')

  const pdfTurn = await ask(page, 'What happens during an explosive volcanic eruption?')
  await pdfTurn.getByRole('button', { name: /^Open volcanoes\.pdf/ }).first().click()
  await expect(panel.getByTestId('pdf-status')).toHaveText(/the passage is/)
  await expectNoViolations(page, 'source panel (PDF)')
  await page.keyboard.press('Escape')

  // The conversation list, when the backend keeps conversations.
  const chats = page.getByTestId('conversations')
  if (await chats.count()) {
    await expect(chats.getByTestId('conversation').first()).toBeVisible()
    await expectNoViolations(page, 'conversation list')
  }

  await page.emulateMedia({ colorScheme: 'dark' })
  await page.waitForTimeout(300) // colour transitions (0.15 s) settle: axe measures the final colours
  await expectNoViolations(page, 'dark, answered')
  // `turn` is a lazy locator (the last turn): the first question's turn is the text one.
  await page.getByTestId('turn').first().getByTestId('citation').first().click()
  await expect(panel.getByTestId('source-mark')).toBeVisible()
  await expectNoViolations(page, 'dark, source panel')
  await page.keyboard.press('Escape')

  await page.emulateMedia({ colorScheme: 'light' })
  await page.setViewportSize({ width: 400, height: 800 })
  await expectNoViolations(page, 'narrow, ask pane')
  await page.getByRole('button', { name: 'Documents', exact: true }).click()
  await expectNoViolations(page, 'narrow, documents pane')
  if (await page.getByRole('button', { name: 'Chats', exact: true }).count()) {
    await page.getByRole('button', { name: 'Chats', exact: true }).click()
    await expectNoViolations(page, 'narrow, chats pane')
  }
  expect(errors()).toEqual([])
})

test('the focus ring: an outline of at least 3:1, in light, dark and forced-colors mode', async ({ page }) => {
  await seed(page.request, 'e2e-focus', [solarMd()])
  await openOn(page, 'e2e-focus')
  await expect(page.getByText('1 document is ready')).toBeVisible()
  for (const scheme of ['light', 'dark'] as const) {
    await page.emulateMedia({ colorScheme: scheme, forcedColors: 'none' })
    for (const target of ['.switch input', '.ask select', '.sidebar button']) {
      await page.locator('body').click({ position: { x: 1, y: 1 } })
      await tabTo(page, target)
      const ring = await focusRing(page)
      expect(ring.style, `${scheme} ${target}`).toBe('solid')
      expect(ring.width, `${scheme} ${target}`).toBeGreaterThanOrEqual(2)
      expect(contrast(ring.color, ring.bg), `${scheme} ${target}: ${ring.color} on ${ring.bg}`).toBeGreaterThanOrEqual(3)
    }
  }

  // Forced colors: the system's palette replaces ours; the outline and the switch must still be drawn.
  await page.emulateMedia({ colorScheme: 'light', forcedColors: 'active' })
  await page.locator('body').click({ position: { x: 1, y: 1 } })
  await tabTo(page, '.switch input')
  const ring = await focusRing(page)
  expect(ring.style).toBe('solid')
  expect(ring.width).toBeGreaterThanOrEqual(2)
  const track = page.locator('.switch .track')
  await expect(track).toBeVisible()
  const drawn = await track.evaluate((el) => {
    const s = getComputedStyle(el)
    const knob = getComputedStyle(el, '::after')
    return { border: parseFloat(s.borderTopWidth), borderColor: s.borderTopColor, bg: s.backgroundColor, knob: knob.backgroundColor }
  })
  expect(drawn.border).toBeGreaterThanOrEqual(1)
  expect(drawn.knob).not.toBe(drawn.bg) // the knob stands out from its track
  expect(contrast(drawn.borderColor, 'rgb(255, 255, 255)')).toBeGreaterThanOrEqual(3)
  await page.locator('body').click({ position: { x: 1, y: 1 } })
  await tabTo(page, '.ask select')
  expect((await focusRing(page)).style).toBe('solid')
})
