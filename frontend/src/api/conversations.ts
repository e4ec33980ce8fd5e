// The backend's saved conversations (POST/GET/PATCH/DELETE /api/conversations) and answer feedback. Shapes are
// the ones issue 23 documents; a backend without these routes answers 404/405, and the page then keeps its
// conversation in memory only (`ConversationsUnavailable`).
import { ApiError, request } from './client'
import type { Citation, QueryResult } from './types'

export interface ConversationSummary {
  id: string
  title: string | null
  created_at?: number | string
  updated_at?: number | string
}

export interface Feedback {
  rating: 1 | -1
  comment?: string | null
}

export interface Message {
  id: string
  role: 'user' | 'assistant'
  content: string
  search_query?: string | null
  citations?: Citation[] | null
  results?: QueryResult[] | null
  created_at?: number | string
  feedback?: Feedback | null
  /** Some backends keep the rating flat on the message instead of in `feedback`. */
  rating?: 1 | -1 | null
  comment?: string | null
}

export interface Conversation extends ConversationSummary {
  messages: Message[]
}

const JSON_HEADERS = { 'Content-Type': 'application/json' }
const path = (id: string) => `/api/conversations/${encodeURIComponent(id)}`

/** True for the answer of a backend that has no conversation routes (older, or built without them). */
export function unsupported(err: unknown): boolean {
  return err instanceof ApiError && (err.status === 404 || err.status === 405)
}

async function json<T>(url: string, init: RequestInit = {}): Promise<T> {
  return (await (await request(url, init)).json()) as T
}

export async function listConversations(signal?: AbortSignal): Promise<ConversationSummary[]> {
  const body = await json<ConversationSummary[] | { conversations: ConversationSummary[] }>('/api/conversations', {
    signal,
  })
  return Array.isArray(body) ? body : body.conversations
}

export function createConversation(title?: string): Promise<ConversationSummary> {
  return json<ConversationSummary>('/api/conversations', {
    method: 'POST',
    headers: JSON_HEADERS,
    body: JSON.stringify(title ? { title } : {}),
  })
}

export function getConversation(id: string, signal?: AbortSignal): Promise<Conversation> {
  return json<Conversation>(path(id), { signal })
}

export function renameConversation(id: string, title: string): Promise<ConversationSummary> {
  return json<ConversationSummary>(path(id), {
    method: 'PATCH',
    headers: JSON_HEADERS,
    body: JSON.stringify({ title }),
  })
}

export async function deleteConversation(id: string): Promise<void> {
  await request(path(id), { method: 'DELETE' })
}

export async function sendFeedback(conversationId: string, messageId: string, feedback: Feedback): Promise<void> {
  await request(`${path(conversationId)}/messages/${encodeURIComponent(messageId)}/feedback`, {
    method: 'POST',
    headers: JSON_HEADERS,
    body: JSON.stringify(feedback.comment ? feedback : { rating: feedback.rating }),
  })
}

/** A message's rating, wherever the backend keeps it. */
export function feedbackOf(m: Message): Feedback | null {
  if (m.feedback) return m.feedback
  if (m.rating === 1 || m.rating === -1) return { rating: m.rating, comment: m.comment ?? null }
  return null
}
