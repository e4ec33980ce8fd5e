import { useCallback, useId, useRef, useState } from 'react'
import { useDismiss } from '../hooks/useDismiss'
import { reason } from './api'
import { useAuth } from './context'

const ROLE_LABEL = { admin: 'Admin', editor: 'Editor', viewer: 'Viewer' } as const

/**
 * Who is signed in, with the admin view and sign-out behind a disclosure button. Renders nothing without
 * accounts (AUTH_MODE=none).
 */
export function UserMenu() {
  const auth = useAuth()
  const id = useId()
  const [open, setOpen] = useState(false)
  const [error, setError] = useState<string | null>(null)
  const root = useRef<HTMLDivElement>(null)
  const button = useRef<HTMLButtonElement>(null)

  const close = useCallback(() => setOpen(false), [])
  useDismiss(root, open, close, { focus: true })

  if (auth.mode === 'none' || !auth.me) return null
  const { me } = auth
  const label = me.name || me.email || 'Operator'
  const admin = me.scope === 'admin'

  return (
    <div
      className="user-menu"
      ref={root}
      onKeyDown={(e) => {
        if (e.key === 'Escape' && open) {
          setOpen(false)
          button.current?.focus()
        }
      }}
    >
      <button
        ref={button}
        type="button"
        className="user-button"
        aria-expanded={open}
        aria-controls={`${id}-panel`}
        onClick={() => setOpen((o) => !o)}
      >
        <span className="user-avatar" aria-hidden="true">
          {label.slice(0, 1).toUpperCase()}
        </span>
        <span className="user-name">{label}</span>
        <span className="role-badge">{ROLE_LABEL[me.role]}</span>
      </button>
      {open && (
        <div className="user-panel" id={`${id}-panel`}>
          <p className="user-who">
            <span className="user-full">{me.name || me.email || 'Operator key'}</span>
            {me.name && me.email && <span className="muted">{me.email}</span>}
            <span className="muted">
              Role: {ROLE_LABEL[me.role]}
              {me.scope !== (me.role === 'viewer' ? 'read' : me.role === 'editor' ? 'write' : 'admin')
                ? ` (this key: ${me.scope})`
                : ''}
            </span>
          </p>
          {me.via === 'session' && (
            <button
              type="button"
              onClick={() => {
                setOpen(false)
                auth.openAdmin(button.current)
              }}
            >
              {admin ? 'Admin: users, keys, members' : 'API keys and members'}
            </button>
          )}
          {me.via === 'session' && (
            <button
              type="button"
              onClick={async () => {
                setError(null)
                try {
                  await auth.signOut()
                } catch (err) {
                  setError(reason(err))
                }
              }}
            >
              Sign out
            </button>
          )}
          {error && (
            <p className="field-error" role="alert">
              {error}
            </p>
          )}
        </div>
      )}
    </div>
  )
}
