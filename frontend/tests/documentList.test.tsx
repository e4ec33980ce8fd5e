import { render, screen, waitFor } from '@testing-library/react'
import userEvent from '@testing-library/user-event'
import { afterEach, describe, expect, it, vi } from 'vitest'
import type { DocumentInfo } from '../src/api/types'
import { DocumentList } from '../src/components/DocumentList'
import { doc, installFetch, json } from './fakes'

afterEach(() => vi.unstubAllGlobals())

function show(documents: DocumentInfo[], onReload = vi.fn()) {
  render(
    <DocumentList
      collection="default"
      all={false}
      onAllChange={() => {}}
      documents={documents}
      total={documents.length}
      error={null}
      offline={false}
      loading={false}
      onMore={() => {}}
      onReload={onReload}
      onDeleted={() => {}}
    />,
  )
  return onReload
}

describe('DocumentList', () => {
  it('says why a document waits out an outage', () => {
    show([doc({ waiting_since: 1, retry_reason: 'ml-api unavailable: ConnectError', next_retry_at: 2 })])
    expect(screen.getByTestId('doc-waiting').textContent).toContain('ml-api unavailable: ConnectError')
    expect(screen.queryByRole('button', { name: 'Retry a.md' })).toBeNull()
  })

  it('retries a failed document from its kept upload', async () => {
    const { calls } = installFetch({ 'POST /api/documents/d1/retry': () => json(doc({ status: 'queued' }), 202) })
    const onReload = show([doc({ status: 'failed', error: 'gave up after 3600 s waiting for the embedder' })])
    await userEvent.click(screen.getByRole('button', { name: 'Retry a.md' }))
    await waitFor(() => expect(onReload).toHaveBeenCalled())
    expect(calls.map((c) => `${c.method} ${c.path}`)).toEqual(['POST /api/documents/d1/retry'])
  })
})
