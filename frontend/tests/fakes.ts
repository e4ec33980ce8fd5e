// A tiny in-memory stand-in for the backend's HTTP API, for unit tests of the page (the e2e suite uses
// the real one).
import { vi } from 'vitest'
import type { DocumentInfo, QueryResult } from '../src/api/types'

export type Handler = (req: { method: string; url: URL; body: unknown; signal?: AbortSignal | null }) =>
  | Response
  | Promise<Response>

export const json = (body: unknown, status = 200, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json', ...headers } })

export function sse(events: [string, unknown][], opts: { chunk?: number } = {}): Response {
  const text = events.map(([e, d]) => `event: ${e}\ndata: ${JSON.stringify(d)}\n\n`).join('')
  const bytes = new TextEncoder().encode(text)
  const size = opts.chunk ?? 7 // odd cuts: events arrive split across reads
  const body = new ReadableStream<Uint8Array>({
    start(c) {
      for (let i = 0; i < bytes.length; i += size) c.enqueue(bytes.slice(i, i + size))
      c.close()
    },
  })
  return new Response(body, { status: 200, headers: { 'Content-Type': 'text/event-stream' } })
}

/** Routes fetch() by "METHOD /path" to handlers; anything else is a 404 like the backend's. */
export function installFetch(routes: Record<string, Handler>) {
  const calls: { method: string; path: string; body: unknown }[] = []
  const fetchMock = vi.fn(async (input: RequestInfo | URL, init: RequestInit = {}) => {
    const url = new URL(String(input), 'http://page.test')
    const method = (init.method ?? 'GET').toUpperCase()
    const body = typeof init.body === 'string' ? JSON.parse(init.body) : init.body
    calls.push({ method, path: url.pathname, body })
    if (init.signal?.aborted) throw new DOMException('aborted', 'AbortError')
    const handler = routes[`${method} ${url.pathname}`]
    if (!handler) return json({ error: 'Not Found', error_type: 'not_found' }, 404)
    return handler({ method, url, body, signal: init.signal })
  })
  vi.stubGlobal('fetch', fetchMock)
  return { calls, fetchMock }
}

export const result = (over: Partial<QueryResult> = {}): QueryResult => ({
  id: 'r1',
  text: 'Photovoltaic cells convert sunlight directly into electricity.',
  score: 0.03,
  rerank_score: 0.91,
  collection: 'default',
  document_id: 'd1',
  source: 'solar-cells.md',
  title: 'Photovoltaic solar cells',
  position: 0,
  page: null,
  heading: 'How a solar cell works',
  char_start: null,
  char_end: null,
  ...over,
})

export const READY = {
  status: 'ready',
  components: {
    embeddings: { ok: true, detail: 'http://ml-api:8001', kind: 'ml-api' },
    reranker: { ok: true, detail: 'http://ml-api:8001', kind: 'ml-api' },
    store: { ok: true, detail: 'qdrant-edge', kind: 'qdrant-edge' },
    cache: { ok: true, detail: 'redis', kind: 'redis' },
    llm: { ok: true, detail: 'no provider configured: extractive answers', kind: 'extractive' },
  },
}

/** A document row as the backend lists it; tests override what they exercise. */
export const doc = (over: Partial<DocumentInfo> = {}): DocumentInfo => ({
  id: 'd1',
  collection: 'default',
  filename: 'a.md',
  format: 'markdown',
  size: 9,
  status: 'embedding',
  progress: 0.5,
  chunks: 2,
  chunks_done: 1,
  pages: null,
  title: null,
  error: null,
  waiting_since: null,
  retry_reason: null,
  next_retry_at: null,
  created_at: 0,
  updated_at: 0,
  ...over,
})
