export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 0) return '–'
  if (bytes < 1024) return `${bytes} B`
  const units = ['KB', 'MB', 'GB', 'TB']
  let value = bytes / 1024
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit += 1
  }
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`
}

export function formatMs(ms: number): string {
  if (!Number.isFinite(ms)) return '–'
  if (ms < 1) return '<1 ms'
  if (ms < 1000) return `${Math.round(ms)} ms`
  return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`
}

const TIMING_LABELS: Record<string, string> = {
  embed_ms: 'embed',
  search_ms: 'search',
  rerank_ms: 'rerank',
  generate_ms: 'answer',
  total_ms: 'total',
}

/** Timings in pipeline order, total last; unknown keys keep their own names. */
export function timingParts(timings: Record<string, number>): string[] {
  const keys = Object.keys(timings).filter((k) => typeof timings[k] === 'number')
  const order = Object.keys(TIMING_LABELS)
  keys.sort((a, b) => {
    const ia = order.indexOf(a)
    const ib = order.indexOf(b)
    return (ia === -1 ? order.length - 1 : ia) - (ib === -1 ? order.length - 1 : ib)
  })
  return keys.map((k) => `${TIMING_LABELS[k] ?? k.replace(/_ms$/, '')} ${formatMs(timings[k])}`)
}

export function formatScore(score: number | null | undefined): string {
  return typeof score === 'number' && Number.isFinite(score) ? score.toFixed(2) : '–'
}

export function formatDate(seconds: number): string {
  const d = new Date(seconds * 1000)
  return Number.isNaN(d.getTime()) ? '' : d.toLocaleString()
}

export const STATUS_LABELS: Record<string, string> = {
  queued: 'Queued',
  parsing: 'Parsing',
  chunking: 'Chunking',
  embedding: 'Embedding',
  indexing: 'Indexing',
  ready: 'Ready',
  failed: 'Failed',
  deleting: 'Deleting',
  rejected: 'Rejected',
}
