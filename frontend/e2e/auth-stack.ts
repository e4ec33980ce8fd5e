// A second backend with accounts (AUTH_MODE=users and a first admin from ADMIN_EMAIL/ADMIN_PASSWORD), on the
// ml-api and Redis that global-setup.ts started, and the built page under `vite preview` in front of it: the
// stack `make dev AUTH_MODE=users` runs. OIDC sign-in goes to a real OpenID provider started here (PyPI
// oidc-provider-mock, from the backend's dev environment: Authlib's authorization server, signed ID tokens), with
// one predefined user whose groups map to editor. Started by the spec that needs it: other runs pay nothing for it.
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { baseEnv, freePort, start, stop, waitFor, type Service } from './global-setup'

const FRONTEND = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const ROOT = resolve(FRONTEND, '..')
const MODELS = join(ROOT, 'models')

export interface AuthStack {
  page: string
  backend: string
  admin: { email: string; password: string }
  /** The provider's predefined user (sub, e-mail, name), in group rag-editors. */
  oidcUser: { sub: string; email: string; name: string }
  close: () => Promise<void>
}

/** LOGIN_MAX_FAILURES here: low, so that the throttle is reached in a few tries. */
export const MAX_FAILURES = 3
export const OIDC_NAME = 'Example IdP'

export async function startAuthStack(): Promise<AuthStack> {
  const mlUrl = process.env.E2E_ML_URL
  const redisUrl = process.env.E2E_REDIS_URL
  if (!mlUrl || !redisUrl) {
    throw new Error('E2E_ML_URL / E2E_REDIS_URL unset: run through `npm run test:e2e` (global setup starts ml-api)')
  }
  const admin = { email: 'admin@example.com', password: `admin-${randomBytes(6).toString('hex')}` }
  const tmp = mkdtempSync(join(tmpdir(), 'rag-e2e-auth-'))
  const services: Service[] = []
  const close = async () => {
    await Promise.all(services.map(stop))
    rmSync(tmp, { recursive: true, force: true })
  }
  const oidcUser = { sub: 'olga-sub', email: 'olga@example.com', name: 'Olga Oidc' }
  try {
    const [backendPort, webPort, oidcPort] = [await freePort(), await freePort(), await freePort()]
    const claims = { ...oidcUser, email_verified: true, groups: ['staff', 'rag-editors'] }
    const oidc = start(
      'oidc-provider',
      join(ROOT, 'backend/.venv/bin/oidc-provider-mock'),
      ['--port', String(oidcPort), '--host', '127.0.0.1', '--user-claims', JSON.stringify(claims)],
      baseEnv(),
    )
    services.push(oidc)
    const issuer = `http://127.0.0.1:${oidcPort}`
    await waitFor(`${issuer}/.well-known/openid-configuration`, oidc, 30)
    const backend = start('backend-auth', join(ROOT, 'backend/.venv/bin/python'), ['-m', 'rag_backend', 'serve'], {
      ...baseEnv(),
      BACKEND_PORT: String(backendPort),
      BACKEND_HOST: '127.0.0.1',
      AUTH_MODE: 'users',
      ADMIN_EMAIL: admin.email,
      ADMIN_PASSWORD: admin.password,
      LOGIN_MAX_FAILURES: String(MAX_FAILURES),
      OIDC_ISSUER: issuer,
      OIDC_CLIENT_ID: 'rag-page',
      OIDC_CLIENT_SECRET: 'client-secret',
      OIDC_NAME,
      OIDC_ROLE_CLAIM: 'groups',
      OIDC_ROLE_MAP: 'rag-admins=admin,rag-editors=editor',
      DATA_DIR: join(tmp, 'backend'),
      EMBED_API_URL: mlUrl,
      RERANK_API_URL: mlUrl,
      REDIS_URL: redisUrl,
      CACHE_PREFIX: `${process.env.E2E_CACHE_PREFIX ?? 'e2e:'}auth:`,
      CHUNK_TOKENIZER: join(MODELS, 'all-MiniLM-L6-v2/tokenizer.json'),
      LLM_PROVIDERS: '',
      LOG_JSON: 'false',
    })
    services.push(backend)
    const backendUrl = `http://127.0.0.1:${backendPort}`
    const web = start(
      'web-auth',
      process.execPath,
      [join(FRONTEND, 'node_modules/vite/bin/vite.js'), 'preview', '--host', '127.0.0.1'],
      { ...baseEnv(), PORT: String(webPort), BACKEND_URL: backendUrl },
      FRONTEND,
    )
    services.push(web)
    await waitFor(`${backendUrl}/ready`, backend, 90)
    const page = `http://127.0.0.1:${webPort}`
    await waitFor(page, web, 30)
    return { page, backend: backendUrl, admin, oidcUser, close }
  } catch (err) {
    await close()
    throw err
  }
}
