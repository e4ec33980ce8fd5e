import { useState } from 'react'
import { deleteDocument, retryDocument, type ApiError } from '../api/client'
import { IN_PROGRESS, type DocumentInfo } from '../api/types'
import { STATUS_LABELS, formatBytes, formatDate } from '../lib/format'
import { ConfirmDialog } from './ConfirmDialog'

interface Props {
  collection: string
  all: boolean
  onAllChange: (all: boolean) => void
  documents: DocumentInfo[] | null
  total: number
  error: ApiError | null
  /** The page already says the backend is down: no second error here. */
  offline: boolean
  loading: boolean
  onMore: () => void
  onReload: () => void
  onDeleted: () => void
  /** Whether the user may delete or retry documents of a collection (hidden otherwise). */
  canChange?: (collection: string) => boolean
}

function StatusBadge({ doc }: { doc: DocumentInfo }) {
  const busy = IN_PROGRESS.has(doc.status)
  const pct = Math.round(doc.progress * 100)
  return (
    <span className={`badge badge-${doc.status}`} data-testid="doc-status">
      {busy && <span className="spinner" aria-hidden="true" />}
      {STATUS_LABELS[doc.status] ?? doc.status}
      {busy && doc.progress > 0 ? ` ${pct}%` : ''}
    </span>
  )
}

/** A job waiting out an outage of ml-api, the embedder or the store: it resumes by itself. */
function Waiting({ doc }: { doc: DocumentInfo }) {
  if (!doc.retry_reason) return null
  const next = doc.next_retry_at ? new Date(doc.next_retry_at * 1000).toLocaleTimeString() : null
  return (
    <p className="doc-waiting" role="status" data-testid="doc-waiting">
      Waiting for a dependency{next ? ` (next try at ${next})` : ''}: {doc.retry_reason}
    </p>
  )
}

export function DocumentList(props: Props) {
  const { collection, all, documents, total, offline, loading } = props
  const error = offline ? null : props.error
  const changeable = props.canChange ?? (() => true)
  const [pending, setPending] = useState<DocumentInfo | null>(null)
  const [deleting, setDeleting] = useState(false)
  const [deleteError, setDeleteError] = useState<string | null>(null)
  const [retryError, setRetryError] = useState<string | null>(null)

  async function retry(doc: DocumentInfo) {
    setRetryError(null)
    try {
      await retryDocument(doc.id)
    } catch (err) {
      setRetryError(`${doc.filename}: ${err instanceof Error ? err.message : String(err)}`)
    }
    props.onReload()
  }

  async function confirmDelete() {
    if (!pending) return
    setDeleting(true)
    setDeleteError(null)
    try {
      await deleteDocument(pending.id)
      setPending(null)
      props.onDeleted()
    } catch (err) {
      // Already gone is what was asked for.
      if ((err as ApiError).status === 404) {
        setPending(null)
        props.onDeleted()
      } else {
        setDeleteError(err instanceof Error ? err.message : String(err))
      }
    } finally {
      setDeleting(false)
    }
  }

  return (
    <section className="panel documents" aria-labelledby="docs-title" aria-busy={loading}>
      <div className="panel-head">
        <h2 id="docs-title">
          Documents {documents ? <span className="count">{total}</span> : null}
        </h2>
        <label className="check">
          <input type="checkbox" checked={all} onChange={(e) => props.onAllChange(e.target.checked)} />
          All collections
        </label>
        <button type="button" className="icon" onClick={props.onReload} aria-label="Refresh documents" title="Refresh">
          <svg viewBox="0 0 24 24" aria-hidden="true">
            <path d="M20 11a8 8 0 1 0-2.3 5.7M20 4v7h-7" />
          </svg>
        </button>
      </div>

      {error && (
        <div className="inline-error" role="alert">
          <span>Couldn't load documents: {error.message}</span>
          <button type="button" className="small" onClick={props.onReload}>
            Retry
          </button>
        </div>
      )}

      {retryError && (
        <div className="inline-error" role="alert">
          <span>Couldn't retry {retryError}</span>
        </div>
      )}

      {documents === null && !error && <p className="muted">{offline ? 'Waiting for the backend…' : 'Loading…'}</p>}

      {documents && documents.length === 0 && !error && (
        <div className="empty">
          <p>No documents {all ? 'yet' : <>in <strong>{collection}</strong> yet</>}.</p>
          <p className="muted">Upload PDFs, Word, HTML or Markdown files above to start asking questions.</p>
        </div>
      )}

      {documents && documents.length > 0 && (
        <ul className="doc-list" aria-label="Documents">
          {documents.map((d) => (
            <li key={d.id} className="doc" data-testid="document" data-filename={d.filename}>
              <div className="doc-main">
                <span className="filename" title={d.title ? `${d.filename} — ${d.title}` : d.filename}>
                  {d.filename}
                </span>
                <StatusBadge doc={d} />
              </div>
              {IN_PROGRESS.has(d.status) && (
                <progress
                  max={1}
                  value={d.progress > 0 ? d.progress : undefined}
                  aria-label={`${d.filename} progress`}
                />
              )}
              <div className="doc-meta">
                <span>{formatBytes(d.size)}</span>
                <span>
                  {d.status === 'ready' || d.chunks > 0
                    ? `${d.chunks} ${d.chunks === 1 ? 'chunk' : 'chunks'}`
                    : '– chunks'}
                </span>
                {d.pages ? <span>{d.pages} {d.pages === 1 ? 'page' : 'pages'}</span> : null}
                <span className="tag" title="Collection">
                  {d.collection}
                </span>
                <span className="when" title={`Updated ${formatDate(d.updated_at)}`}>
                  {formatDate(d.created_at)}
                </span>
              </div>
              <Waiting doc={d} />
              {d.error && <p className="doc-error">{d.error}</p>}
              {d.status === 'failed' && changeable(d.collection) && (
                <button type="button" className="small" onClick={() => void retry(d)} aria-label={`Retry ${d.filename}`}>
                  Retry
                </button>
              )}
              {changeable(d.collection) && (
                <button
                  type="button"
                  className="icon delete"
                  aria-label={`Delete ${d.filename}`}
                  title="Delete"
                  onClick={() => {
                    setDeleteError(null)
                    setPending(d)
                  }}
                  disabled={d.status === 'deleting'}
                >
                  <svg viewBox="0 0 24 24" aria-hidden="true">
                    <path d="M4 7h16M10 11v6m4-6v6M6 7l1 13h10l1-13M9 7V4h6v3" />
                  </svg>
                </button>
              )}
            </li>
          ))}
        </ul>
      )}

      {documents && documents.length < total && (
        <button type="button" className="link more" onClick={props.onMore}>
          Show more ({total - documents.length} more)
        </button>
      )}

      {pending && (
        <ConfirmDialog
          title={`Delete ${pending.filename}?`}
          confirmLabel="Delete"
          busy={deleting}
          error={deleteError}
          onConfirm={() => void confirmDelete()}
          onCancel={() => setPending(null)}
        >
          <p>
            Its passages stop appearing in answers at once, and its {pending.chunks} indexed{' '}
            {pending.chunks === 1 ? 'chunk is' : 'chunks are'} removed from <strong>{pending.collection}</strong>.
            This cannot be undone.
          </p>
        </ConfirmDialog>
      )}
    </section>
  )
}
