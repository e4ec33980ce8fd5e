// The backend's saved conversations (POST/GET/PATCH/DELETE /api/conversations) and answer feedback, typed from
// its OpenAPI document. A backend without these routes answers 404/405: the page then asks without history.
import { ApiError, json, request, send } from './client'
import type { components } from './schema'

type Schemas = components['schemas']

/** A conversation as listed (newest first): id, title (null until its first question), times. */
export type ConversationSummary = Schemas['Conversation']
/** A stored message: a question, or an answer with its passages, citations and rating. */
export type Message = Schemas['ConversationMessage']
export type Conversation = Schemas['ConversationDetail']
/** A rating as the page sends it (the stored one also has created_at). */
export interface Feedback {
  rating: 1 | -1
  comment?: string | null
}

const path = (id: string) => `/api/conversations/${encodeURIComponent(id)}`

/** True for the answer of a backend that has no conversation routes (older, or built without them). */
export function unsupported(err: unknown): boolean {
  return err instanceof ApiError && (err.status === 404 || err.status === 405)
}

export function listConversations(signal?: AbortSignal): Promise<ConversationSummary[]> {
  return json<ConversationSummary[]>('/api/conversations', { signal })
}

export function createConversation(title?: string): Promise<ConversationSummary> {
  return json<ConversationSummary>('/api/conversations', send('POST', title ? { title } : {}))
}

export function getConversation(id: string, signal?: AbortSignal): Promise<Conversation> {
  return json<Conversation>(path(id), { signal })
}

export function renameConversation(id: string, title: string): Promise<ConversationSummary> {
  return json<ConversationSummary>(path(id), send('PATCH', { title }))
}

export async function deleteConversation(id: string): Promise<void> {
  await request(path(id), { method: 'DELETE' })
}

export async function sendFeedback(conversationId: string, messageId: string, feedback: Feedback): Promise<void> {
  const body = feedback.comment ? feedback : { rating: feedback.rating }
  await request(`${path(conversationId)}/messages/${encodeURIComponent(messageId)}/feedback`, send('POST', body))
}

/** A message's rating, as the page shows it. */
export function feedbackOf(m: Message): Feedback | null {
  return m.feedback ? { rating: m.feedback.rating, comment: m.feedback.comment } : null
}
