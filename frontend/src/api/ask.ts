import { ApiError, UNREACHABLE, errorFrom, isAbort, query } from './client'
import { readSse } from './sse'
import type { Citation, QueryRequest, QueryResult, Timings } from './types'

export type AskEvent =
  | { type: 'results'; results: QueryResult[]; cached: boolean; messageId: string | null; searchQuery: string | null }
  | { type: 'token'; text: string }
  | { type: 'citations'; citations: Citation[] }
  | {
      type: 'done'
      answer: string | null
      provider: string | null
      cached: boolean
      timings: Timings
      note: string | null
      messageId: string | null
      searchQuery: string | null
    }

export interface AskOptions {
  generate: boolean
  signal: AbortSignal
  onEvent: (event: AskEvent) => void
}

/** How the answer was obtained: streamed, or plain passages from /api/query on an older backend. */
export type AskMode = 'stream' | 'plain'

function parse(data: string): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(data)
    return value && typeof value === 'object' ? (value as Record<string, unknown>) : {}
  } catch {
    return {}
  }
}

const str = (v: unknown): string | null => (typeof v === 'string' ? v : null)

/**
 * Asks through POST /api/query/stream (SSE). A backend without that route (404/405) gets the same
 * question as plain POST /api/query, whose passages are shown instead of an answer.
 */
export async function ask(body: QueryRequest, opts: AskOptions): Promise<AskMode> {
  const { signal, onEvent } = opts
  let res: Response
  try {
    res = await fetch('/api/query/stream', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'text/event-stream' },
      body: JSON.stringify({ ...body, generate: opts.generate }),
      signal,
    })
  } catch (err) {
    if (isAbort(err)) throw err
    throw new ApiError(UNREACHABLE, 0, 'network')
  }
  // No stream route (or an unknown collection, which /api/query then reports in the same words).
  if (res.status === 404 || res.status === 405) {
    const out = await query(body, signal)
    const ids = { messageId: str(out.message_id), searchQuery: str(out.search_query) }
    onEvent({ type: 'results', results: out.results, cached: out.cached, ...ids })
    onEvent({
      type: 'done',
      answer: null,
      provider: null,
      cached: out.cached,
      timings: out.timings,
      note: null,
      ...ids,
    })
    return 'plain'
  }
  if (!res.ok) throw await errorFrom(res)
  if (!res.body) throw new ApiError('The answer stream is empty', 0, 'stream')

  for await (const ev of readSse(res.body)) {
    const data = parse(ev.data)
    switch (ev.event) {
      case 'results':
        onEvent({
          type: 'results',
          results: Array.isArray(data.results) ? (data.results as QueryResult[]) : [],
          cached: data.cached === true,
          messageId: str(data.message_id),
          searchQuery: str(data.search_query),
        })
        break
      case 'token':
        if (typeof data.text === 'string') onEvent({ type: 'token', text: data.text })
        break
      case 'citations':
        onEvent({
          type: 'citations',
          citations: Array.isArray(data.citations) ? (data.citations as Citation[]) : [],
        })
        break
      case 'done':
        onEvent({
          type: 'done',
          answer: str(data.answer),
          provider: str(data.provider),
          // `cached` is the answer's cache; `retrieval_cached` the passages'.
          cached: data.cached === true || data.retrieval_cached === true,
          timings: (data.timings as Timings | undefined) ?? {},
          note: str(data.truncated) ?? str(data.reason),
          messageId: str(data.message_id),
          searchQuery: str(data.search_query),
        })
        return 'stream'
      case 'error': {
        const type = str(data.error_type) ?? 'internal'
        const status = type === 'upstream_unavailable' ? 503 : 500
        throw new ApiError(str(data.error) ?? 'The answer failed', status, type)
      }
    }
  }
  throw new ApiError('The answer stream ended early', 502, 'stream')
}
