import { useEffect, useId, useRef, useState, type KeyboardEvent } from 'react'
import { isAdmin, useAuth } from '../../auth/context'
import { KeysPanel } from './KeysPanel'
import { MembersPanel } from './MembersPanel'
import { UsersPanel } from './UsersPanel'
import './admin.css'

type Tab = 'users' | 'keys' | 'members'
const LABELS: Record<Tab, string> = { users: 'Users', keys: 'API keys', members: 'Collection members' }

/**
 * The admin view, a modal dialog: users (admins only), API keys (one's own; admins see everyone's) and the members
 * of the collections one owns (admins: every collection). The backend enforces the same; this only shows what
 * it would allow.
 */
export function AdminDialog({ onClose }: { onClose: () => void }) {
  const auth = useAuth()
  const id = useId()
  const ref = useRef<HTMLDialogElement>(null)
  const tabs: Tab[] = isAdmin(auth) ? ['users', 'keys', 'members'] : ['keys', 'members']
  const [tab, setTab] = useState<Tab>(tabs[0])
  const tabRefs = useRef<Partial<Record<Tab, HTMLButtonElement | null>>>({})

  useEffect(() => {
    const dialog = ref.current
    if (dialog && !dialog.open) dialog.showModal()
    return () => dialog?.close()
  }, [])

  // Tabs as the ARIA pattern has them: one Tab stop, arrows move between them.
  function onTabKey(e: KeyboardEvent) {
    const i = tabs.indexOf(tab)
    const next =
      e.key === 'ArrowRight' ? tabs[(i + 1) % tabs.length]
      : e.key === 'ArrowLeft' ? tabs[(i - 1 + tabs.length) % tabs.length]
      : e.key === 'Home' ? tabs[0]
      : e.key === 'End' ? tabs[tabs.length - 1]
      : null
    if (!next) return
    e.preventDefault()
    setTab(next)
    tabRefs.current[next]?.focus()
  }

  return (
    <dialog
      ref={ref}
      className="dialog admin-dialog"
      aria-labelledby={`${id}-title`}
      onCancel={(e) => {
        e.preventDefault()
        onClose()
      }}
    >
      <div className="admin-head">
        <h2 id={`${id}-title`}>{isAdmin(auth) ? 'Administration' : 'Your access'}</h2>
        <button type="button" className="small" onClick={onClose}>
          Close
        </button>
      </div>
      <div className="admin-tabs" role="tablist" aria-label="Sections" onKeyDown={onTabKey}>
        {tabs.map((t) => (
          <button
            key={t}
            ref={(el) => {
              tabRefs.current[t] = el
            }}
            type="button"
            role="tab"
            id={`${id}-tab-${t}`}
            aria-selected={tab === t}
            aria-controls={`${id}-panel`}
            tabIndex={tab === t ? 0 : -1}
            onClick={() => setTab(t)}
          >
            {LABELS[t]}
          </button>
        ))}
      </div>
      <div className="admin-panel" role="tabpanel" id={`${id}-panel`} aria-labelledby={`${id}-tab-${tab}`}>
        {tab === 'users' && <UsersPanel />}
        {tab === 'keys' && <KeysPanel />}
        {tab === 'members' && <MembersPanel />}
      </div>
    </dialog>
  )
}
