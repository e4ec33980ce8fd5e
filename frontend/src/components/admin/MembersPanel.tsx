import { useEffect, useId, useState, type FormEvent } from 'react'
import { listCollections } from '../../api/client'
import type { CollectionInfo } from '../../api/types'
import { listMembers, reason, removeMember, setMember, type Grant, type Member } from '../../auth/api'
import { canManage, isAdmin, useAuth } from '../../auth/context'
import { useResource } from '../../hooks/useResource'
import { AdminForm, AdminTable, ErrorMessage, RowAction, StatusMessage, useAction } from './common'

/** Who besides its owner may read or write a collection: for its owner and for admins. */
export function MembersPanel() {
  const auth = useAuth()
  const id = useId()
  const [collections, setCollections] = useState<CollectionInfo[] | null>(null)
  const [name, setName] = useState('')
  const [error, setError] = useState<string | null>(null)

  useEffect(() => {
    const ctl = new AbortController()
    listCollections(ctl.signal)
      .then((all) => {
        const mine = all.filter((c) => canManage(auth, c))
        setCollections(mine)
        setName((n) => n || mine[0]?.name || '')
      })
      .catch((err) => {
        if (!ctl.signal.aborted) setError(reason(err))
      })
    return () => ctl.abort()
  }, [auth])

  if (error) return <ErrorMessage error={error} />
  if (collections === null) return <p className="muted">Loading…</p>
  if (collections.length === 0) {
    return (
      <p className="muted">
        {isAdmin(auth)
          ? 'No collections yet.'
          : 'You own no collection yet: the collections you create are yours to share.'}
      </p>
    )
  }
  return (
    <div className="admin-section">
      <div className="admin-fields">
        <label htmlFor={`${id}-collection`}>Collection</label>
        <select id={`${id}-collection`} value={name} onChange={(e) => setName(e.target.value)}>
          {collections.map((c) => (
            <option key={c.name} value={c.name}>
              {c.name}
              {c.owner ? ` (owner: ${c.owner})` : ''}
            </option>
          ))}
        </select>
      </div>
      {name && <Members key={name} collection={name} />}
    </div>
  )
}

function Members({ collection }: { collection: string }) {
  const id = useId()
  const list = useResource(`admin:members:${collection}`, (signal) => listMembers(collection, signal))
  const members = list.data
  const action = useAction()
  const error = action.error ?? (list.error ? reason(list.error) : null)
  const [email, setEmail] = useState('')
  const [access, setAccess] = useState<Grant>('read')
  const [status, setStatus] = useState('')

  async function grant(e: FormEvent) {
    e.preventDefault()
    if (!email.includes('@')) return action.setError('Enter the e-mail address of a user.')
    await action.run(async () => {
      const m = await setMember(collection, email.trim(), access)
      setStatus(`${m.email} may now ${m.access === 'write' ? 'read and write' : 'read'} ${collection}.`)
      setEmail('')
      list.reload()
    })
  }

  async function remove(m: Member) {
    action.setError(null)
    try {
      await removeMember(collection, m.email)
      setStatus(`${m.email} was removed from ${collection}.`)
      list.reload()
    } catch (err) {
      action.setError(`${m.email}: ${reason(err)}`)
    }
  }

  return (
    <>
      <AdminForm
        title={`Grant access to ${collection}`}
        error={error}
        busy={action.busy}
        disabled={!email.trim()}
        submitLabel="Grant"
        busyLabel="Granting…"
        onSubmit={grant}
      >
        <label>
          User's e-mail
          <input type="email" value={email} onChange={(e) => setEmail(e.target.value)} maxLength={320} />
        </label>
        <label>
          Access
          <select value={access} onChange={(e) => setAccess(e.target.value as Grant)}>
            <option value="read">read</option>
            <option value="write">read and write</option>
          </select>
        </label>
      </AdminForm>
      <StatusMessage status={status} />
      <h3 id={`${id}-list`}>Members of {collection}</h3>
      <AdminTable
        items={members}
        error={error}
        empty="Only its owner (and admins) can use it."
        labelledBy={`${id}-list`}
        columns={['User', 'Access']}
        row={(m) => (
          <tr key={m.email} data-testid="member-row">
            <th scope="row">
              {m.email}
              {m.name && <span className="muted"> {m.name}</span>}
            </th>
            <td>{m.access === 'write' ? 'read and write' : 'read'}</td>
            <td>
              <RowAction label={`Remove ${m.email} from ${collection}`} onClick={() => void remove(m)}>
                Remove
              </RowAction>
            </td>
          </tr>
        )}
      />
    </>
  )
}
