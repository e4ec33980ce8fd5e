import { useId, useState, type FormEvent } from 'react'
import { ApiError, COLLECTION_NAME, createCollection } from '../api/client'
import type { CollectionInfo } from '../api/types'

interface Props {
  value: string
  /** null while unknown (backend down): no counts are shown then. */
  collections: CollectionInfo[] | null
  onChange: (name: string) => void
  onCreated: () => void
  /** Viewers cannot create collections: the option is not offered. */
  canCreate?: boolean
}

const NEW = '\u0000new'

export function CollectionPicker({ value, collections, onChange, onCreated, canCreate = true }: Props) {
  const id = useId()
  const [creating, setCreating] = useState(false)
  const [name, setName] = useState('')
  const [error, setError] = useState<string | null>(null)
  const [busy, setBusy] = useState(false)
  // The active one is listed even before it exists: the backend creates it with its first upload.
  const names = (collections ?? []).map((c) => c.name)
  if (!names.includes(value)) names.unshift(value)
  const byName = new Map((collections ?? []).map((c) => [c.name, c]))

  async function create(e: FormEvent) {
    e.preventDefault()
    const wanted = name.trim()
    if (!COLLECTION_NAME.test(wanted)) {
      setError("1-64 letters, digits, '_', '-' or '.', starting with a letter or digit")
      return
    }
    setBusy(true)
    setError(null)
    try {
      await createCollection(wanted)
    } catch (err) {
      // Already there is as good as created: select it.
      if (!(err instanceof ApiError && err.status === 409)) {
        setError(err instanceof Error ? err.message : String(err))
        setBusy(false)
        return
      }
    }
    setBusy(false)
    setCreating(false)
    setName('')
    onCreated()
    onChange(wanted)
  }

  if (creating) {
    return (
      <form className="collection-new" onSubmit={create} aria-label="New collection">
        <label htmlFor={`${id}-new`}>New collection</label>
        <div className="row">
          <input
            id={`${id}-new`}
            value={name}
            onChange={(e) => setName(e.target.value)}
            placeholder="e.g. papers"
            autoFocus
            maxLength={64}
            aria-invalid={error ? true : undefined}
            aria-describedby={error ? `${id}-err` : undefined}
            onKeyDown={(e) => e.key === 'Escape' && setCreating(false)}
          />
          <button type="submit" className="primary" disabled={busy || !name.trim()}>
            Create
          </button>
          <button type="button" onClick={() => setCreating(false)}>
            Cancel
          </button>
        </div>
        {error && (
          <p className="field-error" id={`${id}-err`} role="alert">
            {error}
          </p>
        )}
      </form>
    )
  }

  return (
    <div className="collection-picker">
      <label htmlFor={id}>Collection</label>
      <select
        id={id}
        value={value}
        onChange={(e) => (e.target.value === NEW ? setCreating(true) : onChange(e.target.value))}
      >
        {names.map((n) => {
          const c = byName.get(n)
          return (
            <option key={n} value={n}>
              {c
                ? `${n} (${c.documents} ${c.documents === 1 ? 'doc' : 'docs'})`
                : collections
                  ? `${n} (empty)`
                  : n}
            </option>
          )
        })}
        {canCreate && <option value={NEW}>+ New collection…</option>}
      </select>
    </div>
  )
}
