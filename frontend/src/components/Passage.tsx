import { useState, type ReactNode } from 'react'
import Markdown from 'react-markdown'
import remarkGfm from 'remark-gfm'
import type { QueryResult } from '../api/types'
import { formatScore } from '../lib/format'

const LONG = 420
const PLUGINS = [remarkGfm]
const INERT = {
  a: ({ children }: { children?: ReactNode }) => <span className="md-link">{children}</span>,
  img: ({ alt }: { alt?: string }) => <span>{alt}</span>,
}

interface Props {
  id: string
  marker: number
  result: QueryResult
  cited: boolean
  highlighted: boolean
  onOpen: (opener: HTMLElement) => void
}

export function Passage({ id, marker, result, cited, highlighted, onOpen }: Props) {
  const [expanded, setExpanded] = useState(false)
  const long = result.text.length > LONG
  const text = long && !expanded ? `${result.text.slice(0, LONG).trimEnd()}…` : result.text
  const where = [result.page ? `page ${result.page}` : null, result.heading].filter(Boolean).join(' · ')
  return (
    <article
      id={id}
      tabIndex={-1}
      className={`passage${cited ? ' cited' : ''}${highlighted ? ' highlight' : ''}`}
      data-testid="passage"
      data-source={result.source}
      aria-label={`Source ${marker}: ${result.source}`}
    >
      <header>
        <span className="marker" aria-hidden="true">
          {marker}
        </span>
        <span className="source" title={result.title ?? result.source}>
          {result.source}
        </span>
        {where && <span className="where">{where}</span>}
        <span
          className="score"
          title={
            result.rerank_score !== null
              ? 'Cross-encoder relevance, 0 to 1'
              : 'Retrieval score (no rerank)'
          }
          data-testid="rerank-score"
        >
          {result.rerank_score !== null
            ? `rerank ${formatScore(result.rerank_score)}`
            : `score ${result.score.toFixed(3)}`}
        </span>
      </header>
      {/* Passages are Markdown too (a heading, a list): rendered the same safe way as answers, links inert. */}
      <div className="passage-text markdown">
        <Markdown remarkPlugins={PLUGINS} components={INERT}>
          {text}
        </Markdown>
      </div>
      <div className="passage-actions">
        {long && (
          <button type="button" className="link small" onClick={() => setExpanded((x) => !x)} aria-expanded={expanded}>
            {expanded ? 'Show less' : 'Show full passage'}
          </button>
        )}
        <button
          type="button"
          className="link small"
          onClick={(e) => onOpen(e.currentTarget)}
          aria-label={`Open ${result.source} at this passage`}
        >
          Open in document
        </button>
      </div>
    </article>
  )
}
