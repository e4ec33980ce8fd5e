// The source panel on its own: the parsed text with the passage marked (code-point offsets), a document still
// being parsed (409), and focus going back to what opened it.
import { render, screen } from '@testing-library/react'
import userEvent from '@testing-library/user-event'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { SourcePanel } from '../src/components/SourcePanel'
import { installFetch, json, result } from './fakes'

afterEach(() => vi.unstubAllGlobals())

function open(over: Parameters<typeof result>[0] = {}) {
  const opener = document.createElement('button')
  document.body.append(opener)
  const onClose = vi.fn()
  const { unmount } = render(<SourcePanel source={{ result: result(over), marker: 2, opener }} onClose={onClose} />)
  return { opener, onClose, unmount }
}

describe('SourcePanel', () => {
  it('marks text[char_start:char_end] counted in code points, with a download link', async () => {
    // 𝔸 (U+1D538) is two UTF-16 units: a plain string slice would start one character early.
    installFetch({ 'GET /api/documents/d1/text': () => new Response('𝔸𝔸 intro. The passage itself. After.') })
    open({ char_start: 10, char_end: 29 })
    const mark = await screen.findByTestId('source-mark')
    expect(mark.textContent).toBe('The passage itself.')
    expect(screen.getByTestId('source-text')).toHaveTextContent('𝔸𝔸 intro. The passage itself. After.')
    expect(screen.getByRole('link', { name: 'Download' })).toHaveAttribute('href', '/api/documents/d1/content')
    expect(screen.getByRole('dialog', { name: /solar-cells\.md/ })).toBeInTheDocument()
  })

  it('says so while the document is still being parsed', async () => {
    installFetch({
      'GET /api/documents/d1/text': () => json({ error: 'document d1 is parsing', error_type: 'conflict' }, 409),
    })
    open({ char_start: 0, char_end: 5 })
    expect(await screen.findByText(/still being processed/)).toBeInTheDocument()
  })

  it('finds the passage by its text without offsets; Escape and Close close it; focus goes back', async () => {
    installFetch({
      'GET /api/documents/d1/text': () =>
        new Response('Intro. Photovoltaic cells convert sunlight directly into electricity. End.'),
    })
    const { opener, onClose, unmount } = open()
    expect((await screen.findByTestId('source-mark')).textContent).toBe(
      'Photovoltaic cells convert sunlight directly into electricity.',
    )
    expect(screen.getByRole('button', { name: 'Close' })).toHaveFocus()
    await userEvent.keyboard('{Escape}')
    expect(onClose).toHaveBeenCalled()
    await userEvent.click(screen.getByRole('button', { name: 'Close' }))
    expect(onClose).toHaveBeenCalledTimes(2)
    unmount() // what the page does on close
    expect(opener).toHaveFocus()
  })
})
