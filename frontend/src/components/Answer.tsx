import type { Citation, QueryResult } from '../api/types'
import { formatScore } from '../lib/format'
import { segments } from '../lib/markers'

export const passageId = (turnId: number, resultId: string) => `t${turnId}-p-${resultId}`

interface Props {
  turnId: number
  text: string
  results: QueryResult[]
  citations: Citation[]
  onCite: (resultId: string) => void
}

/** The answer text, its [n] markers turned into links to the passage each one cites. */
export function Answer({ turnId, text, results, citations, onCite }: Props) {
  const byMarker = new Map(citations.map((c) => [c.marker, c]))
  const byId = new Map(results.map((r) => [r.id, r]))
  return (
    <div className="answer-text" data-testid="answer">
      {segments(text).map((seg, i) => {
        if (seg.kind === 'text') return <span key={i}>{seg.text}</span>
        // Until the citations event lands, [n] is the n-th passage: the backend numbers them in rank order.
        const cited = byMarker.get(seg.marker)
        const result = cited ? byId.get(cited.result_id) : results[seg.marker - 1]
        if (!result) return <sup key={i} className="cite cite-missing">[{seg.marker}]</sup>
        const label = `Source ${seg.marker}: ${result.source}${result.page ? `, page ${result.page}` : ''}, rerank score ${formatScore(result.rerank_score)}`
        return (
          <a
            key={i}
            className="cite"
            href={`#${passageId(turnId, result.id)}`}
            aria-label={label}
            title={label}
            data-testid="citation"
            onClick={(e) => {
              e.preventDefault()
              onCite(result.id)
            }}
          >
            {seg.marker}
          </a>
        )
      })}
    </div>
  )
}
