// The page's saved conversations, answers and feedback against an in-memory backend that keeps conversations as
// issue 23 describes them (the e2e suite runs the same flows against the real one).
import { render, screen, waitFor, within } from '@testing-library/react'
import userEvent from '@testing-library/user-event'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { App } from '../src/App'
import type { Message } from '../src/api/conversations'
import { UploadQueue } from '../src/lib/uploads'
import { READY, installFetch, json, result, sse } from './fakes'

afterEach(() => vi.unstubAllGlobals())

interface Conv {
  id: string
  title: string | null
  messages: Message[]
}

const msg = (m: Partial<Message> & Pick<Message, 'id' | 'role' | 'content'>): Message => ({
  search_query: null,
  citations: [],
  results: [],
  created_at: 1_700_000_000,
  feedback: null,
  ...m,
})

/** A backend with conversation routes: follow-ups get a rewritten search_query, answers a message id. */
function backend(convs: Conv[] = []) {
  let n = 0
  const find = (url: URL) => convs.find((c) => url.pathname.split('/')[3] === c.id)
  const api = installFetch({
    'GET /ready': () => json(READY),
    'GET /api/collections': () => json([]),
    'GET /api/documents': () => json({ documents: [], total: 0 }),
    'GET /api/conversations': () => json(convs.map(({ id, title }) => ({ id, title }))),
    'POST /api/conversations': () => {
      const c = { id: `c${++n}`, title: null, messages: [] }
      convs.unshift(c)
      return json(c, 201)
    },
    'POST /api/query/stream': ({ body }) => {
      const b = body as { query: string; conversation_id?: string }
      const conv = convs.find((c) => c.id === b.conversation_id)
      const first = !conv || conv.messages.length === 0
      const search = first ? b.query : `solar cells ${b.query}`
      const answer = '**Solar cells** turn light into current [1, 2].\n\n- one\n- two\n\n<img src=x onerror=alert(1)>'
      const id = `m${++n}`
      if (conv) {
        conv.title ??= b.query
        conv.messages.push(
          msg({ id: `q${n}`, role: 'user', content: b.query, search_query: search }),
          msg({ id, role: 'assistant', content: answer, search_query: search, results: [result()] }),
        )
      }
      return sse([
        ['results', { results: [result(), result({ id: 'r2' })], cached: false, search_query: search }],
        ['token', { text: answer }],
        ['done', { answer, provider: 'extractive', timings: {}, message_id: id, search_query: search }],
      ])
    },
  })
  // Routes with an id in the path, in front of installFetch's exact-path table.
  const inner = globalThis.fetch
  vi.stubGlobal('fetch', async (input: RequestInfo | URL, init: RequestInit = {}) => {
    const url = new URL(String(input), 'http://page.test')
    const method = (init.method ?? 'GET').toUpperCase()
    const conv = find(url)
    if (!url.pathname.startsWith('/api/conversations/')) return inner(input, init)
    const body = typeof init.body === 'string' ? JSON.parse(init.body) : undefined
    api.calls.push({ method, path: url.pathname, body })
    if (!conv) return json({ error: 'conversation not found', error_type: 'not_found' }, 404)
    if (url.pathname.endsWith('/feedback')) return json({ ok: true })
    if (method === 'GET') return json(conv)
    if (method === 'PATCH') {
      conv.title = body.title
      return json({ id: conv.id, title: conv.title })
    }
    convs.splice(convs.indexOf(conv), 1)
    return json({ id: conv.id, deleted: true })
  })
  return api
}

const renderApp = () => render(<App uploads={new UploadQueue({ upload: vi.fn(), get: vi.fn() })} />)

async function ask(text: string) {
  await userEvent.type(screen.getByRole('textbox', { name: 'Question' }), `${text}{Enter}`)
  await waitFor(() => expect(screen.getAllByTestId('turn-meta')).toHaveLength(screen.getAllByTestId('turn').length))
  return screen.getAllByTestId('turn').at(-1) as HTMLElement
}

describe('conversations', () => {
  it('creates one on the first question, sends follow-ups in it, shows what was searched', async () => {
    const { calls } = backend()
    renderApp()
    await screen.findByText('No saved chats yet.')
    const first = await ask('How do solar cells work?')
    expect(within(first).queryByTestId('search-query')).not.toBeInTheDocument()
    const second = await ask('and how much do they cost?')
    expect(within(second).getByTestId('search-query')).toHaveTextContent(
      'Searched for: solar cells and how much do they cost?',
    )
    const asked = calls.filter((c) => c.path === '/api/query/stream').map((c) => c.body)
    expect(asked).toMatchObject([{ conversation_id: 'c1' }, { conversation_id: 'c1' }])
    expect(calls.filter((c) => c.method === 'POST' && c.path === '/api/conversations')).toHaveLength(1)
    // Titled from the first question once the answer is in.
    expect(await screen.findByRole('button', { name: 'How do solar cells work?' })).toHaveAttribute(
      'aria-current',
      'page',
    )
    expect(localStorage.getItem('rag.conversation')).toBe('"c1"')
  })

  it('regenerates the last answer as a new turn of the same chat (the server keeps both)', async () => {
    const { calls } = backend()
    renderApp()
    await screen.findByText('No saved chats yet.')
    const first = await ask('How do solar cells work?')
    await userEvent.click(within(first).getByRole('button', { name: 'Regenerate' }))
    await waitFor(() => expect(screen.getAllByTestId('turn-meta')).toHaveLength(2))
    expect(screen.getAllByTestId('turn').map((t) => t.querySelector('.question')?.textContent)).toEqual([
      'How do solar cells work?',
      'How do solar cells work?',
    ])
    // Only the last answer offers it.
    expect(within(screen.getAllByTestId('turn')[0]).queryByRole('button', { name: 'Regenerate' })).toBeNull()
    const asked = calls.filter((c) => c.path === '/api/query/stream').map((c) => c.body)
    expect(asked).toMatchObject([{ conversation_id: 'c1' }, { conversation_id: 'c1' }])
  })

  it('reopens the open conversation after a reload, and starts a new one', async () => {
    backend([
      {
        id: 'c7',
        title: 'Panels',
        messages: [
          msg({ id: 'q1', role: 'user', content: 'What is a panel?', search_query: 'What is a panel?' }),
          msg({
            id: 'a1',
            role: 'assistant',
            content: 'A panel is *many cells* [1].',
            results: [result()],
            feedback: { rating: 1, comment: null, created_at: 1_700_000_001 },
          }),
        ],
      },
    ])
    localStorage.setItem('rag.conversation', '"c7"')
    renderApp()
    const turn = await screen.findByTestId('turn')
    expect(turn).toHaveTextContent('What is a panel?')
    expect(within(turn).getByText('many cells').tagName).toBe('EM')
    expect(within(turn).getByRole('button', { name: 'Good answer' })).toHaveAttribute('aria-pressed', 'true')
    await userEvent.click(screen.getAllByRole('button', { name: 'New chat' })[0])
    expect(screen.queryByTestId('turn')).not.toBeInTheDocument()
    expect(localStorage.getItem('rag.conversation')).toBe('null')
  })

  it('renames and deletes from the list', async () => {
    const { calls } = backend([{ id: 'c3', title: 'Old name', messages: [] }])
    renderApp()
    await userEvent.click(await screen.findByRole('button', { name: 'Rename Old name' }))
    const input = screen.getByRole('textbox', { name: 'New title' })
    await userEvent.clear(input)
    await userEvent.type(input, 'Solar costs{Enter}')
    expect(await screen.findByRole('button', { name: 'Solar costs' })).toBeInTheDocument()
    await userEvent.click(screen.getByRole('button', { name: 'Delete Solar costs' }))
    await userEvent.click(within(screen.getByRole('dialog')).getByRole('button', { name: 'Delete' }))
    await waitFor(() => expect(screen.queryByTestId('conversation')).not.toBeInTheDocument())
    expect(calls.filter((c) => c.method !== 'GET' && c.path === '/api/conversations/c3')).toMatchObject([
      { method: 'PATCH', body: { title: 'Solar costs' } },
      { method: 'DELETE' },
    ])
  })
})

describe('answers', () => {
  it('renders Markdown without raw HTML, one Tab stop for the citations, feedback with a comment', async () => {
    const { calls } = backend()
    renderApp()
    const turn = await ask('How do solar cells work?')
    const answer = within(turn).getByTestId('answer')
    expect(within(answer).getByText('Solar cells').tagName).toBe('STRONG')
    expect(answer.querySelectorAll('li')).toHaveLength(2)
    expect(answer.querySelector('img')).toBeNull()
    expect(answer.querySelector('[onerror]')).toBeNull()
    const cites = within(answer).getAllByTestId('citation')
    expect(cites.map((c) => c.tabIndex)).toEqual([0, -1])
    cites[0].focus()
    await userEvent.keyboard('{ArrowRight}')
    expect(cites[1]).toHaveFocus()
    expect(cites.map((c) => c.tabIndex)).toEqual([-1, 0])

    await userEvent.click(within(turn).getByRole('button', { name: 'Bad answer' }))
    await userEvent.type(within(turn).getByRole('textbox', { name: 'Comment (optional)' }), 'Too vague')
    await userEvent.click(within(turn).getByRole('button', { name: 'Send comment' }))
    await waitFor(() => expect(within(turn).getByRole('status')).toHaveTextContent('your comment was sent'))
    const sent = calls.filter((c) => c.path.endsWith('/feedback'))
    expect(sent.map((c) => [c.path, c.body])).toEqual([
      ['/api/conversations/c1/messages/m2/feedback', { rating: -1 }],
      ['/api/conversations/c1/messages/m2/feedback', { rating: -1, comment: 'Too vague' }],
    ])
    expect(within(turn).getByRole('button', { name: 'Bad answer' })).toHaveAttribute('aria-pressed', 'true')
  })
})
