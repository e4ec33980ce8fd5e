import { act, render, screen, waitFor, within } from '@testing-library/react'
import userEvent from '@testing-library/user-event'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { App } from '../src/App'
import { ApiError } from '../src/api/client'
import type { DocumentInfo, UploadItem } from '../src/api/types'
import { UploadQueue } from '../src/lib/uploads'
import { READY, installFetch, json, result, sse, type Handler } from './fakes'

afterEach(() => vi.unstubAllGlobals())

const solar: DocumentInfo = {
  id: 'd1',
  collection: 'default',
  filename: 'solar-cells.md',
  format: 'markdown',
  size: 2048,
  status: 'ready',
  progress: 1,
  chunks: 3,
  chunks_done: 3,
  pages: null,
  title: 'Photovoltaic solar cells',
  error: null,
  waiting_since: null,
  retry_reason: null,
  next_retry_at: null,
  created_at: 1_700_000_000,
  updated_at: 1_700_000_000,
}

const r1 = result({ char_start: 17, char_end: 79 })
const r2 = result({ id: 'r2', source: 'volcanoes.pdf', text: 'Volcanoes form where magma reaches the surface.', rerank_score: 0.12, page: 2, heading: null })

function backend(over: Record<string, Handler> = {}) {
  let docs = [solar]
  return installFetch({
    'GET /ready': () => json(READY),
    'GET /api/collections': () =>
      json([{ name: 'default', embed_model: 'm', documents: docs.length, ready: docs.length, failed: 0, chunks: 3, version: 1, created_at: 0 }]),
    'GET /api/documents': () => json({ documents: docs, total: docs.length }),
    // An emoji before the passage: offsets count code points, so a UTF-16 slice would be off by one.
    'GET /api/documents/d1/text': () =>
      new Response('# Solar 🌞 cells\n\nPhotovoltaic cells convert sunlight directly into electricity.\n', {
        headers: { 'Content-Type': 'text/plain' },
      }),
    'DELETE /api/documents/d1': () => {
      docs = []
      return json({ id: 'd1', deleted: true })
    },
    'POST /api/query/stream': () =>
      sse([
        ['results', { results: [r1, r2], cached: false }],
        ['token', { text: 'They convert sunlight into electricity [1].' }],
        ['citations', { citations: [{ marker: 1, result_id: 'r1', document_id: 'd1', source: 'solar-cells.md' }] }],
        ['done', { answer: 'They convert sunlight into electricity [1].', provider: 'extractive', cached: true, timings: { embed_ms: 11, rerank_ms: 300, total_ms: 320 } }],
      ]),
    ...over,
  })
}

function renderApp() {
  const uploads = new UploadQueue({ upload: vi.fn(), get: vi.fn() })
  return { uploads, ...render(<App uploads={uploads} />) }
}

describe('App', () => {
  it('shows the service status and the documents', async () => {
    backend()
    renderApp()
    const status = screen.getByTestId('service-status')
    await waitFor(() => expect(status).toHaveAttribute('data-health', 'ready'))
    const row = await screen.findByTestId('document')
    expect(row).toHaveTextContent('solar-cells.md')
    expect(row).toHaveTextContent('Ready')
    expect(row).toHaveTextContent('2.0 KB')
    expect(row).toHaveTextContent('3 chunks')

    await userEvent.click(status)
    const panel = screen.getByRole('region', { name: 'Service status' })
    expect(within(panel).getByText('Reranker')).toBeInTheDocument()
    expect(within(panel).getByText('LLM')).toBeInTheDocument()
  })

  it('asks with Enter, streams the answer and links its citation to the passage', async () => {
    const { calls } = backend()
    renderApp()
    await screen.findByText(/1 document is ready/)
    const box = screen.getByRole('textbox', { name: 'Question' })
    await userEvent.type(box, 'How do solar cells work?{Shift>}{Enter}{/Shift}')
    expect(calls.some((c) => c.path === '/api/query/stream')).toBe(false) // Shift+Enter: a new line only
    await userEvent.type(box, '{Enter}')

    const cite = await screen.findByTestId('citation')
    expect(cite).toHaveAccessibleName('Source 1: solar-cells.md, rerank score 0.91')
    expect(screen.getByTestId('cached')).toHaveTextContent('served from cache')
    expect(screen.getByTestId('turn-meta')).toHaveTextContent('embed 11 ms · rerank 300 ms · total 320 ms')
    expect(screen.getByTestId('turn-meta')).toHaveTextContent('extractive answer')
    // Only the cited passage is listed until asked for all.
    expect(screen.getAllByTestId('passage')).toHaveLength(1)
    expect(box).toHaveValue('')

    // The citation opens the source panel at the passage (marked in the parsed text) and highlights it in the list.
    await userEvent.click(cite)
    const panel = await screen.findByRole('dialog', { name: /solar-cells\.md/ })
    const mark = await within(panel).findByTestId('source-mark')
    expect(mark.textContent).toBe('Photovoltaic cells convert sunlight directly into electricity.')
    expect(within(panel).getByRole('link', { name: 'Download' })).toHaveAttribute('href', '/api/documents/d1/content')
    const passage = screen.getByTestId('passage')
    expect(passage).toHaveClass('highlight')
    expect(passage).toHaveAttribute('data-source', 'solar-cells.md')
    expect(passage).toHaveTextContent('rerank 0.91')
    await userEvent.click(within(panel).getByRole('button', { name: 'Close' }))
    expect(screen.queryByRole('dialog')).not.toBeInTheDocument()
    expect(cite).toHaveFocus()

    await userEvent.click(screen.getByRole('button', { name: 'Show all 2 passages' }))
    expect(screen.getAllByTestId('passage')).toHaveLength(2)
    expect(calls.find((c) => c.path === '/api/query/stream')?.body).toMatchObject({ generate: true, top_k: 5 })
  })

  it('without generation, the passages are the answer', async () => {
    const { calls } = backend({
      'POST /api/query/stream': () =>
        sse([
          ['results', { results: [r1, r2], cached: false }],
          ['done', { timings: { total_ms: 40 }, retrieval_cached: false }],
        ]),
    })
    renderApp()
    await userEvent.click(screen.getByRole('switch', { name: 'Generate answer' }))
    await userEvent.type(screen.getByRole('textbox', { name: 'Question' }), 'volcano?{Enter}')
    await screen.findByTestId('turn-meta')
    expect(screen.queryByTestId('answer')).not.toBeInTheDocument()
    expect(screen.getAllByTestId('passage')).toHaveLength(2)
    expect(screen.queryByTestId('cached')).not.toBeInTheDocument()
    expect(calls.find((c) => c.path === '/api/query/stream')?.body).toMatchObject({ generate: false })
    expect(localStorage.getItem('rag.generate')).toBe('false')
  })

  it('deletes a document after confirmation', async () => {
    const { calls } = backend()
    renderApp()
    await userEvent.click(await screen.findByRole('button', { name: 'Delete solar-cells.md' }))
    const dialog = screen.getByRole('dialog', { name: 'Delete solar-cells.md?' })
    expect(within(dialog).getByRole('button', { name: 'Cancel' })).toHaveFocus()
    await userEvent.click(within(dialog).getByRole('button', { name: 'Delete' }))
    await waitFor(() => expect(screen.queryByTestId('document')).not.toBeInTheDocument())
    expect(screen.getByText(/No documents in/)).toBeInTheDocument()
    expect(calls.filter((c) => c.method === 'DELETE').map((c) => c.path)).toEqual(['/api/documents/d1'])
  })

  it('says when the backend is unreachable, and lets the question be retried', async () => {
    let up = false
    const down = () => {
      if (!up) throw new TypeError('Failed to fetch')
    }
    backend({
      'GET /ready': () => (down(), json(READY)),
      'GET /api/documents': () => (down(), json({ documents: [solar], total: 1 })),
      'POST /api/query/stream': () =>
        (down(),
        sse([
          ['results', { results: [r1], cached: false }],
          ['done', { timings: {}, retrieval_cached: false }],
        ])),
    })
    renderApp()
    expect(await screen.findByText(/Can't reach the backend. Retrying automatically/)).toBeInTheDocument()
    expect(screen.getByTestId('service-status')).toHaveAttribute('data-health', 'offline')
    await userEvent.type(screen.getByRole('textbox', { name: 'Question' }), 'anything{Enter}')
    const turn = await screen.findByTestId('turn')
    expect(await within(turn).findByRole('alert')).toHaveTextContent("Can't reach the backend")

    up = true
    await userEvent.click(screen.getByRole('button', { name: 'Retry now' }))
    await waitFor(() => expect(screen.getByTestId('service-status')).toHaveAttribute('data-health', 'ready'))
    await userEvent.click(within(turn).getByRole('button', { name: 'Retry' }))
    expect(await within(turn).findByTestId('passage')).toHaveTextContent('Photovoltaic')
    expect(await screen.findByTestId('document')).toBeInTheDocument()
  })

  it('shows each upload with its own progress and error', async () => {
    backend()
    // The backend's two answers: one file accepted (its bytes sent in steps, then indexed), the other refused with
    // a reason. Each task must show its own.
    let finishGood: (item: UploadItem) => void = () => {}
    const upload = vi.fn((file: File, _c: string, onProgress: (f: number) => void): Promise<UploadItem> => {
      if (file.name === 'bad.zip') {
        return Promise.reject(new ApiError('bad.zip: unsupported file type (zip)', 415, 'unsupported_format'))
      }
      onProgress(0.4)
      return new Promise((resolve) => (finishGood = resolve))
    })
    const get = vi.fn(async (): Promise<DocumentInfo> => ({ ...solar, id: 'd9', filename: 'good.md' }))
    const uploads = new UploadQueue({ upload, get }, { pollMs: 10 })
    render(<App uploads={uploads} />)
    act(() => {
      uploads.add([new File(['# good'], 'good.md'), new File(['x'], 'bad.zip')], 'default')
    })
    const [good, bad] = await screen.findAllByTestId('upload-task')
    expect(good).toHaveTextContent('good.md')
    await waitFor(() => expect(good).toHaveTextContent('Uploading 40%'))
    await waitFor(() => expect(bad).toHaveTextContent('Failed'))
    expect(within(bad).getByRole('alert')).toHaveTextContent('bad.zip: unsupported file type (zip)')
    expect(within(bad).getByRole('button', { name: 'Retry' })).toBeInTheDocument()
    expect(within(good).queryByRole('alert')).not.toBeInTheDocument()

    const accepted: UploadItem = {
      filename: 'good.md',
      id: 'd9',
      job_id: 'd9',
      status: 'queued',
      duplicate: false,
      replaces: null,
      error: null,
      error_type: null,
    }
    act(() => finishGood(accepted))
    await waitFor(() => expect(good).toHaveTextContent('Ready'))
    expect(get).toHaveBeenCalledWith('d9')
    expect(bad).toHaveTextContent('Failed') // the other task's outcome is its own
  })
})
