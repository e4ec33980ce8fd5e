import { useId, useState, type FormEvent } from 'react'
import { createUser, listUsers, reason, updateUser, type Role, type User } from '../../auth/api'
import { useAuth } from '../../auth/context'
import { useResource } from '../../hooks/useResource'
import { AdminForm, AdminTable, Choice, ErrorMessage, Options, RowAction, StatusMessage, useAction } from './common'

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
      <ErrorMessage error={error} />
      <StatusMessage status={status} />
      <AdminTable
        items={users}
        error={error}
        labelledBy={`${id}-list`}
        columns={['User', 'Role', 'Status']}
        row={(u) => {
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
                  <Options values={ROLES} />
                </select>
              </td>
              <td>{u.disabled ? <span className="badge badge-failed">Disabled</span> : 'Active'}</td>
              <td>
                {!self && (
                  <RowAction
                    label={`${u.disabled ? 'Enable' : 'Disable'} ${u.email}`}
                    danger={!u.disabled}
                    onClick={() =>
                      void change(u, { disabled: !u.disabled }, `${u.email} is ${u.disabled ? 'enabled' : 'disabled'}.`)
                    }
                  >
                    {u.disabled ? 'Enable' : 'Disable'}
                  </RowAction>
                )}
              </td>
            </tr>
          )
        }}
      />
    </div>
  )
}

function NewUser({ onCreated }: { onCreated: (u: User) => void }) {
  const [email, setEmail] = useState('')
  const [name, setName] = useState('')
  const [role, setRole] = useState<Role>('editor')
  const [password, setPassword] = useState('')
  const adding = useAction()

  async function submit(e: FormEvent) {
    e.preventDefault()
    if (!email.includes('@')) return adding.setError('Enter an e-mail address.')
    if (password && password.length < 8) return adding.setError('A password needs at least 8 characters.')
    await adding.run(async () => {
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
    })
  }

  return (
    <AdminForm
      title="Add a user"
      error={adding.error}
      busy={adding.busy}
      disabled={!email.trim()}
      submitLabel="Add user"
      busyLabel="Adding…"
      onSubmit={submit}
    >
      <label>
        E-mail
        <input type="email" value={email} onChange={(e) => setEmail(e.target.value)} maxLength={320} required />
      </label>
      <label>
        Name <span className="muted">(optional)</span>
        <input value={name} onChange={(e) => setName(e.target.value)} maxLength={200} />
      </label>
      <Choice label="Role" values={ROLES} value={role} onChange={setRole} />
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
    </AdminForm>
  )
}
