import { useState, type FormEvent } from 'react'
import type { ConversationSummary } from '../api/conversations'
import { ConfirmDialog } from './ConfirmDialog'

interface Props {
  conversations: ConversationSummary[] | null
  currentId: string | null
  error: string | null
  onOpen: (id: string) => void
  onNew: () => void
  onRename: (id: string, title: string) => Promise<void>
  onDelete: (id: string) => Promise<void>
}

const titleOf = (c: ConversationSummary) => c.title?.trim() || 'New chat'

/** The saved chats: open one, start a new one, rename or delete (after confirmation). */
export function ConversationList({ conversations, currentId, error, onOpen, onNew, onRename, onDelete }: Props) {
  const [editing, setEditing] = useState<string | null>(null)
  const [draft, setDraft] = useState('')
  const [deleting, setDeleting] = useState<ConversationSummary | null>(null)
  const [busy, setBusy] = useState(false)
  const [failure, setFailure] = useState<string | null>(null)

  async function save(e: FormEvent) {
    e.preventDefault()
    const id = editing
    const title = draft.trim()
    if (!id || !title) return
    try {
      await onRename(id, title)
      setEditing(null)
      setFailure(null)
    } catch (err) {
      setFailure(err instanceof Error ? err.message : String(err))
    }
  }

  return (
    <nav className="panel conversations" aria-labelledby="chats-title" data-testid="conversations">
      <div className="panel-head">
        <h2 id="chats-title">Chats</h2>
        <button type="button" className="small" onClick={onNew}>
          New chat
        </button>
      </div>
      {error && <p className="field-error">{error}</p>}
      {conversations && conversations.length === 0 && <p className="muted small-print">No saved chats yet.</p>}
      <ul className="conv-list">
        {(conversations ?? []).map((c) => (
          <li key={c.id} className="conv" data-current={c.id === currentId} data-testid="conversation">
            {editing === c.id ? (
              <form className="conv-rename" onSubmit={save}>
                <label className="sr-only" htmlFor={`rename-${c.id}`}>
                  New title
                </label>
                <input
                  id={`rename-${c.id}`}
                  value={draft}
                  maxLength={200}
                  autoFocus
                  onChange={(e) => setDraft(e.target.value)}
                  onKeyDown={(e) => {
                    if (e.key === 'Escape') setEditing(null)
                  }}
                />
                <button type="submit" className="small" disabled={!draft.trim()}>
                  Save
                </button>
                {failure && <span className="field-error">{failure}</span>}
              </form>
            ) : (
              <>
                <button
                  type="button"
                  className="conv-open"
                  aria-current={c.id === currentId ? 'page' : undefined}
                  onClick={() => onOpen(c.id)}
                  title={titleOf(c)}
                >
                  {titleOf(c)}
                </button>
                <button
                  type="button"
                  className="icon"
                  aria-label={`Rename ${titleOf(c)}`}
                  title="Rename"
                  onClick={() => {
                    setDraft(titleOf(c))
                    setFailure(null)
                    setEditing(c.id)
                  }}
                >
                  <svg viewBox="0 0 24 24" aria-hidden="true">
                    <path d="M4 20h4L19 9l-4-4L4 16z M14 6l4 4" />
                  </svg>
                </button>
                <button
                  type="button"
                  className="icon"
                  aria-label={`Delete ${titleOf(c)}`}
                  title="Delete"
                  onClick={() => {
                    setFailure(null)
                    setDeleting(c)
                  }}
                >
                  <svg viewBox="0 0 24 24" aria-hidden="true">
                    <path d="M4 7h16 M9 7V4h6v3 M6 7l1 13h10l1-13" />
                  </svg>
                </button>
              </>
            )}
          </li>
        ))}
      </ul>
      {deleting && (
        <ConfirmDialog
          title={`Delete “${titleOf(deleting)}”?`}
          confirmLabel="Delete"
          busy={busy}
          error={failure}
          onCancel={() => setDeleting(null)}
          onConfirm={async () => {
            setBusy(true)
            try {
              await onDelete(deleting.id)
              setDeleting(null)
            } catch (err) {
              setFailure(err instanceof Error ? err.message : String(err))
            } finally {
              setBusy(false)
            }
          }}
        >
          The questions and answers of this chat are deleted from the server.
        </ConfirmDialog>
      )}
    </nav>
  )
}
