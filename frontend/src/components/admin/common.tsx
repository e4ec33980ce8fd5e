// The pieces the admin panels (keys, users, members) share: messages, the form, the table, one action's state.
import { useId, useState, type FormEvent, type ReactNode } from 'react'
import { reason } from '../../auth/api'

/** An error, announced when it appears; nothing without one. */
export function ErrorMessage({ error }: { error: string | null }) {
  return error ? (
    <p className="field-error" role="alert">
      {error}
    </p>
  ) : null
}

/** What the last action did, for screen readers (the page shows it otherwise). */
export function StatusMessage({ status }: { status: string }) {
  return (
    <p className="sr-only" role="status">
      {status}
    </p>
  )
}

/** A select's options, each value its own label. */
export function Options({ values }: { values: readonly string[] }) {
  return values.map((v) => (
    <option key={v} value={v}>
      {v}
    </option>
  ))
}

/** A form's choice of one of a few values, each its own label. */
export function Choice<T extends string>({
  label,
  values,
  value,
  onChange,
}: {
  label: string
  values: readonly T[]
  value: T
  onChange: (value: T) => void
}) {
  return (
    <label>
      {label}
      <select value={value} onChange={(e) => onChange(e.target.value as T)}>
        <Options values={values} />
      </select>
    </label>
  )
}

/** An action's state: busy while it runs, and why it failed (the caller may set its own error, too). */
export function useAction() {
  const [busy, setBusy] = useState(false)
  const [error, setError] = useState<string | null>(null)

  async function run(action: () => Promise<void>) {
    setBusy(true)
    setError(null)
    try {
      await action()
    } catch (err) {
      setError(reason(err))
    } finally {
      setBusy(false)
    }
  }

  return { busy, error, setError, run }
}

interface FormProps {
  title: ReactNode
  /** The fields, each a <label> around its input. */
  children: ReactNode
  error: string | null
  busy: boolean
  /** Disabled besides while busy (a required field still empty). */
  disabled?: boolean
  submitLabel: string
  busyLabel: string
  onSubmit: (e: FormEvent) => void
}

/** A panel's form: its heading, the fields in a row, the error and the submit button (which says when busy). */
export function AdminForm({ title, children, error, busy, disabled, submitLabel, busyLabel, onSubmit }: FormProps) {
  const id = useId()
  return (
    <form className="admin-form" onSubmit={onSubmit} noValidate aria-labelledby={`${id}-h`}>
      <h3 id={`${id}-h`}>{title}</h3>
      <div className="admin-fields">{children}</div>
      <ErrorMessage error={error} />
      <button type="submit" className="primary" disabled={busy || disabled}>
        {busy ? busyLabel : submitLabel}
      </button>
    </form>
  )
}

interface TableProps<T> {
  /** null while loading: "Loading…", or nothing when the error says why it did not come. */
  items: T[] | null
  error: string | null
  /** Said instead of an empty table (none: the table, with no rows). */
  empty?: string
  labelledBy: string
  /** The column headings (false: a column left out), before the last one, of each row's actions. */
  columns: (string | false)[]
  /** Each item's <tr>, with its key. */
  row: (item: T) => ReactNode
}

/** A panel's list, as a table whose first cell in a row names it and whose last holds its actions. */
export function AdminTable<T>({ items, error, empty, labelledBy, columns, row }: TableProps<T>) {
  if (items === null) return !error && <p className="muted">Loading…</p>
  if (empty !== undefined && items.length === 0) return <p className="muted">{empty}</p>
  return (
    <div className="admin-table-wrap">
      <table className="admin-table" aria-labelledby={labelledBy}>
        <thead>
          <tr>
            {columns.map(
              (c) =>
                c && (
                  <th key={c} scope="col">
                    {c}
                  </th>
                ),
            )}
            <th scope="col">
              <span className="sr-only">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>{items.map(row)}</tbody>
      </table>
    </div>
  )
}

/** A row's action (revoke, disable, remove), named for the row it acts on; red-outlined where it takes away. */
export function RowAction({
  label,
  danger = true,
  onClick,
  children,
}: {
  label: string
  danger?: boolean
  onClick: () => void
  children: ReactNode
}) {
  return (
    <button type="button" className={danger ? 'small danger-outline' : 'small'} aria-label={label} onClick={onClick}>
      {children}
    </button>
  )
}
