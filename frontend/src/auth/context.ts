// What the rest of the page reads about the signed-in user: who it is and what it may do. Without a provider
// (AUTH_MODE=none, unit tests of the page) everything is allowed, as before accounts existed; the backend
// enforces the same rules either way, this only hides what would be refused.
import { createContext, useContext } from 'react'
import type { CollectionInfo } from '../api/types'
import type { Me } from './api'

export interface Auth {
  /** 'none': no accounts, no sign-in shown. */
  mode: 'none' | 'users'
  me: Me | null
  /**
   * Admin view: users (admins), own keys (everyone signed in), members of owned collections. Focus goes back to
   * `returnTo` when it closes.
   */
  openAdmin: (returnTo?: HTMLElement | null) => void
  signOut: () => Promise<void>
}

export const AuthContext = createContext<Auth>({
  mode: 'none',
  me: null,
  openAdmin: () => undefined,
  signOut: async () => undefined,
})

export const useAuth = (): Auth => useContext(AuthContext)

const scopeOf = (auth: Auth) => (auth.mode === 'none' ? 'admin' : (auth.me?.scope ?? 'read'))

export const isAdmin = (auth: Auth): boolean => scopeOf(auth) === 'admin'

/** May create collections (editors and admins). */
export const canCreate = (auth: Auth): boolean => scopeOf(auth) !== 'read'

/**
 * May upload to, and delete or retry documents of, this collection. One not listed yet is created by its first
 * upload (the uploader owns it): editors and admins may.
 */
export function canWrite(auth: Auth, info: CollectionInfo | undefined): boolean {
  if (!canCreate(auth)) return false
  if (!info || auth.mode === 'none') return true
  return info.access !== 'read'
}

/** May grant members and delete the collection: its owner or an admin. */
export function canManage(auth: Auth, info: CollectionInfo | undefined): boolean {
  if (auth.mode === 'none') return false
  if (!info) return false
  return info.access === 'admin' || (info.access === 'owner' && canCreate(auth))
}
