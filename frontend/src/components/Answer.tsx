import { createContext, useContext, useLayoutEffect, useRef, useState, type KeyboardEvent, type ReactNode } from 'react'
import Markdown, { type Components } from 'react-markdown'
import remarkGfm from 'remark-gfm'
import type { Citation, QueryResult } from '../api/types'
import { formatScore } from '../lib/format'
import { CITE_HREF, linkMarkers } from '../lib/markers'

export const passageId = (turnId: number, resultId: string) => `t${turnId}-p-${resultId}`

interface Props {
  turnId: number
  text: string
  results: QueryResult[]
  citations: Citation[]
  onCite: (resultId: string, opener: HTMLElement) => void
}

interface CiteInfo {
  turnId: number
  results: QueryResult[]
  byMarker: Map<number, Citation>
  byId: Map<string, QueryResult>
  onCite: (resultId: string, opener: HTMLElement) => void
}

const Cites = createContext<CiteInfo | null>(null)

/** A link in the answer: a citation marker (see linkMarkers), or an ordinary link that opens elsewhere. */
function MarkdownLink({ href, children }: { href?: string; children?: ReactNode }) {
  const info = useContext(Cites)
  if (!info || !href?.startsWith(CITE_HREF)) {
    return (
      <a href={href} target="_blank" rel="noopener noreferrer">
        {children}
      </a>
    )
  }
  const marker = Number(href.slice(CITE_HREF.length))
  // Until the citations event lands, [n] is the n-th passage: the backend numbers them in rank order.
  const cited = info.byMarker.get(marker)
  const result = cited ? info.byId.get(cited.result_id) : info.results[marker - 1]
  if (!result) return <sup className="cite cite-missing">[{marker}]</sup>
  const label = `Source ${marker}: ${result.source}${result.page ? `, page ${result.page}` : ''}, rerank score ${formatScore(result.rerank_score)}`
  return (
    <a
      className="cite"
      href={`#${passageId(info.turnId, result.id)}`}
      aria-label={label}
      title={label}
      data-testid="citation"
      onClick={(e) => {
        e.preventDefault()
        info.onCite(result.id, e.currentTarget)
      }}
    >
      {marker}
    </a>
  )
}

const PLUGINS = [remarkGfm]

// Stable across renders: a new component per render would remount every link (and lose focus) as tokens stream.
const COMPONENTS: Components = {
  a: MarkdownLink,
  // Answers come from retrieved text: images would be fetched from anywhere, so they stay their alt text.
  img: ({ alt }) => <span>{alt}</span>,
}

/**
 * The answer, its Markdown rendered by react-markdown (no raw HTML: it is shown as text, never parsed; links go
 * through react-markdown's URL filter) and its [n] markers turned into links to the passage each one cites.
 * The markers are one Tab stop together (roving tabindex): Tab reaches the first, the arrow keys the others.
 */
export function Answer({ turnId, text, results, citations, onCite }: Props) {
  const root = useRef<HTMLDivElement>(null)
  const [active, setActive] = useState(0)
  const byMarker = new Map(citations.map((c) => [c.marker, c]))
  const byId = new Map(results.map((r) => [r.id, r]))

  // Roving tabindex over the citation links, set on the DOM after each render (the markers come and go as the
  // answer streams, and react-markdown owns the elements).
  useLayoutEffect(() => {
    const cites = root.current?.querySelectorAll<HTMLAnchorElement>('a.cite') ?? []
    cites.forEach((a, i) => {
      a.tabIndex = i === Math.min(active, cites.length - 1) ? 0 : -1
    })
  })

  function onKeyDown(e: KeyboardEvent<HTMLDivElement>) {
    const cites = [...(root.current?.querySelectorAll<HTMLAnchorElement>('a.cite') ?? [])]
    const at = cites.indexOf(e.target as HTMLAnchorElement)
    if (at < 0) return
    const next =
      e.key === 'ArrowRight' || e.key === 'ArrowDown'
        ? (at + 1) % cites.length
        : e.key === 'ArrowLeft' || e.key === 'ArrowUp'
          ? (at - 1 + cites.length) % cites.length
          : e.key === 'Home'
            ? 0
            : e.key === 'End'
              ? cites.length - 1
              : -1
    if (next < 0) return
    e.preventDefault()
    setActive(next)
    cites[next].tabIndex = 0
    cites[at].tabIndex = -1
    cites[next].focus()
  }

  return (
    <div
      ref={root}
      className="answer-text markdown"
      data-testid="answer"
      onKeyDown={onKeyDown}
      onFocus={(e) => {
        const cites = [...(root.current?.querySelectorAll('a.cite') ?? [])]
        const at = cites.indexOf(e.target as Element)
        if (at >= 0 && at !== active) setActive(at)
      }}
    >
      <Cites.Provider value={{ turnId, results, byMarker, byId, onCite }}>
        <Markdown remarkPlugins={PLUGINS} components={COMPONENTS}>
          {linkMarkers(text)}
        </Markdown>
      </Cites.Provider>
    </div>
  )
}
