import { useCallback, useState } from 'react'

/** useState that survives a reload (localStorage), for small preferences only. */
export function useStored<T>(key: string, initial: T): [T, (value: T) => void] {
  const [value, setValue] = useState<T>(() => {
    try {
      const raw = localStorage.getItem(key)
      return raw === null ? initial : (JSON.parse(raw) as T)
    } catch {
      return initial
    }
  })
  const set = useCallback(
    (next: T) => {
      setValue(next)
      try {
        localStorage.setItem(key, JSON.stringify(next))
      } catch {
        // Private mode or full storage: the preference just isn't kept.
      }
    },
    [key],
  )
  return [value, set]
}
