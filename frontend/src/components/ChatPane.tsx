import { useEffect, useRef, useState } from 'react'
import type { Feedback } from '../api/conversations'
import type { QueryResult } from '../api/types'
import type { Turn } from '../hooks/useAsk'
import { AskBox, type AskBoxProps } from './AskBox'
import { SourcePanel, type SourceRef } from './SourcePanel'
import { TurnView } from './TurnView'

/** Besides what the ask box takes (its busy, settings, onAsk and onStop). */
interface Props extends AskBoxProps {
  collection: string
  readyDocs: number
  turns: Turn[]
  onRetry: (id: number) => void
  onNewChat: () => void
  onRated: (id: number, feedback: Feedback) => void
  onRegenerate: (turn: Turn) => void
}

/** What the page says to screen readers, once per state of the latest question. */
function announcementOf(turn: Turn | undefined): string {
  if (!turn) return ''
  switch (turn.status) {
    case 'searching':
      return 'Searching…'
    case 'answering':
      return ''
    case 'done':
      return `Answer ready, ${turn.results?.length ?? 0} passages`
    case 'error':
      return `The question failed: ${turn.error?.message ?? ''}`
    case 'stopped':
      return turn.startedAt ? 'Stopped' : ''
  }
}

/** The conversation: the thread of turns, the question box, and the source panel a citation opens. */
export function ChatPane(props: Props) {
  const { turns, collection, readyDocs } = props
  const thread = useRef<HTMLDivElement>(null)
  const [source, setSource] = useState<SourceRef | null>(null)
  const count = useRef(0)

  // A new question is scrolled to the top of the thread, so it stays in view while its answer grows below it;
  // a conversation opened from the list shows its end.
  useEffect(() => {
    const el = thread.current
    const before = count.current
    count.current = turns.length
    if (!el || turns.length === 0) return
    if (turns.length === before + 1) {
      const last = el.querySelector<HTMLElement>('[data-testid="turn"]:last-child')
      if (last) el.scrollTop += last.getBoundingClientRect().top - el.getBoundingClientRect().top - 8
    } else if (turns.length !== before) {
      el.scrollTop = el.scrollHeight
    }
  }, [turns.length])

  const open = (result: QueryResult, marker: number, opener: HTMLElement) => setSource({ result, marker, opener })

  return (
    <section className="chat" aria-label="Questions and answers">
      <div className="thread" ref={thread} data-testid="thread">
        {turns.length === 0 ? (
          <div className="empty chat-empty">
            <h2>Ask about {collection}</h2>
            {readyDocs > 0 ? (
              <p>
                {readyDocs} {readyDocs === 1 ? 'document is' : 'documents are'} ready. Answers cite the passages they
                come from.
              </p>
            ) : (
              <p>Upload a document first: answers cite the passages they come from.</p>
            )}
          </div>
        ) : (
          <>
            <div className="thread-head">
              <button type="button" className="link small" onClick={props.onNewChat}>
                New chat
              </button>
            </div>
            <ol className="turns" aria-label="Conversation">
              {turns.map((t, i) => (
                <TurnView
                  key={t.id}
                  turn={t}
                  last={i === turns.length - 1 && !props.busy}
                  onRetry={props.onRetry}
                  onStop={props.onStop}
                  onOpenSource={open}
                  onRated={props.onRated}
                  onRegenerate={props.onRegenerate}
                />
              ))}
            </ol>
          </>
        )}
      </div>
      <div className="sr-only" role="status" aria-live="polite">
        {announcementOf(turns[turns.length - 1])}
      </div>
      <AskBox
        busy={props.busy}
        generate={props.generate}
        topK={props.topK}
        onGenerate={props.onGenerate}
        onTopK={props.onTopK}
        onStop={props.onStop}
        onAsk={props.onAsk}
      />
      {source && <SourcePanel key={`${source.result.id}:${source.marker}`} source={source} onClose={() => setSource(null)} />}
    </section>
  )
}
