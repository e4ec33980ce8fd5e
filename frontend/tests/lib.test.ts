import { describe, expect, it } from 'vitest'
import { formatBytes, formatMs, formatScore, timingParts } from '../src/lib/format'
import { linkMarkers, segments } from '../src/lib/markers'
import { locate, matchRuns, sliceByCodePoints } from '../src/lib/passage'

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

describe('passages', () => {
  it('slices by code points, as the backend counts', () => {
    const text = 'a😀b passage c'
    // Python: text[4:11] == 'passage'; UTF-16 indices would be off by one after the emoji.
    expect(sliceByCodePoints(text, 4, 11)).toEqual({ before: 'a😀b ', passage: 'passage', after: ' c' })
    expect(sliceByCodePoints(text, 4, 99)).toBeNull()
    expect(sliceByCodePoints(text, 5, 5)).toBeNull()
  })

  it('falls back to searching for the passage when offsets are missing or wrong', () => {
    expect(locate('one two three', null, null, 'two')?.passage).toBe('two')
    expect(locate('one two three', 50, 60, ' two ')?.before).toBe('one ')
    expect(locate('one two three', null, null, 'four')).toBeNull()
  })

  it('finds the text runs of a PDF page that hold a passage, whitespace aside', () => {
    const runs = ['Volcanoes', ' ', 'erupt when', 'magma rises.', 'Other text.']
    expect(matchRuns(runs, 'erupt when magma\nrises.')).toEqual([2, 3])
    // A passage that began on the page before: found by its end.
    expect(matchRuns(runs, 'the page before ends here. Volcanoes erupt')).toEqual([0, 2])
    expect(matchRuns(runs, 'nowhere at all')).toEqual([])
  })
})

describe('linkMarkers', () => {
  it('links markers outside code, and leaves links and code alone', () => {
    expect(linkMarkers('Light [1, 2]. See [docs](http://x) and `a[1]`.')).toBe(
      'Light [1](#cite-1)[2](#cite-2). See [docs](http://x) and `a[1]`.',
    )
    expect(linkMarkers('```\nx[3]\n```\nok [3]')).toBe('```\nx[3]\n```\nok [3](#cite-3)')
  })
})
