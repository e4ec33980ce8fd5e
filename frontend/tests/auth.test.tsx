import { render, screen, waitFor } from '@testing-library/react'
import userEvent from '@testing-library/user-event'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { listCollections } from '../src/api/client'
import { AuthGate } from '../src/auth/AuthGate'
import { canCreate, canManage, canWrite, useAuth, type Auth } from '../src/auth/context'
import { UserMenu } from '../src/auth/UserMenu'
import type { CollectionInfo } from '../src/api/types'
import { installFetch, json } from './fakes'

afterEach(() => {
  vi.unstubAllGlobals()
  window.history.replaceState(null, '', '/')
})

const USERS = { auth_mode: 'users', password: true, oidc: null }
const EDITOR = { email: 'e@example.com', name: 'Edith', role: 'editor', via: 'session', scope: 'write' }
const unauthorized = () => json({ error: 'sign in first', error_type: 'unauthorized' }, 401)

function Page() {
  const auth = useAuth()
  return (
    <>
      <p>the page ({auth.mode})</p>
      <UserMenu />
    </>
  )
}

describe('AuthGate', () => {
  it('shows the page as before, with no sign-in nor user menu, when the backend has no accounts', async () => {
    const { calls } = installFetch({ 'GET /api/auth/options': () => json({ ...USERS, auth_mode: 'none', password: false }) })
    render(<AuthGate><Page /></AuthGate>)
    expect(await screen.findByText('the page (none)')).toBeInTheDocument()
    expect(screen.queryByRole('heading', { name: 'Sign in' })).toBeNull()
    expect(screen.queryByRole('button', { expanded: false })).toBeNull()
    expect(calls.map((c) => c.path)).toEqual(['/api/auth/options'])
  })

  it('shows the page (and its offline banner) while the backend is unreachable, and the form once it asks for one', async () => {
    let up = false
    installFetch({
      'GET /api/auth/options': () => (up ? json(USERS) : Promise.reject(new TypeError('Failed to fetch'))),
      'GET /api/auth/me': unauthorized,
      'GET /api/collections': unauthorized,
    })
    render(<AuthGate><Page /></AuthGate>)
    expect(await screen.findByText('the page (none)')).toBeInTheDocument()
    up = true
    await expect(listCollections()).rejects.toMatchObject({ status: 401 })
    expect(await screen.findByRole('heading', { name: 'Sign in' })).toBeInTheDocument()
  })

  it('signs in: a wrong password, then throttling with its wait, then the page with who is signed in', async () => {
    let signedIn = false
    const answers = [
      () => json({ error: 'wrong e-mail or password', error_type: 'unauthorized' }, 401),
      () => json({ error: 'too many failed sign-ins: try again later', error_type: 'throttled' }, 429, { 'Retry-After': '42' }),
      () => {
        signedIn = true
        return new Response(null, { status: 204 })
      },
    ]
    const { calls } = installFetch({
      'GET /api/auth/options': () => json(USERS),
      'GET /api/auth/me': () => (signedIn ? json(EDITOR) : unauthorized()),
      'POST /api/auth/login': () => (answers.shift() as () => Response)(),
    })
    const user = userEvent.setup()
    render(<AuthGate><Page /></AuthGate>)
    const email = await screen.findByRole('textbox', { name: 'E-mail' })
    expect(email).toHaveFocus()
    expect(screen.queryByText(/the page/)).toBeNull()

    await user.type(email, 'e@example.com')
    const password = screen.getByLabelText('Password')
    await user.type(password, 'wrong{Enter}')
    expect(await screen.findByRole('alert')).toHaveTextContent('Wrong e-mail or password.')
    expect(password).toHaveFocus()
    expect(password).toHaveValue('')

    await user.type(password, 'again{Enter}')
    await waitFor(() =>
      expect(screen.getByRole('alert')).toHaveTextContent('Too many failed sign-ins. Try again in 42 s.'),
    )

    await user.type(password, 'right{Enter}')
    expect(await screen.findByText('the page (users)')).toBeInTheDocument()
    const menu = screen.getByRole('button', { name: /Edith/ })
    expect(menu).toHaveTextContent('Editor')
    expect(calls.filter((c) => c.path === '/api/auth/login').map((c) => c.body)).toEqual([
      { email: 'e@example.com', password: 'wrong' },
      { email: 'e@example.com', password: 'again' },
      { email: 'e@example.com', password: 'right' },
    ])

    await user.click(menu)
    expect(screen.getByText('e@example.com')).toBeInTheDocument()
    expect(screen.getByRole('button', { name: 'API keys and members' })).toBeInTheDocument()
  })

  it('offers the OIDC provider and shows why it refused a sign-in', async () => {
    window.history.replaceState(null, '', '/?auth_error=the%20provider%20refused%20the%20sign-in%3A%20access_denied')
    installFetch({
      'GET /api/auth/options': () => json({ ...USERS, oidc: { name: 'Keycloak', login_url: '/api/auth/oidc/login' } }),
      'GET /api/auth/me': unauthorized,
    })
    render(<AuthGate><Page /></AuthGate>)
    const link = await screen.findByRole('link', { name: 'Sign in with Keycloak' })
    expect(link).toHaveAttribute('href', '/api/auth/oidc/login')
    expect(screen.getByRole('alert')).toHaveTextContent('the provider refused the sign-in: access_denied')
    expect(window.location.search).toBe('')
  })

  it('returns to the form when a call answers 401 (session ended), and signs out', async () => {
    let session = true
    installFetch({
      'GET /api/auth/options': () => json(USERS),
      'GET /api/auth/me': () => (session ? json(EDITOR) : unauthorized()),
      'GET /api/collections': unauthorized,
      'POST /api/auth/logout': () => {
        session = false
        return new Response(null, { status: 204 })
      },
    })
    const user = userEvent.setup()
    const { unmount } = render(<AuthGate><Page /></AuthGate>)
    await screen.findByText('the page (users)')
    await expect(listCollections()).rejects.toMatchObject({ status: 401 })
    expect(await screen.findByRole('alert')).toHaveTextContent('Your session ended: sign in again.')
    unmount()

    session = true
    render(<AuthGate><Page /></AuthGate>)
    await user.click(await screen.findByRole('button', { name: /Edith/ }))
    await user.click(screen.getByRole('button', { name: 'Sign out' }))
    expect(await screen.findByRole('heading', { name: 'Sign in' })).toBeInTheDocument()
    expect(session).toBe(false)
  })
})

describe('what a role may do', () => {
  const info = (access: CollectionInfo['access']): CollectionInfo => ({
    name: 'c', embed_model: null, documents: 0, ready: 0, failed: 0, chunks: 0, version: 1, created_at: 0,
    owner: 'o@example.com', access,
  })
  const as = (scope: 'read' | 'write' | 'admin'): Auth => ({
    mode: 'users',
    me: { ...EDITOR, scope, role: scope === 'read' ? 'viewer' : scope === 'write' ? 'editor' : 'admin' } as Auth['me'],
    openAdmin: () => undefined,
    signOut: async () => undefined,
  })

  it('viewers change nothing, editors what they own or may write, admins everything', () => {
    expect(canCreate(as('read'))).toBe(false)
    expect(canWrite(as('read'), info('read'))).toBe(false)
    expect(canWrite(as('read'), undefined)).toBe(false)
    expect(canWrite(as('write'), info('read'))).toBe(false)
    expect(canWrite(as('write'), info('write'))).toBe(true)
    expect(canWrite(as('write'), undefined)).toBe(true) // a new collection: the first upload creates it
    expect(canManage(as('write'), info('write'))).toBe(false)
    expect(canManage(as('write'), info('owner'))).toBe(true)
    expect(canManage(as('read'), info('owner'))).toBe(false) // a viewer key of an owner
    expect(canManage(as('admin'), info('admin'))).toBe(true)
    const none: Auth = { ...as('read'), mode: 'none', me: null }
    expect(canWrite(none, info('read'))).toBe(true)
  })
})
