// A Server-Sent Events parser for fetch() bodies: EventSource cannot POST a JSON body or be told about
// AbortController, so the stream is read by hand (https://html.spec.whatwg.org/#event-stream-interpretation).

export interface SseEvent {
  event: string
  data: string
  id?: string
}

/** Incremental parser: feed it decoded text in any chunking, get complete events back. */
export class SseParser {
  private buffer = ''
  private event = ''
  private data: string[] = []
  private id: string | undefined

  push(text: string): SseEvent[] {
    this.buffer += text
    const out: SseEvent[] = []
    // A trailing '\r' may be the first half of '\r\n': keep it until the next chunk says.
    const lines = this.buffer.split(/\r\n|\r(?!$)|\n/)
    this.buffer = lines.pop() ?? ''
    for (const line of lines) {
      const ev = this.line(line)
      if (ev) out.push(ev)
    }
    return out
  }

  /** End of stream: an event without its closing blank line is still delivered. */
  end(): SseEvent[] {
    const out: SseEvent[] = []
    const rest = this.buffer.replace(/\r$/, '')
    this.buffer = ''
    if (rest) {
      const ev = this.line(rest)
      if (ev) out.push(ev)
    }
    const last = this.line('')
    if (last) out.push(last)
    return out
  }

  private line(line: string): SseEvent | null {
    if (line === '') {
      if (this.data.length === 0) {
        this.event = ''
        return null
      }
      const ev: SseEvent = { event: this.event || 'message', data: this.data.join('\n') }
      if (this.id !== undefined) ev.id = this.id
      this.event = ''
      this.data = []
      return ev
    }
    if (line.startsWith(':')) return null
    const colon = line.indexOf(':')
    const field = colon === -1 ? line : line.slice(0, colon)
    let value = colon === -1 ? '' : line.slice(colon + 1)
    if (value.startsWith(' ')) value = value.slice(1)
    if (field === 'event') this.event = value
    else if (field === 'data') this.data.push(value)
    else if (field === 'id') this.id = value
    return null
  }
}

/** Yields the events of a streamed response body as they arrive. */
export async function* readSse(body: ReadableStream<Uint8Array>): AsyncGenerator<SseEvent> {
  const reader = body.getReader()
  const decoder = new TextDecoder()
  const parser = new SseParser()
  let finished = false
  try {
    for (;;) {
      const { done, value } = await reader.read()
      if (done) break
      yield* parser.push(decoder.decode(value, { stream: true }))
    }
    finished = true
    yield* parser.push(decoder.decode())
    yield* parser.end()
  } finally {
    // The consumer stopped early (a new question, an error event): close the connection too.
    if (!finished) reader.cancel().catch(() => undefined)
    reader.releaseLock()
  }
}
