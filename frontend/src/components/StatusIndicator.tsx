import { useCallback, useId, useRef, useState } from 'react'
import type { ApiError } from '../api/client'
import type { ReadyInfo } from '../api/types'
import { useDismiss } from '../hooks/useDismiss'

const COMPONENT_LABELS: Record<string, string> = {
  catalog: 'Catalog',
  embeddings: 'Embeddings',
  reranker: 'Reranker',
  store: 'Vector store',
  cache: 'Cache',
  llm: 'LLM',
}

export type Health = 'ready' | 'degraded' | 'unavailable' | 'offline' | 'checking'

export function healthOf(info: ReadyInfo | null, error: ApiError | null): Health {
  if (error && (error.status === 0 || error.status === 502 || error.status === 504)) return 'offline'
  if (error) return 'unavailable'
  return info?.status ?? 'checking'
}

const HEALTH_LABELS: Record<Health, string> = {
  ready: 'All systems ready',
  degraded: 'Degraded',
  unavailable: 'Unavailable',
  offline: 'Backend offline',
  checking: 'Checking…',
}

interface Props {
  info: ReadyInfo | null
  error: ApiError | null
  at: number | null
  onRetry: () => void
}

/** A dot and a word in the header; details of each component on click. */
export function StatusIndicator({ info, error, at, onRetry }: Props) {
  const [open, setOpen] = useState(false)
  const panelId = useId()
  const root = useRef<HTMLDivElement>(null)
  const health = healthOf(info, error)
  const down = info ? Object.keys(info.components).filter((n) => !info.components[n].ok) : []
  // Degraded still answers: name what is missing (usually the cache, or the LLM) instead of alarming.
  const label =
    (health === 'degraded' || health === 'ready') && down.length
      ? `${health === 'ready' ? 'Ready' : 'Degraded'}: ${down.map((n) => (COMPONENT_LABELS[n] ?? n).toLowerCase()).join(', ')} down`
      : HEALTH_LABELS[health]

  const close = useCallback(() => setOpen(false), [])
  useDismiss(root, open, close, { escape: true })

  return (
    <div className="status" ref={root}>
      <button
        type="button"
        className="status-button"
        aria-expanded={open}
        aria-controls={panelId}
        onClick={() => setOpen((o) => !o)}
        data-testid="service-status"
        data-health={health}
      >
        <span className={`dot dot-${health}`} aria-hidden="true" />
        <span className="status-label">{label}</span>
      </button>
      {open && (
        <div className="status-panel" id={panelId} role="region" aria-label="Service status">
          {error && health === 'offline' ? (
            <p className="status-error">{error.message}</p>
          ) : null}
          {info ? (
            <ul className="components">
              {Object.entries(info.components).map(([name, c]) => (
                <li key={name} className={c.ok ? 'ok' : 'bad'}>
                  <span className={`dot dot-${c.ok ? 'ready' : 'unavailable'}`} aria-hidden="true" />
                  <span className="component-name">{COMPONENT_LABELS[name] ?? name}</span>
                  <span className="component-state">{c.ok ? 'OK' : 'Down'}</span>
                  <span className="component-detail">
                    {c.kind ? `${c.kind}: ` : ''}
                    {c.detail}
                  </span>
                </li>
              ))}
            </ul>
          ) : null}
          <div className="status-footer">
            <span>{at ? `Checked ${new Date(at).toLocaleTimeString()}` : 'Not checked yet'}</span>
            <button type="button" className="link" onClick={onRetry}>
              Check now
            </button>
          </div>
        </div>
      )}
    </div>
  )
}
