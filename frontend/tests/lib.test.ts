import { describe, expect, it } from 'vitest'
import { formatBytes, formatMs, formatScore, timingParts } from '../src/lib/format'
import { segments } from '../src/lib/markers'

describe('segments', () => {
  it('splits text and markers', () => {
    expect(segments('Cells convert light [1]. Heat lowers output [2][3].')).toEqual([
      { kind: 'text', text: 'Cells convert light ' },
      { kind: 'cite', marker: 1 },
      { kind: 'text', text: '. Heat lowers output ' },
      { kind: 'cite', marker: 2 },
      { kind: 'cite', marker: 3 },
      { kind: 'text', text: '.' },
    ])
  })

  it('reads comma lists and leaves other brackets alone', () => {
    expect(segments('see [1, 2] and [a] [12345]')).toEqual([
      { kind: 'text', text: 'see ' },
      { kind: 'cite', marker: 1 },
      { kind: 'cite', marker: 2 },
      { kind: 'text', text: ' and [a] [12345]' },
    ])
  })

  it('handles an empty answer', () => {
    expect(segments('')).toEqual([])
  })
})

describe('format', () => {
  it('formats sizes', () => {
    expect(formatBytes(512)).toBe('512 B')
    expect(formatBytes(1536)).toBe('1.5 KB')
    expect(formatBytes(50 * 1024 * 1024)).toBe('50 MB')
  })

  it('formats durations', () => {
    expect(formatMs(0.4)).toBe('<1 ms')
    expect(formatMs(12.6)).toBe('13 ms')
    expect(formatMs(1234)).toBe('1.23 s')
  })

  it('orders timings along the pipeline, total last', () => {
    expect(timingParts({ total_ms: 900, rerank_ms: 800, embed_ms: 12, search_ms: 2, generate_ms: 50 })).toEqual([
      'embed 12 ms',
      'search 2 ms',
      'rerank 800 ms',
      'answer 50 ms',
      'total 900 ms',
    ])
  })

  it('formats scores', () => {
    expect(formatScore(0.934)).toBe('0.93')
    expect(formatScore(null)).toBe('–')
  })
})
