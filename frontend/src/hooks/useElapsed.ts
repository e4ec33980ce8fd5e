import { useEffect, useState } from 'react'

/** Whole seconds since `since`, ticking while `active`. */
export function useElapsed(active: boolean, since: number): number {
  const [now, setNow] = useState(() => Date.now())
  useEffect(() => {
    if (!active) return
    const timer = setInterval(() => setNow(Date.now()), 1000)
    return () => clearInterval(timer)
  }, [active])
  return active ? Math.max(0, Math.floor((now - since) / 1000)) : 0
}
