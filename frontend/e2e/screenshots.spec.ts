// The pictures in frontend/README.md, taken from the real stack: `npm run screenshots` (SCREENSHOTS=1) writes
// docs/screenshots/*.png. Skipped in ordinary runs, so a test run never rewrites committed files.
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { expect, test } from '@playwright/test'
import { ask, openOn, seed, solarMd, volcanoPdf } from './helpers'

const OUT = join(dirname(fileURLToPath(import.meta.url)), '..', 'docs', 'screenshots')

test.skip(!process.env.SCREENSHOTS, 'set SCREENSHOTS=1 (npm run screenshots) to refresh docs/screenshots')

test('screenshots for the README: light, dark, narrow, source panel', async ({ page }) => {
  await seed(page.request, 'handbook', [solarMd(), volcanoPdf()])
  await openOn(page, 'handbook')
  await expect(page.getByText('2 documents are ready')).toBeVisible()
  await ask(page, 'How do photovoltaic cells turn sunlight into electricity?')
  const turn = await ask(page, 'and why does heat lower their output?')
  await page.locator('body').click({ position: { x: 1, y: 1 } })
  await page.screenshot({ path: join(OUT, 'light.png') })

  await page.emulateMedia({ colorScheme: 'dark' })
  await page.waitForTimeout(500) // the colour transitions (0.15 s) end before the picture
  await page.screenshot({ path: join(OUT, 'dark.png') })
  await page.emulateMedia({ colorScheme: 'light' })

  await turn.getByTestId('citation').first().click()
  await expect(page.getByTestId('source-mark')).toBeInViewport()
  await page.screenshot({ path: join(OUT, 'source-text.png') })
  await page.keyboard.press('Escape')

  const pdf = await ask(page, 'What happens during an explosive volcanic eruption?')
  await pdf.getByRole('button', { name: /^Open volcanoes\.pdf/ }).first().click()
  await expect(page.getByTestId('pdf-status')).toHaveText(/highlighted/)
  await page.screenshot({ path: join(OUT, 'source-pdf.png') })
  await page.keyboard.press('Escape')

  await page.setViewportSize({ width: 400, height: 800 })
  await page.getByRole('button', { name: 'Ask', exact: true }).click()
  await pdf.scrollIntoViewIfNeeded()
  await page.screenshot({ path: join(OUT, 'narrow.png') })
})
