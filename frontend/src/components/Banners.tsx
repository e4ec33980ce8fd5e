import type { ReadyInfo } from '../api/types'
import type { Health } from './StatusIndicator'

interface Props {
  health: Health
  ready: ReadyInfo | null
  onRetry: () => void
}

/** The backend is unreachable, or up without what search needs: said once, at the top, with a retry. */
export function Banners({ health, ready, onRetry }: Props) {
  if (health === 'offline') {
    return (
      <div className="banner banner-error" role="alert">
        <span>
          Can't reach the backend. Retrying automatically; failed uploads and questions can be retried once it is back.
        </span>
        <button type="button" className="small" onClick={onRetry}>
          Retry now
        </button>
      </div>
    )
  }
  if (health === 'unavailable' && ready) {
    return (
      <div className="banner banner-warn" role="alert">
        <span>
          Search is unavailable:{' '}
          {Object.entries(ready.components)
            .filter(([, c]) => !c.ok)
            .map(([name, c]) => `${name} (${c.detail})`)
            .join(', ')}
          .
        </span>
        <button type="button" className="small" onClick={onRetry}>
          Retry
        </button>
      </div>
    )
  }
  return null
}
