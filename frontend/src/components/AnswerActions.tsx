import { useState, type FormEvent } from 'react'
import { sendFeedback, type Feedback } from '../api/conversations'

interface Props {
  answer: string
  conversationId: string | null
  messageId: string | null
  feedback: Feedback | null
  canRegenerate: boolean
  onRegenerate: () => void
  onRated: (feedback: Feedback) => void
}

/** Under a finished answer: copy it, rate it (with an optional comment), ask for it again. */
export function AnswerActions({ answer, conversationId, messageId, feedback, canRegenerate, onRegenerate, onRated }: Props) {
  const [copied, setCopied] = useState<'yes' | 'failed' | null>(null)
  const [commenting, setCommenting] = useState(false)
  const [comment, setComment] = useState('')
  const [status, setStatus] = useState('')
  const rateable = Boolean(conversationId && messageId)

  async function copy() {
    try {
      await navigator.clipboard.writeText(answer)
      setCopied('yes')
    } catch {
      setCopied('failed')
    }
    setTimeout(() => setCopied(null), 2000)
  }

  async function rate(next: Feedback) {
    if (!conversationId || !messageId) return
    try {
      await sendFeedback(conversationId, messageId, next)
      onRated(next)
      setStatus(next.comment ? 'Thanks: your comment was sent.' : 'Thanks for the feedback.')
    } catch (err) {
      setStatus(`The feedback could not be sent: ${err instanceof Error ? err.message : String(err)}`)
    }
  }

  async function sendComment(e: FormEvent) {
    e.preventDefault()
    if (!feedback || !comment.trim()) return
    await rate({ rating: feedback.rating, comment: comment.trim() })
    setCommenting(false)
  }

  return (
    <div className="answer-actions" data-testid="answer-actions">
      <button type="button" className="small ghost" onClick={copy}>
        {copied === 'yes' ? 'Copied' : copied === 'failed' ? 'Copy failed' : 'Copy'}
      </button>
      {rateable && (
        <>
          <button
            type="button"
            className="small ghost thumb"
            aria-pressed={feedback?.rating === 1}
            aria-label="Good answer"
            title="Good answer"
            onClick={() => {
              void rate({ rating: 1 })
              setCommenting(true)
            }}
          >
            <svg viewBox="0 0 24 24" aria-hidden="true">
              <path d="M7 11v9H4v-9z M7 11l4-8c1.5 0 2.5 1 2.5 2.5V9H19a2 2 0 0 1 2 2.3l-1.2 7A2 2 0 0 1 17.8 20H7" />
            </svg>
          </button>
          <button
            type="button"
            className="small ghost thumb"
            aria-pressed={feedback?.rating === -1}
            aria-label="Bad answer"
            title="Bad answer"
            onClick={() => {
              void rate({ rating: -1 })
              setCommenting(true)
            }}
          >
            <svg viewBox="0 0 24 24" aria-hidden="true">
              <path d="M7 13V4H4v9z M7 13l4 8c1.5 0 2.5-1 2.5-2.5V15H19a2 2 0 0 0 2-2.3l-1.2-7A2 2 0 0 0 17.8 4H7" />
            </svg>
          </button>
        </>
      )}
      {canRegenerate && (
        <button type="button" className="small ghost" onClick={onRegenerate}>
          Regenerate
        </button>
      )}
      <span className="small-print muted" role="status">
        {status}
      </span>
      {commenting && feedback && (
        <form className="feedback-comment" onSubmit={sendComment}>
          <label>
            Comment (optional)
            <textarea value={comment} rows={2} maxLength={2000} onChange={(e) => setComment(e.target.value)} />
          </label>
          <div className="row">
            <button type="submit" className="small" disabled={!comment.trim()}>
              Send comment
            </button>
            <button type="button" className="small ghost" onClick={() => setCommenting(false)}>
              Close
            </button>
          </div>
        </form>
      )}
    </div>
  )
}
