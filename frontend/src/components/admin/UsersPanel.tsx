import { useId, useState, type FormEvent } from 'react'
import { createUser, listUsers, reason, updateUser, type Role, type User } from '../../auth/api'
import { useAuth } from '../../auth/context'
import { useResource } from '../../hooks/useResource'

const ROLES: Role[] = ['viewer', 'editor', 'admin']

/** Admins: every user, with role and disabled editable in place, and a form to add one. */
export function UsersPanel() {
  const { me } = useAuth()
  const id = useId()
  const list = useResource('admin:users', listUsers)
  const users = list.data
  const [failed, setFailed] = useState<string | null>(null)
  const [status, setStatus] = useState('')
  const error = failed ?? (list.error ? reason(list.error) : null)

  async function change(user: User, body: { role?: Role; disabled?: boolean }, done: string) {
    setFailed(null)
    try {
      await updateUser(user.email, body)
      setStatus(done)
    } catch (err) {
      setFailed(`${user.email}: ${reason(err)}`)
    }
    list.reload()
  }

  return (
    <div className="admin-section">
      <NewUser
        onCreated={(u) => {
          setStatus(`${u.email} was added as ${u.role}.`)
          list.reload()
        }}
      />
      <h3 id={`${id}-list`}>Users</h3>
      {error && (
        <p className="field-error" role="alert">
          {error}
        </p>
      )}
      <p className="sr-only" role="status">
        {status}
      </p>
      {users === null ? (
        !error && <p className="muted">Loading…</p>
      ) : (
        <div className="admin-table-wrap">
          <table className="admin-table" aria-labelledby={`${id}-list`}>
            <thead>
              <tr>
                <th scope="col">User</th>
                <th scope="col">Role</th>
                <th scope="col">Status</th>
                <th scope="col">
                  <span className="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {users.map((u) => {
                const self = u.email === me?.email
                return (
                  <tr key={u.email} data-testid="user-row">
                    <th scope="row">
                      <span className="admin-primary">{u.email}</span>
                      {u.name && <span className="muted"> {u.name}</span>}
                      {u.sso && <span className="muted"> (SSO)</span>}
                    </th>
                    <td>
                      <select
                        aria-label={`Role of ${u.email}`}
                        value={u.role}
                        disabled={self}
                        title={self ? 'Another admin can change your role' : undefined}
                        onChange={(e) =>
                          void change(u, { role: e.target.value as Role }, `${u.email} is now ${e.target.value}.`)
                        }
                      >
                        {ROLES.map((r) => (
                          <option key={r} value={r}>
                            {r}
                          </option>
                        ))}
                      </select>
                    </td>
                    <td>{u.disabled ? <span className="badge badge-failed">Disabled</span> : 'Active'}</td>
                    <td>
                      {!self && (
                        <button
                          type="button"
                          className={u.disabled ? 'small' : 'small danger-outline'}
                          aria-label={`${u.disabled ? 'Enable' : 'Disable'} ${u.email}`}
                          onClick={() =>
                            void change(
                              u,
                              { disabled: !u.disabled },
                              `${u.email} is ${u.disabled ? 'enabled' : 'disabled'}.`,
                            )
                          }
                        >
                          {u.disabled ? 'Enable' : 'Disable'}
                        </button>
                      )}
                    </td>
                  </tr>
                )
              })}
            </tbody>
          </table>
        </div>
      )}
    </div>
  )
}

function NewUser({ onCreated }: { onCreated: (u: User) => void }) {
  const id = useId()
  const [email, setEmail] = useState('')
  const [name, setName] = useState('')
  const [role, setRole] = useState<Role>('editor')
  const [password, setPassword] = useState('')
  const [error, setError] = useState<string | null>(null)
  const [busy, setBusy] = useState(false)

  async function submit(e: FormEvent) {
    e.preventDefault()
    if (!email.includes('@')) return setError('Enter an e-mail address.')
    if (password && password.length < 8) return setError('A password needs at least 8 characters.')
    setBusy(true)
    setError(null)
    try {
      const user = await createUser({
        email: email.trim(),
        role,
        ...(password ? { password } : {}),
        ...(name.trim() ? { name: name.trim() } : {}),
      })
      setEmail('')
      setName('')
      setPassword('')
      onCreated(user)
    } catch (err) {
      setError(reason(err))
    } finally {
      setBusy(false)
    }
  }

  return (
    <form className="admin-form" onSubmit={submit} noValidate aria-labelledby={`${id}-h`}>
      <h3 id={`${id}-h`}>Add a user</h3>
      <div className="admin-fields">
        <label>
          E-mail
          <input type="email" value={email} onChange={(e) => setEmail(e.target.value)} maxLength={320} required />
        </label>
        <label>
          Name <span className="muted">(optional)</span>
          <input value={name} onChange={(e) => setName(e.target.value)} maxLength={200} />
        </label>
        <label>
          Role
          <select value={role} onChange={(e) => setRole(e.target.value as Role)}>
            {ROLES.map((r) => (
              <option key={r} value={r}>
                {r}
              </option>
            ))}
          </select>
        </label>
        <label>
          Password <span className="muted">(none: OIDC sign-in only)</span>
          <input
            type="password"
            autoComplete="new-password"
            value={password}
            onChange={(e) => setPassword(e.target.value)}
            maxLength={1024}
            minLength={8}
          />
        </label>
      </div>
      {error && (
        <p className="field-error" role="alert">
          {error}
        </p>
      )}
      <button type="submit" className="primary" disabled={busy || !email.trim()}>
        {busy ? 'Adding…' : 'Add user'}
      </button>
    </form>
  )
}
