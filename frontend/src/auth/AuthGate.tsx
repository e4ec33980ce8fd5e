import { useCallback, useEffect, useMemo, useRef, useState, type ReactNode } from 'react'
import { ApiError } from '../api/client'
import { AdminDialog } from '../components/admin/AdminDialog'
import { getMe, getOptions, logout, type AuthOptions, type Me } from './api'
import { AuthContext, type Auth } from './context'
import { SignIn } from './SignIn'
import { SIGNED_OUT } from './events'
import './auth.css'

type State =
  | { phase: 'loading' }
  /** No accounts (AUTH_MODE=none), or not known yet: the backend did not answer (unsure), and the page shows its
   * own offline banner; the first 401 once it is back brings the sign-in form. */
  | { phase: 'open'; unsure: boolean }
  | { phase: 'signin'; options: AuthOptions; notice: string | null }
  | { phase: 'in'; options: AuthOptions; me: Me }

/** A refused OIDC sign-in comes back as ?auth_error=...: shown on the form, then dropped from the address. */
function takeAuthError(): string | null {
  const url = new URL(window.location.href)
  const error = url.searchParams.get('auth_error')
  if (error === null) return null
  url.searchParams.delete('auth_error')
  window.history.replaceState(null, '', url.pathname + url.search + url.hash)
  return error || 'The sign-in was refused.'
}

/** Whether this backend has accounts, and who is signed in. */
async function resolve(notice: string | null): Promise<State> {
  try {
    const options = await getOptions()
    if (options.auth_mode === 'none') return { phase: 'open', unsure: false }
    const me = await getMe()
    return me ? { phase: 'in', options, me } : { phase: 'signin', options, notice }
  } catch {
    // Unreachable, down, or a backend from before accounts (404): the page as it always was, which says so.
    return { phase: 'open', unsure: true }
  }
}

/**
 * Renders the page once it is known who may use it: as today with AUTH_MODE=none, the sign-in form when the
 * backend wants a user and none is signed in (or a session ends: any 401 of the page's calls), else the page with
 * the user in context.
 */
export function AuthGate({ children }: { children: ReactNode }) {
  const [state, setState] = useState<State>({ phase: 'loading' })
  const [admin, setAdmin] = useState(false)
  const returnTo = useRef<HTMLElement | null>(null)
  const unsure = useRef(false)
  useEffect(() => {
    unsure.current = state.phase === 'open' && state.unsure
  }, [state])

  const check = useCallback(async (notice: string | null = null) => setState(await resolve(notice)), [])

  useEffect(() => {
    void resolve(takeAuthError()).then(setState)
  }, [])

  // Any call the page makes that answers 401 means the session is gone (expired, revoked, user disabled).
  useEffect(() => {
    const onSignedOut = () => {
      setState((s) =>
        s.phase === 'in' ? { phase: 'signin', options: s.options, notice: 'Your session ended: sign in again.' } : s,
      )
      if (unsure.current) {
        unsure.current = false // once: the check itself may see 401s
        void resolve(null).then(setState)
      }
    }
    window.addEventListener(SIGNED_OUT, onSignedOut)
    return () => window.removeEventListener(SIGNED_OUT, onSignedOut)
  }, [])

  const signOut = useCallback(async () => {
    try {
      await logout()
    } catch (err) {
      // A session that is already gone is signed out; anything else is worth saying.
      if (!(err instanceof ApiError && err.status === 401)) throw err
    }
    setAdmin(false)
    await check()
  }, [check])

  const auth = useMemo<Auth>(
    () => ({
      mode: state.phase === 'in' ? 'users' : 'none',
      me: state.phase === 'in' ? state.me : null,
      openAdmin: (from) => {
        returnTo.current = from ?? null
        setAdmin(true)
      },
      signOut,
    }),
    [state, signOut],
  )

  if (state.phase === 'loading') {
    return (
      <p className="auth-loading" role="status">
        Loading…
      </p>
    )
  }
  if (state.phase === 'signin') {
    return <SignIn options={state.options} notice={state.notice} onSignedIn={() => void check()} />
  }
  return (
    <AuthContext.Provider value={auth}>
      {children}
      {admin && state.phase === 'in' && (
        <AdminDialog
          onClose={() => {
            setAdmin(false)
            // The menu item that opened it is gone: back to the menu's button, not to the top of the page.
            setTimeout(() => returnTo.current?.focus())
          }}
        />
      )}
    </AuthContext.Provider>
  )
}
