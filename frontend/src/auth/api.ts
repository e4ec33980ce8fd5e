// Calls of sign-in, users, API keys and collection members (backend/rag_backend/api/routes/{auth,users,
// collections}.py). Shapes come from the generated OpenAPI types; errors are the page's one ApiError.
import { ApiError, UNREACHABLE, errorFrom, json, request, send } from '../api/client'
import type { components } from '../api/schema'

type Schemas = components['schemas']
export type Me = Schemas['Me']
export type AuthOptions = Schemas['AuthOptions']
export type Role = Me['role']
export type Scope = Me['scope']
export type User = Schemas['User']
export type Key = Schemas['Key']
export type NewKey = Schemas['NewKey']
export type Member = Schemas['Member']
export type Grant = Member['access']

export const getOptions = (signal?: AbortSignal) => json<AuthOptions>('/api/auth/options', { signal })

/** Who is signed in; null when nobody is (a 401, which here is an answer, not a session that ended). */
export async function getMe(signal?: AbortSignal): Promise<Me | null> {
  let res: Response
  try {
    res = await fetch('/api/auth/me', { signal, cache: 'no-store' })
  } catch {
    throw new ApiError(UNREACHABLE, 0, 'network')
  }
  if (res.status === 401) return null
  if (!res.ok) throw await errorFrom(res)
  return (await res.json()) as Me
}

/** Signs in with e-mail and password; the session is an HttpOnly cookie the page never reads. */
export async function login(email: string, password: string): Promise<void> {
  let res: Response
  try {
    res = await fetch('/api/auth/login', send('POST', { email, password }))
  } catch {
    throw new ApiError(UNREACHABLE, 0, 'network')
  }
  if (!res.ok) throw await errorFrom(res)
}

export async function logout(): Promise<void> {
  await request('/api/auth/logout', { method: 'POST' })
}

export const listUsers = (signal?: AbortSignal) => json<User[]>('/api/users', { signal })
export const createUser = (body: { email: string; role: Role; password?: string; name?: string }) =>
  json<User>('/api/users', send('POST', body))
export const updateUser = (email: string, body: { role?: Role; disabled?: boolean }) =>
  json<User>(`/api/users/${encodeURIComponent(email)}`, send('PATCH', body))

export const listKeys = (signal?: AbortSignal) => json<Key[]>('/api/keys', { signal })
export const createKey = (body: { name: string; scope: Scope; expires_at?: number | null }) =>
  json<NewKey>('/api/keys', send('POST', body))
export async function revokeKey(id: string): Promise<void> {
  await request(`/api/keys/${encodeURIComponent(id)}`, { method: 'DELETE' })
}

const members = (collection: string) => `/api/collections/${encodeURIComponent(collection)}/members`
export const listMembers = (collection: string, signal?: AbortSignal) =>
  json<Member[]>(members(collection), { signal })
export const setMember = (collection: string, email: string, access: Grant) =>
  json<Member>(members(collection), send('PUT', { email, access }))
export async function removeMember(collection: string, email: string): Promise<void> {
  await request(`${members(collection)}/${encodeURIComponent(email)}`, { method: 'DELETE' })
}

/** The message a person can act on, for any failure of these calls. */
export function reason(err: unknown): string {
  if (err instanceof ApiError) {
    if (err.status === 429) {
      const wait = err.retryAfter ? ` Try again in ${Math.ceil(err.retryAfter)} s.` : ' Try again later.'
      return `Too many failed sign-ins.${wait}`
    }
    return err.message
  }
  return err instanceof Error ? err.message : String(err)
}
