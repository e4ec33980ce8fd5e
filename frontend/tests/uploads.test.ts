import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { ApiError } from '../src/api/client'
import type { DocumentInfo, UploadItem } from '../src/api/types'
import { UploadQueue, type UploadDeps } from '../src/lib/uploads'
import { doc } from './fakes'

const file = (name: string) => new File(['some text'], name, { type: 'text/plain' })

const item = (over: Partial<UploadItem> = {}): UploadItem => ({
  filename: 'a.md',
  id: 'd1',
  job_id: 'd1',
  status: 'queued',
  duplicate: false,
  replaces: null,
  error: null,
  error_type: null,
  ...over,
})

/** Resolvable promises, so a test decides when each upload finishes. */
function deferred<T>() {
  let resolve!: (v: T) => void
  let reject!: (e: unknown) => void
  const promise = new Promise<T>((ok, fail) => {
    resolve = ok
    reject = fail
  })
  return { promise, resolve, reject }
}

const flush = () => vi.advanceTimersByTimeAsync(0)

describe('UploadQueue', () => {
  beforeEach(() => vi.useFakeTimers())
  afterEach(() => vi.useRealTimers())

  it('uploads at most `concurrency` files at once, reporting progress', async () => {
    const pending: ReturnType<typeof deferred<UploadItem>>[] = []
    const progress: ((f: number) => void)[] = []
    const deps: UploadDeps = {
      upload: vi.fn((_f, _c, onProgress) => {
        const d = deferred<UploadItem>()
        pending.push(d)
        progress.push(onProgress)
        return d.promise
      }),
      get: vi.fn(),
    }
    const q = new UploadQueue(deps, { concurrency: 2 })
    q.add([file('a.md'), file('b.md'), file('c.md')], 'papers')
    expect(q.getSnapshot().map((t) => t.phase)).toEqual(['uploading', 'uploading', 'waiting'])
    expect(deps.upload).toHaveBeenCalledTimes(2)
    expect(vi.mocked(deps.upload).mock.calls[0][1]).toBe('papers')

    progress[0](0.5)
    expect(q.getSnapshot()[0].sent).toBe(0.5)

    pending[0].resolve(item({ status: 'ready' }))
    await flush()
    expect(q.getSnapshot()[0].phase).toBe('ready')
    expect(deps.upload).toHaveBeenCalledTimes(3)
    q.dispose()
  })

  it('polls an accepted file through the ingestion stages to ready', async () => {
    const get = vi
      .fn<(id: string) => Promise<DocumentInfo>>()
      .mockResolvedValueOnce(doc({ status: 'embedding', progress: 0.5 }))
      .mockRejectedValueOnce(new ApiError("Can't reach the backend", 0, 'network'))
      .mockResolvedValueOnce(doc({ status: 'ready', progress: 1 }))
    const changed = vi.fn()
    const q = new UploadQueue({ upload: async () => item(), get }, { pollMs: 1000 })
    q.onDocumentsChanged(changed)
    q.add([file('a.md')], 'default')
    await flush()
    expect(q.getSnapshot()[0]).toMatchObject({ phase: 'processing', status: 'queued', docId: 'd1' })
    expect(changed).toHaveBeenCalledTimes(1)

    await vi.advanceTimersByTimeAsync(1000)
    expect(q.getSnapshot()[0]).toMatchObject({ phase: 'processing', status: 'embedding', progress: 0.5 })
    await vi.advanceTimersByTimeAsync(1000)
    expect(q.getSnapshot()[0].note).toMatch(/Waiting for the backend/)
    await vi.advanceTimersByTimeAsync(1000)
    expect(q.getSnapshot()[0]).toMatchObject({ phase: 'ready', progress: 1, note: null })
    expect(changed).toHaveBeenCalledTimes(2)
    await vi.advanceTimersByTimeAsync(5000)
    expect(get).toHaveBeenCalledTimes(3) // nothing left to poll
  })

  it('fails one file with the backend\'s reason and lets it be retried', async () => {
    const upload = vi
      .fn<UploadDeps['upload']>()
      .mockRejectedValueOnce(new ApiError('unsupported file: this looks like a ZIP archive', 415, 'unsupported_format'))
      .mockResolvedValueOnce(item({ status: 'ready' }))
    const q = new UploadQueue({ upload, get: vi.fn() })
    q.add([file('a.zip')], 'default')
    await flush()
    const [task] = q.getSnapshot()
    expect(task).toMatchObject({ phase: 'failed', error: 'unsupported file: this looks like a ZIP archive' })
    q.retry(task.key)
    await flush()
    expect(q.getSnapshot()[0].phase).toBe('ready')
    expect(upload).toHaveBeenCalledTimes(2)
  })

  it('reads a rejected item, a duplicate and a failed job', async () => {
    const answers = [
      item({ status: 'rejected', id: null, error: 'empty file' }),
      item({ status: 'ready', duplicate: true }),
      item({ status: 'queued', id: 'd9' }),
    ]
    const get = vi.fn(async () => doc({ id: 'd9', status: 'failed', error: 'no extractable text' }))
    const q = new UploadQueue({ upload: async () => answers.shift() as UploadItem, get }, { concurrency: 1 })
    q.add([file('empty.txt'), file('same.md'), file('scan.pdf')], 'default')
    await flush()
    await vi.advanceTimersByTimeAsync(1000)
    const [rejected, duplicate, failed] = q.getSnapshot()
    expect(rejected).toMatchObject({ phase: 'failed', error: 'empty file' })
    expect(duplicate).toMatchObject({ phase: 'ready', note: 'Already uploaded: same content' })
    expect(failed).toMatchObject({ phase: 'failed', error: 'no extractable text', status: 'failed' })
  })

  it('takes news from the document list for the rows it tracks', async () => {
    const q = new UploadQueue({ upload: async () => item(), get: vi.fn(() => new Promise<DocumentInfo>(() => undefined)) })
    q.add([file('a.md')], 'default')
    await flush()
    q.observe([doc({ id: 'other', status: 'ready' }), doc({ status: 'indexing', progress: 0.9 })])
    expect(q.getSnapshot()[0]).toMatchObject({ phase: 'processing', status: 'indexing', progress: 0.9 })
    q.observe([doc({ status: 'ready', progress: 1 })])
    expect(q.getSnapshot()[0]).toMatchObject({ phase: 'ready' })
    q.dispose()
  })

  it('dismissing an upload cancels it', async () => {
    let signal: AbortSignal | undefined
    const q = new UploadQueue({
      upload: (_f, _c, _p, s) => {
        signal = s
        return new Promise(() => undefined)
      },
      get: vi.fn(),
    })
    q.add([file('big.pdf')], 'default')
    q.dismiss(q.getSnapshot()[0].key)
    expect(signal?.aborted).toBe(true)
    expect(q.getSnapshot()).toEqual([])
  })
})
