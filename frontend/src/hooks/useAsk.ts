import { useCallback, useEffect, useRef, useState } from 'react'
import { ask, type AskEvent, type AskMode } from '../api/ask'
import { ApiError, isAbort } from '../api/client'
import { feedbackOf, type Feedback, type Message } from '../api/conversations'
import type { Citation, QueryResult, Timings } from '../api/types'

export type TurnStatus = 'searching' | 'answering' | 'done' | 'error' | 'stopped'

export interface AskSettings {
  collection: string
  generate: boolean
  topK: number
  /** The saved conversation the question belongs to (none: the backend keeps no history). */
  conversationId?: string
}

export interface Turn {
  id: number
  question: string
  settings: AskSettings
  status: TurnStatus
  mode: AskMode | null
  results: QueryResult[] | null
  answer: string
  citations: Citation[]
  provider: string | null
  note: string | null
  cached: boolean
  timings: Timings | null
  error: ApiError | null
  startedAt: number
  /** The stored answer's id (feedback goes to it) and what retrieval searched for, from the backend. */
  messageId: string | null
  searchQuery: string | null
  feedback: Feedback | null
}

let nextId = 1

/** What a turn holds of its answer before any of it comes (a new question, a retry). */
function unanswered(): Pick<
  Turn,
  'results' | 'answer' | 'citations' | 'note' | 'cached' | 'timings' | 'error' | 'messageId' | 'searchQuery' | 'feedback'
> {
  return {
    results: null,
    answer: '',
    citations: [],
    note: null,
    cached: false,
    timings: null,
    error: null,
    messageId: null,
    searchQuery: null,
    feedback: null,
  }
}

/** A turn for a question, with a new id and no answer yet. */
function newTurn(
  question: string,
  settings: AskSettings,
  state: Pick<Turn, 'status' | 'mode' | 'startedAt'> & Partial<Pick<Turn, 'searchQuery'>>,
): Turn {
  return { id: nextId++, question, settings, provider: null, ...unanswered(), ...state }
}

function apply(turn: Turn, ev: AskEvent): Turn {
  switch (ev.type) {
    case 'results':
      return {
        ...turn,
        results: ev.results,
        cached: ev.cached,
        messageId: ev.messageId ?? turn.messageId,
        searchQuery: ev.searchQuery ?? turn.searchQuery,
        status: turn.settings.generate ? 'answering' : turn.status,
      }
    case 'token':
      return { ...turn, answer: turn.answer + ev.text, status: 'answering' }
    case 'citations':
      return { ...turn, citations: ev.citations }
    case 'done':
      return {
        ...turn,
        status: 'done',
        answer: ev.answer ?? turn.answer,
        provider: ev.provider,
        cached: turn.cached || ev.cached,
        timings: ev.timings,
        note: ev.note,
        messageId: ev.messageId ?? turn.messageId,
        searchQuery: ev.searchQuery ?? turn.searchQuery,
      }
  }
}

/** The conversation: one question in flight at a time; a new one (or leaving the page) cancels it. */
export function useAsk() {
  const [turns, setTurns] = useState<Turn[]>([])
  const controller = useRef<AbortController | null>(null)

  useEffect(() => () => controller.current?.abort(), [])

  const update = useCallback((id: number, fn: (t: Turn) => Turn) => {
    setTurns((ts) => ts.map((t) => (t.id === id ? fn(t) : t)))
  }, [])

  const run = useCallback(
    async (id: number, question: string, settings: AskSettings) => {
      controller.current?.abort()
      const ctrl = new AbortController()
      controller.current = ctrl
      try {
        const mode = await ask(
          {
            query: question,
            collection: settings.collection,
            top_k: settings.topK,
            ...(settings.conversationId ? { conversation_id: settings.conversationId } : {}),
          },
          {
            generate: settings.generate,
            signal: ctrl.signal,
            onEvent: (ev) => update(id, (t) => apply(t, ev)),
          },
        )
        update(id, (t) => ({ ...t, mode }))
      } catch (err) {
        if (isAbort(err)) {
          update(id, (t) => (t.status === 'done' ? t : { ...t, status: 'stopped' }))
        } else {
          const error = err instanceof ApiError ? err : new ApiError(String(err), 0, 'client')
          update(id, (t) => ({ ...t, status: 'error', error }))
        }
      } finally {
        if (controller.current === ctrl) controller.current = null
      }
    },
    [update],
  )

  const submit = useCallback(
    (question: string, settings: AskSettings) => {
      const turn = newTurn(question, settings, { status: 'searching', mode: null, startedAt: Date.now() })
      setTurns((ts) => [...ts, turn])
      void run(turn.id, question, settings)
    },
    [run],
  )

  const retry = useCallback(
    (id: number) => {
      const turn = turns.find((t) => t.id === id)
      if (!turn) return
      update(id, (t) => ({ ...t, ...unanswered(), status: 'searching', startedAt: Date.now() }))
      void run(id, turn.question, turn.settings)
    },
    [turns, run, update],
  )

  const stop = useCallback(() => controller.current?.abort(), [])

  const clear = useCallback(() => {
    controller.current?.abort()
    setTurns([])
  }, [])

  /** Shows a saved conversation: its question/answer pairs become finished turns. */
  const load = useCallback((messages: Message[], settings: AskSettings) => {
    controller.current?.abort()
    setTurns(turnsFrom(messages, settings))
  }, [])

  const rate = useCallback((id: number, feedback: Feedback | null) => update(id, (t) => ({ ...t, feedback })), [update])

  const busy = turns.some((t) => t.status === 'searching' || t.status === 'answering')
  return { turns, busy, submit, retry, stop, clear, load, rate }
}

/** Pairs each stored question with the answer that follows it (an unanswered question is a stopped turn). */
export function turnsFrom(messages: Message[], settings: AskSettings): Turn[] {
  const out: Turn[] = []
  for (const m of messages) {
    if (m.role === 'user') {
      out.push(
        newTurn(m.content, settings, {
          status: 'stopped',
          mode: 'stream',
          startedAt: 0,
          searchQuery: m.search_query ?? null,
        }),
      )
    } else {
      const turn = out[out.length - 1]
      if (!turn || turn.status === 'done') continue
      Object.assign(turn, {
        status: 'done',
        answer: m.content,
        results: m.results ?? [],
        citations: m.citations ?? [],
        messageId: m.id,
        searchQuery: m.search_query ?? turn.searchQuery,
        feedback: feedbackOf(m),
      } satisfies Partial<Turn>)
    }
  }
  return out
}
