// Accounts in the page, against a backend with AUTH_MODE=users (auth-stack.ts): the sign-in form and its errors,
// the admin view (users, keys, members), an editor who uploads and asks, a viewer who may only read, sign-out;
// axe-core finds no WCAG 2.1 A/AA violation on the form nor in the admin view.
import AxeBuilder from '@axe-core/playwright'
import { expect, test, type Browser, type Page } from '@playwright/test'
import { MAX_FAILURES, OIDC_NAME, startAuthStack, type AuthStack } from './auth-stack'
import { shot, solarMd, watchErrors } from './helpers'

test.describe.configure({ mode: 'serial' })
// A stack given by E2E_BASE_URL has no ml-api URL to start a second backend on.
test.skip(!process.env.E2E_ML_URL, 'starts a backend of its own on the ml-api of global-setup.ts (not with E2E_BASE_URL)')

let stack: AuthStack
const editor = { email: 'edith@example.com', name: 'Edith Editor', password: 'edith-password-1' }
const viewer = { email: 'victor@example.com', name: 'Victor Viewer', password: 'victor-password-1' }
const COLLECTION = 'e2e-auth'

test.beforeAll(async () => {
  stack = await startAuthStack()
})

test.afterAll(async () => {
  await stack?.close()
})

/** Zero violations of WCAG 2.0/2.1 A and AA, listed by rule and element when there are some. */
async function expectAccessible(page: Page, include?: string) {
  let axe = new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'])
  if (include) axe = axe.include(include)
  const { violations } = await axe.analyze()
  expect(violations.map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`)).toEqual([])
}

async function signIn(page: Page, who: { email: string; password: string }) {
  await page.goto(stack.page)
  await page.getByRole('textbox', { name: 'E-mail' }).fill(who.email)
  await page.getByLabel('Password', { exact: true }).fill(who.password)
  await page.getByRole('button', { name: 'Sign in', exact: true }).click()
  await expect(page.locator('.user-button')).toBeVisible()
}

async function newPage(browser: Browser) {
  const context = await browser.newContext()
  return context.newPage()
}

async function openAdmin(page: Page, name: RegExp) {
  await page.locator('.user-button').click()
  await page.getByRole('button', { name }).click()
  const dialog = page.getByRole('dialog')
  await expect(dialog).toBeVisible()
  return dialog
}

test('the sign-in form: accessible, a wrong password and too many tries say so', async ({ page }) => {
  const errors = watchErrors(page)
  await page.goto(stack.page)
  await expect(page.getByRole('heading', { name: 'Sign in' })).toBeVisible()
  await expect(page.getByRole('textbox', { name: 'E-mail' })).toBeFocused()
  // Nothing of the page behind it: no upload, no question box.
  await expect(page.getByRole('textbox', { name: 'Question' })).toHaveCount(0)
  await expectAccessible(page)
  await shot(page, 'auth-01-sign-in')

  await page.getByRole('textbox', { name: 'E-mail' }).fill(stack.admin.email)
  await page.getByLabel('Password', { exact: true }).fill('not-the-password')
  await page.getByRole('button', { name: 'Sign in', exact: true }).click()
  await expect(page.getByRole('alert')).toHaveText('Wrong e-mail or password.')
  await expect(page.getByLabel('Password', { exact: true })).toBeFocused()
  await expect(page.getByLabel('Password', { exact: true })).toHaveValue('')
  await expectAccessible(page)
  await shot(page, 'auth-02-wrong-password')
  await page.emulateMedia({ colorScheme: 'dark' })
  await expectAccessible(page)
  await page.emulateMedia({ colorScheme: 'light' })

  // Another account past LOGIN_MAX_FAILURES: throttled, with the wait the backend gave.
  for (let i = 0; i <= MAX_FAILURES; i++) {
    await page.getByRole('textbox', { name: 'E-mail' }).fill('nobody@example.com')
    await page.getByLabel('Password', { exact: true }).fill(`guess-${i}`)
    await page.getByRole('button', { name: 'Sign in', exact: true }).click()
    await expect(page.getByRole('button', { name: 'Sign in', exact: true })).toBeEnabled()
  }
  await expect(page.getByRole('alert')).toHaveText(/^Too many failed sign-ins\. Try again in \d+ s\.$/)
  expect(errors().filter((e) => !/401|429/.test(e))).toEqual([])
})

test('Sign in with the OIDC provider: refused there, then signed in with the role its groups map to', async ({
  page,
}) => {
  const errors = watchErrors(page)
  await page.goto(stack.page)
  const sso = page.getByRole('link', { name: `Sign in with ${OIDC_NAME}` })
  await sso.click()
  await page.getByRole('button', { name: 'Deny' }).click()
  // Back on the page, which says why and drops the reason from the address.
  await expect(page.getByRole('alert')).toContainText('the provider refused the sign-in: access_denied')
  await expect(page).toHaveURL(`${stack.page}/`)

  await sso.click()
  await page.getByRole('button', { name: stack.oidcUser.sub }).click()
  const menu = page.locator('.user-button')
  await expect(menu).toContainText(stack.oidcUser.name)
  await expect(menu).toContainText('Editor')
  await menu.click()
  await expect(page.getByText(stack.oidcUser.email)).toBeVisible()
  await page.getByRole('button', { name: 'Sign out' }).click()
  await expect(sso).toBeVisible()
  expect(errors().filter((e) => !/401/.test(e))).toEqual([])
})

test('an admin signs in, adds an editor and a viewer, makes and revokes a key', async ({ page, context }) => {
  const errors = watchErrors(page)
  await context.grantPermissions(['clipboard-read', 'clipboard-write'])
  await signIn(page, stack.admin)
  const menu = page.locator('.user-button')
  await expect(menu).toContainText(stack.admin.email)
  await expect(menu).toContainText('Admin')

  const dialog = await openAdmin(page, /^Admin: users, keys, members$/)
  await expect(dialog.getByRole('heading', { name: 'Administration' })).toBeVisible()
  await expect(dialog.getByRole('tab', { name: 'Users' })).toHaveAttribute('aria-selected', 'true')
  // The first admin, and the user the OIDC sign-in created.
  await expect(dialog.getByTestId('user-row')).toHaveCount(2)
  await expect(dialog.getByTestId('user-row').filter({ hasText: stack.oidcUser.email })).toContainText('(SSO)')
  for (const [who, role] of [
    [editor, 'editor'],
    [viewer, 'viewer'],
  ] as const) {
    const form = dialog.getByRole('form', { name: 'Add a user' })
    await form.getByLabel('E-mail').fill(who.email)
    await form.getByLabel('Name').fill(who.name)
    await form.getByLabel('Role').selectOption(role)
    await form.getByLabel('Password').fill(who.password)
    await form.getByRole('button', { name: 'Add user' }).click()
    await expect(dialog.getByTestId('user-row').filter({ hasText: who.email })).toBeVisible()
  }
  await expect(dialog.getByRole('combobox', { name: `Role of ${editor.email}` })).toHaveValue('editor')
  // One's own role and account are not offered for change.
  await expect(dialog.getByRole('combobox', { name: `Role of ${stack.admin.email}` })).toBeDisabled()
  await expectAccessible(page, '.admin-dialog')
  await shot(page, 'auth-03-admin-users')

  // Disable and enable again: the row says so each time.
  const row = dialog.getByTestId('user-row').filter({ hasText: viewer.email })
  await row.getByRole('button', { name: `Disable ${viewer.email}` }).click()
  await expect(row).toContainText('Disabled')
  await row.getByRole('button', { name: `Enable ${viewer.email}` }).click()
  await expect(row).toContainText('Active')

  // A key: its token shown once, copied, then revoked.
  await dialog.getByRole('tab', { name: 'Users' }).press('ArrowRight')
  await expect(dialog.getByRole('tab', { name: 'API keys' })).toBeFocused()
  await expect(dialog.getByRole('tab', { name: 'API keys' })).toHaveAttribute('aria-selected', 'true')
  const keyForm = dialog.getByRole('form', { name: 'Create an API key' })
  await keyForm.getByLabel('Name').fill('ci')
  await keyForm.getByLabel('Scope').selectOption('write')
  await keyForm.getByLabel('Expires').selectOption({ label: '30 days' })
  await keyForm.getByRole('button', { name: 'Create key' }).click()
  const token = dialog.getByLabel('Token of ci')
  await expect(token).toBeFocused()
  const value = await token.inputValue()
  expect(value.length).toBeGreaterThan(20)
  await dialog.getByRole('button', { name: 'Copy' }).click()
  await expect(dialog.getByText('Copied to the clipboard.')).toBeVisible()
  expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(value)
  await expectAccessible(page, '.admin-dialog')
  await shot(page, 'auth-04-admin-key-created')
  // The key works from outside, as a write key of this admin.
  const me = await page.request.get(`${stack.backend}/api/auth/me`, { headers: { Authorization: `Bearer ${value}` } })
  expect(await me.json()).toMatchObject({ email: stack.admin.email, via: 'key', scope: 'write' })
  await dialog.getByRole('button', { name: 'Done' }).click()
  await expect(token).toHaveCount(0)

  const keyRow = dialog.getByTestId('key-row').filter({ hasText: 'ci' })
  await expect(keyRow).toContainText('write')
  await keyRow.getByRole('button', { name: 'Revoke key ci' }).click()
  const confirm = page.getByRole('dialog', { name: 'Revoke the key ci?' })
  await confirm.getByRole('button', { name: 'Revoke' }).click()
  await expect(dialog.getByTestId('key-row')).toHaveCount(0)
  const refused = await page.request.get(`${stack.backend}/api/auth/me`, {
    headers: { Authorization: `Bearer ${value}` },
  })
  expect(refused.status()).toBe(401)

  await dialog.getByRole('tab', { name: 'Collection members' }).click()
  await expectAccessible(page, '.admin-dialog')
  await dialog.getByRole('button', { name: 'Close' }).click()
  await expect(dialog).toBeHidden()
  await expect(menu).toBeFocused()
  expect(errors()).toEqual([])
})

test('an editor uploads a document, asks with a cited answer and shares the collection', async ({ browser }) => {
  const page = await newPage(browser)
  const errors = watchErrors(page)
  await signIn(page, editor)
  await expect(page.locator('.user-button')).toContainText(editor.name)
  await expect(page.locator('.user-button')).toContainText('Editor')

  await page.getByLabel('Collection', { exact: true }).selectOption({ label: '+ New collection…' })
  await page.getByRole('textbox', { name: 'New collection' }).fill(COLLECTION)
  await page.getByRole('button', { name: 'Create' }).click()
  await expect(page.getByLabel('Collection', { exact: true })).toHaveValue(COLLECTION)

  const chooser = page.waitForEvent('filechooser')
  await page.getByRole('button', { name: 'choose files' }).click()
  await (await chooser).setFiles([solarMd()])
  await expect(page.getByTestId('upload-task').locator('.task-stage')).toHaveText('Ready', { timeout: 90_000 })

  const box = page.getByRole('textbox', { name: 'Question' })
  await box.fill('How do photovoltaic cells turn sunlight into electricity?')
  await box.press('Enter')
  const turn = page.getByTestId('turn').last()
  await expect(turn.getByTestId('turn-meta')).toBeVisible({ timeout: 60_000 })
  await expect(turn.getByTestId('answer')).toBeVisible()
  await expect(turn.getByTestId('citation').first()).toHaveAttribute('aria-label', /^Source 1: solar-cells\.md/)
  await shot(page, 'auth-05-editor-answer')

  // The owner shares it with the viewer, read only.
  const dialog = await openAdmin(page, /^API keys and members$/)
  await expect(dialog.getByRole('tab', { name: 'Users' })).toHaveCount(0)
  await dialog.getByRole('tab', { name: 'Collection members' }).click()
  await expect(dialog.getByLabel('Collection', { exact: true })).toHaveValue(COLLECTION)
  const grant = dialog.getByRole('form', { name: `Grant access to ${COLLECTION}` })
  await grant.getByLabel("User's e-mail").fill(viewer.email)
  await grant.getByLabel('Access').selectOption('read')
  await grant.getByRole('button', { name: 'Grant' }).click()
  await expect(dialog.getByTestId('member-row').filter({ hasText: viewer.email })).toContainText('read')
  await expectAccessible(page, '.admin-dialog')
  await shot(page, 'auth-06-editor-members')
  // An e-mail nobody has: the backend's reason.
  await grant.getByLabel("User's e-mail").fill('ghost@example.com')
  await grant.getByRole('button', { name: 'Grant' }).click()
  await expect(grant.getByRole('alert')).toContainText('no user with e-mail ghost@example.com')
  await page.keyboard.press('Escape')
  await expect(dialog).toBeHidden()
  expect(errors().filter((e) => !/404/.test(e))).toEqual([])
  await page.context().close()
})

test('a viewer reads and asks but sees no upload nor delete; signing out returns to the form', async ({ browser }) => {
  const page = await newPage(browser)
  const errors = watchErrors(page)
  await page.addInitScript((name) => localStorage.setItem('rag.collection', JSON.stringify(name)), COLLECTION)
  await signIn(page, viewer)
  await expect(page.locator('.user-button')).toContainText('Viewer')
  await expect(page.getByLabel('Collection', { exact: true })).toHaveValue(COLLECTION)
  const doc = page.locator('[data-testid="document"][data-filename="solar-cells.md"]')
  await expect(doc.getByTestId('doc-status')).toHaveText('Ready')
  await expect(page.getByTestId('dropzone')).toHaveCount(0)
  await expect(page.getByRole('button', { name: 'choose files' })).toHaveCount(0)
  await expect(page.getByText(`You can read and ask about ${COLLECTION}, but not change it.`)).toBeVisible()
  await expect(doc.getByRole('button', { name: /^Delete/ })).toHaveCount(0)
  await expect(page.getByRole('option', { name: '+ New collection…' })).toHaveCount(0)

  const box = page.getByRole('textbox', { name: 'Question' })
  await box.fill('Why do installers leave an air gap behind solar panels?')
  await box.press('Enter')
  await expect(page.getByTestId('turn').last().getByTestId('citation').first()).toBeVisible({ timeout: 60_000 })
  await shot(page, 'auth-07-viewer')
  // A phone's width: the user menu (avatar and role) still fits the header.
  await page.setViewportSize({ width: 400, height: 800 })
  await expect(page.locator('.user-button')).toBeInViewport()
  const wide = await page.evaluate(() =>
    Array.from(document.querySelectorAll('body *'))
      .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 0.5)
      .map((e) => `${e.tagName}.${e.className} ${Math.round(e.getBoundingClientRect().right)}`),
  )
  expect(wide).toEqual([])
  expect(await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)).toBeLessThanOrEqual(0)
  await shot(page, 'auth-08-viewer-narrow')

  await page.locator('.user-button').click()
  await page.getByRole('button', { name: 'Sign out' }).click()
  await expect(page.getByRole('heading', { name: 'Sign in' })).toBeVisible()
  // The session is over on the server too.
  expect((await page.request.get(`${stack.page}/api/auth/me`)).status()).toBe(401)
  await page.reload()
  await expect(page.getByRole('heading', { name: 'Sign in' })).toBeVisible()
  expect(errors().filter((e) => !/401/.test(e))).toEqual([])
  await page.context().close()
})
