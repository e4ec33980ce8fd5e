import { type RefObject, useEffect } from 'react'

/**
 * While `open`, calls `close` when a mouse press lands outside `root`; with `focus`, also when focus moves outside
 * it (keyboard users leaving a menu), and with `escape`, on Escape anywhere in the page. One listener set for every
 * popover, removed as soon as it closes.
 */
export function useDismiss(
  root: RefObject<HTMLElement | null>,
  open: boolean,
  close: () => void,
  { focus = false, escape = false }: { focus?: boolean; escape?: boolean } = {},
) {
  useEffect(() => {
    if (!open) return
    const outside = (e: Event) => {
      if (root.current && !root.current.contains(e.target as Node)) close()
    }
    const onKey = (e: KeyboardEvent) => e.key === 'Escape' && close()
    document.addEventListener('mousedown', outside)
    if (focus) document.addEventListener('focusin', outside)
    if (escape) document.addEventListener('keydown', onKey)
    return () => {
      document.removeEventListener('mousedown', outside)
      document.removeEventListener('focusin', outside)
      document.removeEventListener('keydown', onKey)
    }
  }, [root, open, close, focus, escape])
}
