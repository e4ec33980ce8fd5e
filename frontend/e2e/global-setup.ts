// Starts the real stack for the browser tests: ml-api (real models, CPU), the backend (embedded Qdrant
// engine in a temporary DATA_DIR, real Redis with a key prefix of its own), and the production build of this
// page under `vite preview`, which proxies /api and /ready to that backend. Everything is torn down after.
// E2E_BASE_URL=<url> skips all of it and tests a stack that is already running.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, rmSync } from 'node:fs'
import { createConnection, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { CHROMIUM } from './chromium'

const FRONTEND = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const ROOT = resolve(FRONTEND, '..')
const MODELS = join(ROOT, 'models')
const LOGS = join(FRONTEND, 'test-results', 'e2e-logs')

export interface Service {
  name: string
  proc: ChildProcess
}

export function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const srv = createServer()
    srv.unref()
    srv.on('error', fail)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number }
      srv.close(() => ok(port))
    })
  })
}

/** Sends RESP commands (arrays of strings) and returns the raw reply text; enough for PING/SCAN/DEL. */
function redisCommand(port: number, db: number, args: string[], timeoutMs = 1000): Promise<string> {
  const encode = (a: string[]) => `*${a.length}\r\n${a.map((s) => `$${Buffer.byteLength(s)}\r\n${s}\r\n`).join('')}`
  return new Promise((ok, fail) => {
    const sock = createConnection({ host: '127.0.0.1', port })
    let data = ''
    const timer = setTimeout(() => {
      sock.destroy()
      fail(new Error('redis timeout'))
    }, timeoutMs)
    sock.on('connect', () => sock.write(encode(['SELECT', String(db)]) + encode(args)))
    sock.on('data', (chunk) => {
      data += chunk.toString('utf8')
      // SELECT's +OK, then one full reply: good enough for short replies read in one piece.
      if (/^\+OK\r\n[\s\S]*\r\n$/.test(data) && data.length > 5) {
        clearTimeout(timer)
        sock.end()
        ok(data.slice(5))
      }
    })
    sock.on('error', (err) => {
      clearTimeout(timer)
      fail(err)
    })
  })
}

async function redisAnswers(port: number, db: number): Promise<boolean> {
  try {
    return (await redisCommand(port, db, ['PING'], 500)).startsWith('+PONG')
  } catch {
    return false
  }
}

export async function waitFor(url: string, svc: Service, timeoutS: number): Promise<void> {
  const deadline = Date.now() + timeoutS * 1000
  while (Date.now() < deadline) {
    if (svc.proc.exitCode !== null) {
      throw new Error(`${svc.name} exited with ${svc.proc.exitCode}: see test-results/e2e-logs/${svc.name}.log`)
    }
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(5000) })
      if (res.ok) return
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 300))
  }
  throw new Error(`${svc.name} not healthy after ${timeoutS}s (${url}): see test-results/e2e-logs/${svc.name}.log`)
}

export function start(name: string, cmd: string, args: string[], env: Record<string, string>, cwd = ROOT): Service {
  const log = openSync(join(LOGS, `${name}.log`), 'w')
  // Its own process group, so that teardown reaches anything it forks.
  const proc = spawn(cmd, args, { cwd, env, stdio: ['ignore', log, log], detached: true })
  closeSync(log)
  return { name, proc }
}

export async function stop(svc: Service): Promise<void> {
  const { proc } = svc
  if (proc.exitCode !== null || proc.pid === undefined) return
  const exited = new Promise<void>((r) => proc.once('exit', () => r()))
  try {
    process.kill(-proc.pid, 'SIGTERM')
  } catch {
    return
  }
  const timer = setTimeout(() => {
    try {
      process.kill(-(proc.pid as number), 'SIGKILL')
    } catch {
      // already gone
    }
  }, 20_000)
  await exited
  clearTimeout(timer)
}

/** Only the settings of this run: nothing from the developer's shell or .env leaks into the services. */
export function baseEnv(): Record<string, string> {
  const keep = ['PATH', 'HOME', 'LANG', 'LC_ALL', 'TMPDIR']
  return Object.fromEntries(keep.filter((k) => process.env[k]).map((k) => [k, process.env[k] as string]))
}

function requireFile(path: string, hint: string): void {
  if (!existsSync(path)) throw new Error(`${path} is missing: ${hint}`)
}

export default async function globalSetup(): Promise<() => Promise<void>> {
  // This run's screenshots only (names change as tests do).
  rmSync(join(FRONTEND, 'test-results', 'screenshots'), { recursive: true, force: true })
  if (process.env.E2E_BASE_URL) return async () => undefined

  requireFile(CHROMIUM, 'install Chromium (Debian: apt-get install -y chromium) or set CHROMIUM_PATH')
  requireFile(join(ROOT, 'ml-api/.venv/bin/python'), 'run `make install models` in the repository root')
  requireFile(join(ROOT, 'backend/.venv/bin/python'), 'run `make install models` in the repository root')
  requireFile(join(MODELS, 'all-MiniLM-L6-v2/manifest.json'), 'run `make models` in the repository root')

  rmSync(LOGS, { recursive: true, force: true })
  mkdirSync(LOGS, { recursive: true })
  const tmp = mkdtempSync(join(tmpdir(), 'rag-e2e-'))
  const services: Service[] = []
  const started = Date.now()

  // Redis: the machine's (DB 12, a key prefix of our own), or a throw-away server where none answers.
  const db = 12
  let redisPort = 6379
  if (!(await redisAnswers(redisPort, db))) {
    redisPort = await freePort()
    const redis = start('redis', 'redis-server', [
      '--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', tmp,
    ], baseEnv())
    services.push(redis)
    const deadline = Date.now() + 10_000
    while (!(await redisAnswers(redisPort, db))) {
      if (Date.now() > deadline || redis.proc.exitCode !== null) {
        throw new Error('no Redis answers on 6379 and redis-server did not start (apt-get install redis-server)')
      }
      await new Promise((r) => setTimeout(r, 100))
    }
  }
  const prefix = `e2e-${randomBytes(4).toString('hex')}:`

  const teardown = async () => {
    await Promise.all(services.map(stop))
    if (redisPort === 6379) await deletePrefix(redisPort, db, prefix)
    rmSync(tmp, { recursive: true, force: true })
  }

  try {
    const [mlPort, backendPort, webPort] = [await freePort(), await freePort(), await freePort()]
    const ml = start('ml-api', join(ROOT, 'ml-api/.venv/bin/python'), ['-m', 'ml_api', 'serve'], {
      ...baseEnv(),
      PORT: String(mlPort),
      HOST: '127.0.0.1',
      DEVICE: 'cpu',
      MODELS_DIR: MODELS,
      EMBED_MODEL: join(MODELS, 'all-MiniLM-L6-v2'),
      RERANK_MODEL: join(MODELS, 'minilm-l6-crossencoder-test'),
      HF_HUB_OFFLINE: '1',
      TRANSFORMERS_OFFLINE: '1',
      LOG_JSON: 'false',
    })
    services.push(ml)
    const mlUrl = `http://127.0.0.1:${mlPort}`
    // The backend starts while ml-api loads its models: it only needs ml-api for work, not to boot.
    const backend = start('backend', join(ROOT, 'backend/.venv/bin/python'), ['-m', 'rag_backend', 'serve'], {
      ...baseEnv(),
      BACKEND_PORT: String(backendPort),
      BACKEND_HOST: '127.0.0.1',
      DATA_DIR: join(tmp, 'backend'),
      EMBED_API_URL: mlUrl,
      RERANK_API_URL: mlUrl,
      REDIS_URL: `redis://127.0.0.1:${redisPort}/${db}`,
      CACHE_PREFIX: prefix,
      CHUNK_TOKENIZER: join(MODELS, 'all-MiniLM-L6-v2/tokenizer.json'),
      // No LLM here: answers are the backend's extractive ones, the same on every machine.
      LLM_PROVIDERS: '',
      LOG_JSON: 'false',
    })
    services.push(backend)
    const backendUrl = `http://127.0.0.1:${backendPort}`

    // Build while the models load (one CPU-heavy step at a time would be slower overall).
    if (process.env.E2E_SKIP_BUILD !== '1' || !existsSync(join(FRONTEND, 'dist/index.html'))) {
      const build = spawnSync(process.execPath, [join(FRONTEND, 'node_modules/vite/bin/vite.js'), 'build'], {
        cwd: FRONTEND,
        encoding: 'utf8',
      })
      if (build.status !== 0) throw new Error(`vite build failed:\n${build.stdout}\n${build.stderr}`)
    }
    const web = start(
      'web',
      process.execPath,
      [join(FRONTEND, 'node_modules/vite/bin/vite.js'), 'preview', '--host', '127.0.0.1'],
      { ...baseEnv(), PORT: String(webPort), BACKEND_URL: backendUrl },
      FRONTEND,
    )
    services.push(web)

    await waitFor(`${backendUrl}/health`, backend, 60)
    await waitFor(`${mlUrl}/health`, ml, 240)
    await waitFor(`${backendUrl}/ready`, backend, 30)
    const baseUrl = `http://127.0.0.1:${webPort}`
    await waitFor(baseUrl, web, 30)

    process.env.E2E_BASE_URL = baseUrl
    process.env.E2E_BACKEND_URL = backendUrl
    // For specs that start a backend of their own on the same ml-api and Redis (auth.spec.ts).
    process.env.E2E_ML_URL = mlUrl
    process.env.E2E_REDIS_URL = `redis://127.0.0.1:${redisPort}/${db}`
    process.env.E2E_CACHE_PREFIX = prefix
    console.log(`e2e stack up in ${((Date.now() - started) / 1000).toFixed(1)} s: page ${baseUrl}, backend ${backendUrl}`)
  } catch (err) {
    await teardown()
    throw err
  }
  return teardown
}

async function deletePrefix(port: number, db: number, prefix: string): Promise<void> {
  try {
    let cursor = '0'
    do {
      const reply = await redisCommand(port, db, ['SCAN', cursor, 'MATCH', `${prefix}*`, 'COUNT', '1000'])
      const parts = reply.split('\r\n').filter((l) => l && !/^[*$]/.test(l))
      cursor = parts[0] ?? '0'
      const keys = parts.slice(1)
      if (keys.length) await redisCommand(port, db, ['DEL', ...keys])
    } while (cursor !== '0')
  } catch {
    // A stale key or two in a test DB is not worth failing the run for.
  }
}
