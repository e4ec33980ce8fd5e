import { useCallback, useEffect, useRef, useState } from 'react'
import { ApiError, isAbort } from '../api/client'

export interface Resource<T> {
  data: T | null
  error: ApiError | null
  loading: boolean
  /** When the last answer (or failure) came, ms since epoch. */
  at: number | null
  reload: () => void
}

interface State<T> {
  key: string
  data: T | null
  error: ApiError | null
  loading: boolean
  at: number | null
}

const toApiError = (err: unknown): ApiError =>
  err instanceof ApiError ? err : new ApiError(String(err), 0, 'client')

/**
 * Loads `load` for `key`, keeps the last good data through failures (a stale list beats an empty one),
 * and reloads after `next(data, error)` ms when that is a number: polling that adapts to what it saw.
 */
export function useResource<T>(
  key: string,
  load: (signal: AbortSignal) => Promise<T>,
  next: (data: T | null, error: ApiError | null) => number | null = () => null,
): Resource<T> {
  const [tick, setTick] = useState(0)
  const [state, setState] = useState<State<T>>({ key, data: null, error: null, loading: true, at: null })
  const loadRef = useRef(load)
  const nextRef = useRef(next)
  useEffect(() => {
    loadRef.current = load
    nextRef.current = next
  })

  useEffect(() => {
    const controller = new AbortController()
    let timer: ReturnType<typeof setTimeout> | undefined
    const settle = (data: T | null, error: ApiError | null) => {
      setState((s) => ({
        key,
        data: error ? (s.key === key ? s.data : null) : data,
        error,
        loading: false,
        at: Date.now(),
      }))
      const ms = nextRef.current(data, error)
      if (ms !== null) timer = setTimeout(() => setTick((t) => t + 1), ms)
    }
    loadRef.current(controller.signal).then(
      (data) => settle(data, null),
      (err: unknown) => {
        if (!isAbort(err)) settle(null, toApiError(err))
      },
    )
    return () => {
      controller.abort()
      clearTimeout(timer)
    }
  }, [key, tick])

  const reload = useCallback(() => {
    setState((s) => ({ ...s, loading: true }))
    setTick((t) => t + 1)
  }, [])
  // A new key shows nothing of the old one while it loads.
  const current = state.key === key
  return {
    data: current ? state.data : null,
    error: current ? state.error : null,
    loading: current ? state.loading : true,
    at: state.at,
    reload,
  }
}
