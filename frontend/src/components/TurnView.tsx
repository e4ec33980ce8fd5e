import { useState } from 'react'
import { flushSync } from 'react-dom'
import type { ApiError } from '../api/client'
import type { Feedback } from '../api/conversations'
import type { QueryResult } from '../api/types'
import { useElapsed } from '../hooks/useElapsed'
import type { Turn } from '../hooks/useAsk'
import { timingParts } from '../lib/format'
import { segments } from '../lib/markers'
import { Answer, passageId } from './Answer'
import { AnswerActions } from './AnswerActions'
import { Passage } from './Passage'

const SLOW_S = 8

function errorText(error: ApiError, collection: string): string {
  if (error.status === 404 && /collection/i.test(error.message)) {
    return `The collection "${collection}" has no documents yet. Upload some first.`
  }
  if (error.status === 0) return error.message
  const wait = error.retryAfter ? ` Try again in ${error.retryAfter} s.` : ''
  return `${error.message}${wait}`
}

/** Passages the answer cites: from the citations event, or from its [n] markers while it streams. */
function citedIds(turn: Turn, results: QueryResult[]): Set<string> {
  if (turn.citations.length) return new Set(turn.citations.map((c) => c.result_id))
  const ids = new Set<string>()
  for (const seg of segments(turn.answer)) {
    if (seg.kind === 'cite' && results[seg.marker - 1]) ids.add(results[seg.marker - 1].id)
  }
  return ids
}

interface Props {
  turn: Turn
  last: boolean
  onRetry: (id: number) => void
  onStop: () => void
  onOpenSource: (result: QueryResult, marker: number, opener: HTMLElement) => void
  onRated: (id: number, feedback: Feedback) => void
  /** Asks the same question again (in a saved chat, a new turn: the server keeps every answer). */
  onRegenerate: (turn: Turn) => void
}

export function TurnView({ turn, last, onRetry, onStop, onOpenSource, onRated, onRegenerate }: Props) {
  const [showAll, setShowAll] = useState(false)
  const [highlight, setHighlight] = useState<string | null>(null)
  const busy = turn.status === 'searching' || turn.status === 'answering'
  const elapsed = useElapsed(busy, turn.startedAt)
  const results = turn.results ?? []
  const generated = turn.settings.generate && turn.mode !== 'plain'
  const cited = citedIds(turn, results)
  // With a cited answer, the cited passages are the ones to read; otherwise every passage is the answer.
  const onlyCited = generated && !showAll && cited.size > 0
  const visible = onlyCited ? results.filter((r) => cited.has(r.id)) : results

  function cite(resultId: string, opener: HTMLElement) {
    const r = results.find((x) => x.id === resultId)
    if (r) onOpenSource(r, results.indexOf(r) + 1, opener)
    flushSync(() => {
      if (!visible.some((r) => r.id === resultId)) setShowAll(true)
      setHighlight(resultId)
    })
    const el = document.getElementById(passageId(turn.id, resultId))
    const still = window.matchMedia?.('(prefers-reduced-motion: reduce)').matches
    el?.scrollIntoView?.({ block: 'center', behavior: still ? 'auto' : 'smooth' })
  }

  return (
    <li className="turn" data-testid="turn" aria-busy={busy}>
      <div className="question">
        <p>{turn.question}</p>
      </div>
      {turn.searchQuery && turn.searchQuery.trim() !== turn.question.trim() && (
        <p className="searched" data-testid="search-query">
          Searched for: <q>{turn.searchQuery}</q>
        </p>
      )}
      <div className="response" data-status={turn.status}>
        {busy && (
          <div className="progress-line">
            <span className="spinner" aria-hidden="true" />
            <span>
              {turn.status === 'searching' ? 'Searching passages…' : 'Writing the answer…'}
              {/* Not announced: the page's one live region says each state once, not every second. */}
              <span aria-hidden="true">{elapsed >= 2 ? ` ${elapsed} s` : ''}</span>
            </span>
            <button type="button" className="small ghost" onClick={onStop}>
              Stop
            </button>
          </div>
        )}
        {busy && elapsed >= SLOW_S && (
          <p className="slow">
            This is taking longer than usual: the backend may be busy or still loading its models.
          </p>
        )}

        {generated && turn.answer && (
          <Answer
            turnId={turn.id}
            text={turn.answer}
            results={results}
            citations={turn.citations}
            onCite={cite}
          />
        )}

        {turn.results && results.length === 0 && turn.status !== 'searching' && (
          <p className="empty-results">
            No passage matched. Try other words, or check that the documents of{' '}
            <strong>{turn.settings.collection}</strong> are ready.
          </p>
        )}

        {visible.length > 0 && (
          <section className="sources" aria-label="Sources">
            {generated && <h3>Sources</h3>}
            <ol className="passages">
              {visible.map((r) => {
                const marker = results.indexOf(r) + 1
                return (
                  <li key={r.id}>
                    <Passage
                      id={passageId(turn.id, r.id)}
                      marker={marker}
                      result={r}
                      cited={cited.has(r.id)}
                      highlighted={highlight === r.id}
                      onOpen={(opener) => onOpenSource(r, marker, opener)}
                    />
                  </li>
                )
              })}
            </ol>
          </section>
        )}
        {onlyCited && turn.status === 'done' && results.length > visible.length && (
          <button type="button" className="link small" onClick={() => setShowAll(true)}>
            Show all {results.length} passages
          </button>
        )}
        {generated && showAll && cited.size > 0 && (
          <button type="button" className="link small" onClick={() => setShowAll(false)}>
            Show cited passages only
          </button>
        )}

        {turn.status === 'error' && turn.error && (
          <div className="inline-error" role="alert">
            <span>{errorText(turn.error, turn.settings.collection)}</span>
            <button type="button" className="small" onClick={() => onRetry(turn.id)}>
              Retry
            </button>
          </div>
        )}
        {turn.status === 'stopped' && (
          <div className="stopped">
            <span>Stopped.</span>
            <button type="button" className="small ghost" onClick={() => onRetry(turn.id)}>
              Ask again
            </button>
          </div>
        )}

        {turn.status === 'done' && generated && turn.answer && (
          <AnswerActions
            answer={turn.answer}
            conversationId={turn.settings.conversationId ?? null}
            messageId={turn.messageId}
            feedback={turn.feedback}
            canRegenerate={last}
            onRegenerate={() => onRegenerate(turn)}
            onRated={(f) => onRated(turn.id, f)}
          />
        )}
        {turn.status === 'done' && (
          <footer className="meta" data-testid="turn-meta">
            {turn.cached && (
              <span className="badge badge-cache" data-testid="cached">
                served from cache
              </span>
            )}
            {turn.provider === 'extractive' && <span>extractive answer (no LLM)</span>}
            {turn.provider && turn.provider !== 'extractive' && <span>answered by {turn.provider}</span>}
            {turn.mode === 'plain' && turn.settings.generate && <span>passages only</span>}
            {turn.note && turn.provider !== 'extractive' && <span className="note">{turn.note}</span>}
            {turn.timings && (
              <span className="timings" title="Time spent in each stage">
                {timingParts(turn.timings).join(' · ')}
              </span>
            )}
          </footer>
        )}
      </div>
    </li>
  )
}
