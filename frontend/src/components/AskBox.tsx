import { useRef, useState, type FormEvent, type KeyboardEvent } from 'react'

export interface AskBoxProps {
  busy: boolean
  generate: boolean
  topK: number
  onGenerate: (on: boolean) => void
  onTopK: (k: number) => void
  onAsk: (question: string) => void
  onStop: () => void
}

const TOP_K = [3, 5, 8, 10, 20]

export function AskBox({ busy, generate, topK, onGenerate, onTopK, onAsk, onStop }: AskBoxProps) {
  const [text, setText] = useState('')
  const last = useRef('')
  const box = useRef<HTMLTextAreaElement>(null)

  function submit(e?: FormEvent) {
    e?.preventDefault()
    const q = text.trim()
    if (!q) return
    last.current = q
    onAsk(q)
    setText('')
    box.current?.focus()
  }

  function onKeyDown(e: KeyboardEvent<HTMLTextAreaElement>) {
    // Enter asks, Shift+Enter breaks the line; never while an IME is composing a character.
    if (e.key === 'Enter' && !e.shiftKey && !e.nativeEvent.isComposing) {
      e.preventDefault()
      submit()
    } else if (e.key === 'ArrowUp' && !text && last.current) {
      e.preventDefault()
      setText(last.current)
    } else if (e.key === 'Escape' && busy) {
      onStop()
    }
  }

  return (
    <form className="ask" onSubmit={submit} aria-label="Ask a question">
      <label htmlFor="question" className="sr-only">
        Question
      </label>
      <textarea
        id="question"
        ref={box}
        value={text}
        rows={1}
        onChange={(e) => setText(e.target.value)}
        onKeyDown={onKeyDown}
        placeholder="Ask a question about your documents…"
        aria-describedby="ask-hint"
        maxLength={8192}
        autoComplete="off"
      />
      <div className="ask-bar">
        <label className="switch">
          <input
            type="checkbox"
            role="switch"
            checked={generate}
            onChange={(e) => onGenerate(e.target.checked)}
          />
          <span className="track" aria-hidden="true" />
          Generate answer
        </label>
        <label className="topk">
          Passages
          <select value={topK} onChange={(e) => onTopK(Number(e.target.value))}>
            {TOP_K.map((k) => (
              <option key={k} value={k}>
                {k}
              </option>
            ))}
          </select>
        </label>
        <span id="ask-hint" className="hint">
          Enter to ask · Shift+Enter for a new line
        </span>
        {busy ? (
          <button type="button" className="danger-outline" onClick={onStop}>
            Stop
          </button>
        ) : (
          <button type="submit" className="primary" disabled={!text.trim()}>
            Ask
          </button>
        )}
      </div>
    </form>
  )
}
