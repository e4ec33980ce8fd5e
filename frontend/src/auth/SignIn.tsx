import { useEffect, useId, useRef, useState, type ComponentProps, type FormEvent } from 'react'
import { Logo } from '../components/Logo'
import { login, reason, type AuthOptions } from './api'

const FIELDS = {
  email: { label: 'E-mail', type: 'email', autoComplete: 'username', maxLength: 320 },
  password: { label: 'Password', type: 'password', autoComplete: 'current-password', maxLength: 1024 },
} as const

interface Props {
  options: AuthOptions
  /** Why the form is shown again (a session that ended, a refused OIDC sign-in). */
  notice: string | null
  onSignedIn: () => void
}

/** The sign-in page: e-mail and password, and "Sign in with <provider>" when OIDC is configured. */
export function SignIn({ options, notice, onSignedIn }: Props) {
  const id = useId()
  const [email, setEmail] = useState('')
  const [password, setPassword] = useState('')
  const [error, setError] = useState<string | null>(null)
  const [busy, setBusy] = useState(false)
  const emailRef = useRef<HTMLInputElement>(null)
  const passwordRef = useRef<HTMLInputElement>(null)
  const heading = useRef<HTMLHeadingElement>(null)

  useEffect(() => {
    // The page just changed under a keyboard or screen-reader user: start them at the form.
    if (options.password) emailRef.current?.focus()
    else heading.current?.focus()
  }, [options.password])

  async function submit(e: FormEvent) {
    e.preventDefault()
    if (!email.trim() || !password) {
      setError(!email.trim() ? 'Enter your e-mail address.' : 'Enter your password.')
      ;(!email.trim() ? emailRef : passwordRef).current?.focus()
      return
    }
    setBusy(true)
    setError(null)
    try {
      await login(email.trim(), password)
      onSignedIn()
    } catch (err) {
      const why = reason(err)
      setError(why.charAt(0).toUpperCase() + why.slice(1) + (why.endsWith('.') ? '' : '.'))
      setPassword('')
      passwordRef.current?.focus()
      setBusy(false)
    }
  }

  const message = error ?? notice
  // Both fields: invalid while an error shows, described by the message above the form.
  const described = {
    'aria-invalid': error ? true : undefined,
    'aria-describedby': message ? `${id}-error` : undefined,
  } as const
  return (
    <main className="auth-page">
      <div className="auth-card">
        <div className="auth-brand">
          <Logo />
          <span>Ask your documents</span>
        </div>
        <h1 ref={heading} tabIndex={-1}>
          Sign in
        </h1>
        {message && (
          <p className="field-error auth-error" id={`${id}-error`} role="alert">
            {message}
          </p>
        )}
        {options.password && (
          <form className="auth-form" onSubmit={submit} noValidate aria-label="Sign in with e-mail and password">
            <Field formId={id} name="email" ref={emailRef} value={email} onChange={setEmail} {...described} />
            <Field formId={id} name="password" ref={passwordRef} value={password} onChange={setPassword} {...described} />
            <button type="submit" className="primary" disabled={busy}>
              {busy ? 'Signing in…' : 'Sign in'}
            </button>
          </form>
        )}
        {options.oidc && (
          <>
            {options.password && <p className="auth-or">or</p>}
            {/* A plain link: the backend redirects to the provider and back with the session cookie. */}
            <a className="auth-sso" href={options.oidc.login_url}>
              Sign in with {options.oidc.name}
            </a>
          </>
        )}
        {!options.password && !options.oidc && (
          <p className="field-error" role="alert">
            No sign-in method is configured: ask your administrator.
          </p>
        )}
      </div>
    </main>
  )
}

type FieldProps = Omit<ComponentProps<'input'>, 'name' | 'value' | 'onChange'> & {
  /** The form's id: the input's is `${formId}-${name}`. */
  formId: string
  name: keyof typeof FIELDS
  value: string
  onChange: (value: string) => void
}

/** One of the form's inputs (see FIELDS), after its label. */
function Field({ formId, name, onChange, ...input }: FieldProps) {
  const { label, ...attrs } = FIELDS[name]
  return (
    <>
      <label htmlFor={`${formId}-${name}`}>{label}</label>
      <input id={`${formId}-${name}`} name={name} {...attrs} onChange={(e) => onChange(e.target.value)} {...input} />
    </>
  )
}
