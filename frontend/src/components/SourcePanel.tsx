import { useEffect, useRef, useState } from 'react'
import { ApiError, contentUrl, getDocumentText, isAbort } from '../api/client'
import type { QueryResult } from '../api/types'
import { locate, type Located } from '../lib/passage'
import { PdfPage } from './PdfPage'

export interface SourceRef {
  result: QueryResult
  marker: number
  /** Where focus goes back to when the panel closes. */
  opener: HTMLElement | null
}

interface Props {
  source: SourceRef
  onClose: () => void
}

type Text = { phase: 'loading' } | { phase: 'ready'; found: Located | null; text: string } | { phase: 'error'; message: string }

const isPdf = (r: QueryResult) => /\.pdf$/i.test(r.source)

/** The parsed text with the passage marked and scrolled into view. */
function TextSource({ result, text }: { result: QueryResult; text: Text }) {
  const mark = useRef<HTMLElement>(null)
  useEffect(() => {
    if (text.phase === 'ready') mark.current?.scrollIntoView?.({ block: 'center' })
  }, [text])
  if (text.phase === 'loading') return <p className="muted">Loading the document…</p>
  if (text.phase === 'error') return <p className="field-error">{text.message}</p>
  return (
    <div className="source-text" tabIndex={0} aria-label={`Text of ${result.source}`} data-testid="source-text">
      {text.found ? (
        <>
          {text.found.before}
          <mark ref={mark} data-testid="source-mark">
            {text.found.passage}
          </mark>
          {text.found.after}
        </>
      ) : (
        text.text
      )}
    </div>
  )
}

/**
 * A modal side panel with the cited document: a PDF at the cited page (pdf.js) with the passage highlighted,
 * any other format as its parsed text with the passage marked. Escape or Close shuts it and focus goes back to
 * the citation or button that opened it.
 */
export function SourcePanel({ source, onClose }: Props) {
  const ref = useRef<HTMLDialogElement>(null)
  const closeButton = useRef<HTMLButtonElement>(null)
  const { result, marker, opener } = source
  const [text, setText] = useState<Text>({ phase: 'loading' })

  useEffect(() => {
    const dialog = ref.current
    if (dialog && !dialog.open) dialog.showModal()
    closeButton.current?.focus()
    return () => {
      dialog?.close()
      opener?.focus()
    }
  }, [opener])

  useEffect(() => {
    const ctrl = new AbortController()
    getDocumentText(result.document_id, ctrl.signal)
      .then((t) => setText({ phase: 'ready', text: t, found: locate(t, result.char_start, result.char_end, result.text) }))
      .catch((err: unknown) => {
        if (isAbort(err)) return
        const message =
          err instanceof ApiError && err.status === 409
            ? 'The document is still being processed; its text is shown once it is parsed.'
            : err instanceof Error
              ? err.message
              : String(err)
        setText({ phase: 'error', message })
      })
    return () => ctrl.abort()
  }, [result])

  const pdf = isPdf(result)
  const passage = text.phase === 'ready' && text.found ? text.found.passage : result.text
  return (
    <dialog
      ref={ref}
      className="source-panel"
      aria-labelledby="source-title"
      data-testid="source-panel"
      onCancel={(e) => {
        e.preventDefault()
        onClose()
      }}
      // Escape handled here too: Chromium may close a dialog without a cancel event (its close-watcher rules).
      onKeyDown={(e) => {
        if (e.key === 'Escape') {
          e.preventDefault()
          onClose()
        }
      }}
      onClose={onClose}
    >
      <header className="source-head">
        <div>
          <h2 id="source-title">
            <span className="marker" aria-hidden="true">
              {marker}
            </span>{' '}
            {result.source}
          </h2>
          <p className="muted small-print">
            {[result.page ? `page ${result.page}` : null, result.heading].filter(Boolean).join(' · ') || 'Source'}
          </p>
        </div>
        <a className="button-link" href={contentUrl(result.document_id)} download={result.source}>
          Download
        </a>
        <button type="button" onClick={onClose} ref={closeButton}>
          Close
        </button>
      </header>
      <div className="source-body">
        {pdf && text.phase === 'loading' ? (
          <p className="muted">Loading the document…</p>
        ) : pdf ? (
          <>
            <PdfPage documentId={result.document_id} page={result.page ?? 1} passage={passage} />
            <details className="source-quote">
              <summary>The passage as text</summary>
              <blockquote>{passage}</blockquote>
            </details>
          </>
        ) : (
          <TextSource result={result} text={text} />
        )}
      </div>
    </dialog>
  )
}
