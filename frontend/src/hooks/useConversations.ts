import { useCallback, useEffect, useState } from 'react'
import {
  createConversation,
  deleteConversation,
  getConversation,
  listConversations,
  renameConversation,
  unsupported,
  type Conversation,
  type ConversationSummary,
} from '../api/conversations'
import { isAbort, type ApiError } from '../api/client'
import { useStored } from './useStored'

/**
 * The saved conversations (the server keeps them; the page remembers only which one is open) and the current
 * one. `available` is false against a backend without the conversation routes: the page then asks without
 * history, as before.
 */
export function useConversations() {
  const [list, setList] = useState<ConversationSummary[] | null>(null)
  const [available, setAvailable] = useState(true)
  const [error, setError] = useState<ApiError | null>(null)
  const [currentId, setCurrentId] = useStored<string | null>('rag.conversation', null)

  const reload = useCallback(
    (signal?: AbortSignal) =>
      listConversations(signal).then(
        (got) => {
          setList(got)
          setAvailable(true)
          setError(null)
        },
        (err: unknown) => {
          if (isAbort(err)) return
          if (unsupported(err)) setAvailable(false)
          else setError(err as ApiError)
        },
      ),
    [],
  )

  useEffect(() => {
    const ctrl = new AbortController()
    listConversations(ctrl.signal).then(
      (got) => setList(got),
      (err: unknown) => {
        if (isAbort(err)) return
        if (unsupported(err)) setAvailable(false)
        else setError(err as ApiError)
      },
    )
    return () => ctrl.abort()
  }, [])

  /** The conversation a new question goes to: the open one, or one created now. */
  const ensure = useCallback(async (): Promise<string | undefined> => {
    if (!available) return undefined
    if (currentId) return currentId
    try {
      const made = await createConversation()
      setCurrentId(made.id)
      setList((l) => [made, ...(l ?? [])])
      return made.id
    } catch (err) {
      if (unsupported(err)) setAvailable(false)
      return undefined
    }
  }, [available, currentId, setCurrentId])

  const open = useCallback(
    (id: string, signal?: AbortSignal): Promise<Conversation> => {
      setCurrentId(id)
      return getConversation(id, signal)
    },
    [setCurrentId],
  )

  const rename = useCallback(async (id: string, title: string) => {
    const out = await renameConversation(id, title)
    setList((l) => (l ?? []).map((c) => (c.id === id ? { ...c, ...out, title: out.title ?? title } : c)))
  }, [])

  const remove = useCallback(
    async (id: string) => {
      await deleteConversation(id)
      setList((l) => (l ?? []).filter((c) => c.id !== id))
      if (currentId === id) setCurrentId(null)
    },
    [currentId, setCurrentId],
  )

  const startNew = useCallback(() => setCurrentId(null), [setCurrentId])

  return { list, available, error, currentId, reload, ensure, open, rename, remove, startNew }
}
