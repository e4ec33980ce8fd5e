import { SIGNED_OUT } from '../auth/events'
import type {
  CollectionInfo,
  DocumentInfo,
  DocumentList,
  QueryRequest,
  QueryResponse,
  ReadyInfo,
} from './types'

/** Every failure the UI shows: the backend's {error, error_type}, or a network / timeout problem. */
export class ApiError extends Error {
  readonly status: number
  readonly type: string
  readonly retryAfter: number | null

  constructor(message: string, status: number, type: string, retryAfter: number | null = null) {
    super(message)
    this.name = 'ApiError'
    this.status = status
    this.type = type
    this.retryAfter = retryAfter
  }

  /** The backend could not be reached at all, or said its dependencies are down: worth retrying. */
  get retryable(): boolean {
    return this.status === 0 || this.status === 502 || this.status === 503 || this.status === 504
  }
}

export const UNREACHABLE = "Can't reach the backend. Check that it is running."

export function isAbort(err: unknown): boolean {
  return err instanceof DOMException && err.name === 'AbortError'
}

/** Turns a non-2xx response into an ApiError, reading the backend's error body when there is one. */
export async function errorFrom(res: Response): Promise<ApiError> {
  // The session ended (expired, revoked, user disabled): the sign-in gate takes over.
  if (res.status === 401) window.dispatchEvent(new Event(SIGNED_OUT))
  let message = `${res.status} ${res.statusText}`.trim()
  let type = 'http'
  try {
    const body: unknown = await res.json()
    if (body && typeof body === 'object') {
      const b = body as { error?: unknown; error_type?: unknown; detail?: unknown }
      if (typeof b.error === 'string') message = b.error
      else if (typeof b.detail === 'string') message = b.detail
      if (typeof b.error_type === 'string') type = b.error_type
    }
  } catch {
    // A proxy's HTML error page: keep the status line.
    if (res.status === 502 || res.status === 504) message = UNREACHABLE
  }
  const after = Number(res.headers.get('Retry-After'))
  return new ApiError(message, res.status, type, Number.isFinite(after) && after > 0 ? after : null)
}

/** fetch that throws ApiError for network failures and non-2xx answers (AbortError passes through). */
export async function request(path: string, init: RequestInit = {}): Promise<Response> {
  let res: Response
  try {
    res = await fetch(path, init)
  } catch (err) {
    if (isAbort(err)) throw err
    throw new ApiError(UNREACHABLE, 0, 'network')
  }
  if (!res.ok) throw await errorFrom(res)
  return res
}

/** A JSON call: the parsed body of a 2xx, else the ApiError of `request`. */
export async function json<T>(path: string, init: RequestInit = {}): Promise<T> {
  const res = await request(path, init)
  return (await res.json()) as T
}

const JSON_HEADERS = { 'Content-Type': 'application/json' }

/** The init of a call that sends `body` as JSON with `method`. */
export const send = (method: string, body: unknown): RequestInit => ({
  method,
  headers: JSON_HEADERS,
  body: JSON.stringify(body),
})

export function listDocuments(
  params: { collection?: string; limit?: number; offset?: number },
  signal?: AbortSignal,
): Promise<DocumentList> {
  const q = new URLSearchParams()
  if (params.collection) q.set('collection', params.collection)
  q.set('limit', String(params.limit ?? 100))
  q.set('offset', String(params.offset ?? 0))
  return json<DocumentList>(`/api/documents?${q}`, { signal })
}

export function getDocument(id: string, signal?: AbortSignal): Promise<DocumentInfo> {
  return json<DocumentInfo>(`/api/documents/${encodeURIComponent(id)}`, { signal })
}

export async function deleteDocument(id: string): Promise<void> {
  await request(`/api/documents/${encodeURIComponent(id)}`, { method: 'DELETE' })
}

/** Runs a failed document's job again from the upload the backend kept (no re-upload). */
export async function retryDocument(id: string): Promise<void> {
  await request(`/api/documents/${encodeURIComponent(id)}/retry`, { method: 'POST' })
}

export function listCollections(signal?: AbortSignal): Promise<CollectionInfo[]> {
  return json<CollectionInfo[]>('/api/collections', { signal })
}

export function createCollection(name: string): Promise<CollectionInfo> {
  return json<CollectionInfo>('/api/collections', send('POST', { name }))
}

export function query(body: QueryRequest, signal?: AbortSignal): Promise<QueryResponse> {
  return json<QueryResponse>('/api/query', { ...send('POST', body), signal })
}

/** /ready answers 503 with the same body when the query path is down: both are a status to show. */
export async function getReady(signal?: AbortSignal): Promise<ReadyInfo> {
  let res: Response
  try {
    res = await fetch('/ready', { signal, cache: 'no-store' })
  } catch (err) {
    if (isAbort(err)) throw err
    throw new ApiError(UNREACHABLE, 0, 'network')
  }
  if (res.ok || res.status === 503) {
    try {
      const body = (await res.json()) as ReadyInfo
      if (body && typeof body.status === 'string' && body.components) return body
    } catch {
      // fall through: not the backend answering
    }
  }
  throw res.ok ? new ApiError('Unexpected answer from /ready', res.status, 'http') : await errorFrom(res)
}

export const COLLECTION_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/

/** The document's parsed text, exactly as the backend split it: a passage is text[char_start:char_end]. */
export async function getDocumentText(id: string, signal?: AbortSignal): Promise<string> {
  return (await request(`/api/documents/${encodeURIComponent(id)}/text`, { signal })).text()
}

/** The original upload (inline for PDFs, a download otherwise). */
export const contentUrl = (id: string) => `/api/documents/${encodeURIComponent(id)}/content`

export async function getDocumentBytes(id: string, signal?: AbortSignal): Promise<ArrayBuffer> {
  return (await request(contentUrl(id), { signal })).arrayBuffer()
}
