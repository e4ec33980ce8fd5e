import { useEffect, useId, useRef, useState, type FormEvent } from 'react'
import { createKey, listKeys, reason, revokeKey, type Key, type NewKey, type Scope } from '../../auth/api'
import { isAdmin, useAuth } from '../../auth/context'
import { useResource } from '../../hooks/useResource'
import { formatDate } from '../../lib/format'
import { ConfirmDialog } from '../ConfirmDialog'
import { AdminForm, AdminTable, Choice, ErrorMessage, RowAction, StatusMessage, useAction } from './common'

const SCOPES: Scope[] = ['read', 'write', 'admin']
const EXPIRY: [string, number | null][] = [
  ['Never', null],
  ['7 days', 7],
  ['30 days', 30],
  ['90 days', 90],
  ['1 year', 365],
]

/** API keys: one's own (admins: everyone's), a new one's token shown once with a copy button, revoke. */
export function KeysPanel() {
  const auth = useAuth()
  const id = useId()
  const list = useResource('admin:keys', listKeys)
  const keys = list.data
  const error = list.error ? reason(list.error) : null
  const [created, setCreated] = useState<NewKey | null>(null)
  const [pending, setPending] = useState<Key | null>(null)
  const revoking = useAction()
  const [status, setStatus] = useState('')
  const top = SCOPES.indexOf(auth.me?.scope ?? 'read')

  function revoke(key: Key) {
    void revoking.run(async () => {
      await revokeKey(key.id)
      setStatus(`Key ${key.name} was revoked.`)
      setPending(null)
      list.reload()
    })
  }

  return (
    <div className="admin-section">
      <NewKeyForm
        scopes={SCOPES.slice(0, top + 1)}
        onCreated={(k) => {
          setCreated(k)
          list.reload()
        }}
      />
      {created && <CreatedKey created={created} onDone={() => setCreated(null)} />}
      <h3 id={`${id}-list`}>{isAdmin(auth) ? 'All keys' : 'Your keys'}</h3>
      <ErrorMessage error={error} />
      <StatusMessage status={status} />
      <AdminTable
        items={keys}
        error={error}
        empty="No keys yet."
        labelledBy={`${id}-list`}
        columns={['Name', isAdmin(auth) && 'Owner', 'Scope', 'Starts with', 'Expires']}
        row={(k) => (
          <tr key={k.id} data-testid="key-row">
            <th scope="row">{k.name}</th>
            {isAdmin(auth) && <td>{k.owner}</td>}
            <td>{k.scope}</td>
            <td>
              <code>{k.prefix}…</code>
            </td>
            <td>{k.expires_at ? formatDate(k.expires_at) : 'Never'}</td>
            <td>
              <RowAction
                label={`Revoke key ${k.name}`}
                onClick={() => {
                  revoking.setError(null)
                  setPending(k)
                }}
              >
                Revoke
              </RowAction>
            </td>
          </tr>
        )}
      />
      {pending && (
        <ConfirmDialog
          title={`Revoke the key ${pending.name}?`}
          confirmLabel="Revoke"
          busy={revoking.busy}
          error={revoking.error}
          onConfirm={() => revoke(pending)}
          onCancel={() => setPending(null)}
        >
          <p>Programs that use it are refused from their next request. This cannot be undone.</p>
        </ConfirmDialog>
      )}
    </div>
  )
}

function NewKeyForm({ scopes, onCreated }: { scopes: Scope[]; onCreated: (k: NewKey) => void }) {
  const [name, setName] = useState('')
  const [scope, setScope] = useState<Scope>('read')
  const [days, setDays] = useState('')
  const creating = useAction()

  async function submit(e: FormEvent) {
    e.preventDefault()
    if (!name.trim()) return creating.setError('Give the key a name, to recognise it later.')
    await creating.run(async () => {
      const expires_at = days ? Date.now() / 1000 + Number(days) * 86400 : null
      onCreated(await createKey({ name: name.trim(), scope, expires_at }))
      setName('')
    })
  }

  return (
    <AdminForm
      title="Create an API key"
      error={creating.error}
      busy={creating.busy}
      submitLabel="Create key"
      busyLabel="Creating…"
      onSubmit={submit}
    >
      <label>
        Name
        <input value={name} onChange={(e) => setName(e.target.value)} maxLength={200} placeholder="e.g. ci" />
      </label>
      <Choice label="Scope" values={scopes} value={scope} onChange={setScope} />
      <label>
        Expires
        <select value={days} onChange={(e) => setDays(e.target.value)}>
          {EXPIRY.map(([label, d]) => (
            <option key={label} value={d ?? ''}>
              {label}
            </option>
          ))}
        </select>
      </label>
    </AdminForm>
  )
}

/** The token, this once: a read-only field (selectable by hand too) and a copy button. */
function CreatedKey({ created, onDone }: { created: NewKey; onDone: () => void }) {
  const id = useId()
  const field = useRef<HTMLInputElement>(null)
  const [copied, setCopied] = useState<string | null>(null)

  useEffect(() => {
    field.current?.focus()
    field.current?.select()
  }, [created])

  async function copy() {
    try {
      await navigator.clipboard.writeText(created.token)
      setCopied('Copied to the clipboard.')
    } catch {
      // No Clipboard API outside a secure context (plain http on another host): the older way still works there.
      field.current?.select()
      const ok = document.execCommand?.('copy') ?? false
      setCopied(ok ? 'Copied to the clipboard.' : 'Copying is blocked here: the token is selected, press Ctrl+C.')
    }
  }

  return (
    <div className="key-created" role="group" aria-labelledby={`${id}-h`}>
      <h3 id={`${id}-h`}>Key {created.name} created</h3>
      <p id={`${id}-once`}>Copy it now: it is shown only this once and cannot be recovered.</p>
      <div className="row">
        <label htmlFor={`${id}-token`} className="sr-only">
          Token of {created.name}
        </label>
        <input
          ref={field}
          id={`${id}-token`}
          className="key-token"
          readOnly
          value={created.token}
          aria-describedby={`${id}-once`}
          onFocus={(e) => e.currentTarget.select()}
        />
        <button type="button" className="primary" onClick={() => void copy()}>
          Copy
        </button>
        <button type="button" onClick={onDone}>
          Done
        </button>
      </div>
      <p className="muted" role="status">
        {copied}
      </p>
    </div>
  )
}
