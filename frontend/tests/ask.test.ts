import { afterEach, describe, expect, it, vi } from 'vitest'
import { ask, type AskEvent } from '../src/api/ask'
import { ApiError } from '../src/api/client'
import { installFetch, json, result, sse } from './fakes'

afterEach(() => vi.unstubAllGlobals())

async function run(generate = true, signal = new AbortController().signal) {
  const events: AskEvent[] = []
  const mode = await ask({ query: 'q', collection: 'default', top_k: 5 }, { generate, signal, onEvent: (e) => events.push(e) })
  return { mode, events }
}

describe('ask', () => {
  it('streams results, tokens, citations and done', async () => {
    const { calls } = installFetch({
      'POST /api/query/stream': () =>
        sse([
          ['results', { results: [result()], cached: false }],
          ['token', { text: 'Cells convert ' }],
          ['token', { text: 'light [1].' }],
          ['citations', { citations: [{ marker: 1, result_id: 'r1', document_id: 'd1', source: 'solar-cells.md' }] }],
          ['done', { answer: 'Cells convert light [1].', provider: 'extractive', cached: false, retrieval_cached: true, timings: { total_ms: 12 } }],
        ]),
    })
    const { mode, events } = await run()
    expect(mode).toBe('stream')
    expect(calls[0].body).toMatchObject({ query: 'q', collection: 'default', top_k: 5, generate: true })
    expect(events.map((e) => e.type)).toEqual(['results', 'token', 'token', 'citations', 'done'])
    expect(events.at(-1)).toMatchObject({ type: 'done', provider: 'extractive', cached: true, timings: { total_ms: 12 } })
  })

  it('falls back to POST /api/query when the stream route is missing', async () => {
    for (const status of [404, 405]) {
      const { calls } = installFetch({
        'POST /api/query/stream': () => json({ error: 'Method Not Allowed' }, status),
        'POST /api/query': () => json({ results: [result()], timings: { total_ms: 5 }, cached: true }),
      })
      const { mode, events } = await run()
      expect(mode).toBe('plain')
      expect(calls.map((c) => c.path)).toEqual(['/api/query/stream', '/api/query'])
      expect(calls[1].body).not.toHaveProperty('generate')
      expect(events).toEqual([
        { type: 'results', results: [result()], cached: true, messageId: null, searchQuery: null },
        {
          type: 'done',
          answer: null,
          provider: null,
          cached: true,
          timings: { total_ms: 5 },
          note: null,
          messageId: null,
          searchQuery: null,
        },
      ])
    }
  })

  it('reports an unknown collection in the backend\'s words', async () => {
    installFetch({
      'POST /api/query/stream': () => json({ error: "collection 'x' does not exist", error_type: 'not_found' }, 404),
      'POST /api/query': () => json({ error: "collection 'x' does not exist", error_type: 'not_found' }, 404),
    })
    await expect(run()).rejects.toMatchObject({ status: 404, message: "collection 'x' does not exist" })
  })

  it('turns an error event into an ApiError', async () => {
    installFetch({
      'POST /api/query/stream': () =>
        sse([
          ['results', { results: [], cached: false }],
          ['error', { error: 'ml-api unreachable', error_type: 'upstream_unavailable' }],
        ]),
    })
    const err = await run().catch((e: unknown) => e)
    expect(err).toBeInstanceOf(ApiError)
    expect(err).toMatchObject({ message: 'ml-api unreachable', status: 503, retryable: true })
  })

  it('says so when the stream ends without done', async () => {
    installFetch({ 'POST /api/query/stream': () => sse([['results', { results: [], cached: false }]]) })
    await expect(run()).rejects.toMatchObject({ message: 'The answer stream ended early' })
  })

  it('reports 503 with Retry-After', async () => {
    installFetch({
      'POST /api/query/stream': () =>
        json({ error: 'ml-api is unreachable', error_type: 'upstream_unavailable' }, 503, { 'Retry-After': '5' }),
    })
    await expect(run()).rejects.toMatchObject({ status: 503, retryAfter: 5, retryable: true })
  })

  it('maps a network failure to an unreachable backend', async () => {
    vi.stubGlobal('fetch', vi.fn().mockRejectedValue(new TypeError('Failed to fetch')))
    await expect(run()).rejects.toMatchObject({ status: 0, type: 'network' })
  })

  it('lets an abort through as AbortError', async () => {
    installFetch({})
    const controller = new AbortController()
    controller.abort()
    await expect(run(true, controller.signal)).rejects.toMatchObject({ name: 'AbortError' })
  })
})
