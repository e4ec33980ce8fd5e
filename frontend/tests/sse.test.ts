import { describe, expect, it } from 'vitest'
import { SseParser, readSse } from '../src/api/sse'

function streamOf(chunks: string[]): ReadableStream<Uint8Array> {
  const enc = new TextEncoder()
  return new ReadableStream({
    start(c) {
      for (const chunk of chunks) c.enqueue(enc.encode(chunk))
      c.close()
    },
  })
}

describe('SseParser', () => {
  it('parses named events with JSON data', () => {
    const p = new SseParser()
    const events = p.push('event: results\ndata: {"results": []}\n\nevent: done\ndata: {}\n\n')
    expect(events).toEqual([
      { event: 'results', data: '{"results": []}' },
      { event: 'done', data: '{}' },
    ])
  })

  it('keeps partial lines and events across chunks, whatever the cut', () => {
    const text = 'event: token\ndata: {"text": "Hel"}\n\nevent: token\r\ndata: {"text": "lo"}\r\n\r\n'
    for (let cut = 1; cut < text.length; cut++) {
      const p = new SseParser()
      const events = [...p.push(text.slice(0, cut)), ...p.push(text.slice(cut)), ...p.end()]
      expect(events.map((e) => e.data)).toEqual(['{"text": "Hel"}', '{"text": "lo"}'])
    }
  })

  it('joins multi-line data, ignores comments and defaults the event name', () => {
    const p = new SseParser()
    expect(p.push(': keep-alive\ndata: a\ndata: b\nid: 7\n\n')).toEqual([{ event: 'message', data: 'a\nb', id: '7' }])
  })

  it('delivers a last event that lacks its blank line at end of stream', () => {
    const p = new SseParser()
    expect(p.push('event: done\ndata: {}')).toEqual([])
    expect(p.end()).toEqual([{ event: 'done', data: '{}' }])
  })

  it('skips events without data', () => {
    const p = new SseParser()
    expect(p.push('event: ping\n\n')).toEqual([])
  })
})

describe('readSse', () => {
  it('yields events from a byte stream split inside a multi-byte character', async () => {
    const bytes = new TextEncoder().encode('event: token\ndata: {"text": "é"}\n\n')
    const at = bytes.indexOf(0xc3) + 1
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(bytes.slice(0, at))
        c.enqueue(bytes.slice(at))
        c.close()
      },
    })
    const out = []
    for await (const ev of readSse(body)) out.push(ev)
    expect(out).toEqual([{ event: 'token', data: '{"text": "é"}' }])
  })

  it('reads a whole stream', async () => {
    const out = []
    for await (const ev of readSse(streamOf(['data: 1\n\n', 'data: 2\n', '\n']))) out.push(ev.data)
    expect(out).toEqual(['1', '2'])
  })
})
