import { ApiError, isAbort } from '../api/client'
import type { DocStatus, DocumentInfo, UploadItem } from '../api/types'

/** waiting → uploading (bytes) → processing (the backend's ingestion stages) → ready | failed. */
export type Phase = 'waiting' | 'uploading' | 'processing' | 'ready' | 'failed'

export interface UploadTask {
  key: string
  file: File
  name: string
  size: number
  collection: string
  phase: Phase
  /** Upload fraction, 0..1. */
  sent: number
  /** Ingestion stage and fraction once the backend has the file. */
  status: DocStatus | null
  progress: number
  docId: string | null
  error: string | null
  note: string | null
}

export interface UploadDeps {
  upload: (
    file: File,
    collection: string,
    onProgress: (fraction: number) => void,
    signal: AbortSignal,
  ) => Promise<UploadItem>
  get: (id: string) => Promise<DocumentInfo>
}

export interface UploadOptions {
  concurrency?: number
  pollMs?: number
}

let counter = 0

/** The upload queue lives outside React (useSyncExternalStore), so Strict Mode cannot start a file twice. */
export class UploadQueue {
  private tasks: UploadTask[] = []
  private listeners = new Set<() => void>()
  private controllers = new Map<string, AbortController>()
  private pollTimer: ReturnType<typeof setTimeout> | null = null
  private polling = false
  private disposed = false
  private readonly deps: UploadDeps
  private readonly concurrency: number
  private readonly pollMs: number
  private changeListeners = new Set<() => void>()

  constructor(deps: UploadDeps, opts: UploadOptions = {}) {
    this.deps = deps
    this.concurrency = opts.concurrency ?? 2
    this.pollMs = opts.pollMs ?? 1000
  }

  /** Called when an upload lands or a task reaches ready or failed: the document list changed. */
  onDocumentsChanged = (fn: () => void): (() => void) => {
    this.changeListeners.add(fn)
    return () => this.changeListeners.delete(fn)
  }

  private changed(): void {
    for (const fn of this.changeListeners) fn()
  }

  subscribe = (fn: () => void): (() => void) => {
    this.listeners.add(fn)
    return () => this.listeners.delete(fn)
  }

  getSnapshot = (): readonly UploadTask[] => this.tasks

  add(files: Iterable<File>, collection: string): void {
    const added = Array.from(files, (file) => this.fresh(file, collection))
    if (added.length === 0) return
    this.tasks = [...this.tasks, ...added]
    this.emit()
    this.pump()
  }

  retry(key: string): void {
    const task = this.tasks.find((t) => t.key === key)
    if (!task || task.phase !== 'failed') return
    this.replace(key, this.fresh(task.file, task.collection, key))
    this.pump()
  }

  dismiss(key: string): void {
    this.controllers.get(key)?.abort()
    this.tasks = this.tasks.filter((t) => t.key !== key)
    this.emit()
    this.pump()
  }

  /** The document list polls too: whatever it saw last is news for the rows of the same documents. */
  observe(docs: readonly DocumentInfo[]): void {
    for (const doc of docs) {
      const task = this.tasks.find((t) => t.phase === 'processing' && t.docId === doc.id)
      if (task && (doc.status !== task.status || doc.progress !== task.progress)) this.progressed(task.key, doc)
    }
  }

  clearFinished(): void {
    this.tasks = this.tasks.filter((t) => t.phase !== 'ready' && t.phase !== 'failed')
    this.emit()
  }

  dispose(): void {
    this.disposed = true
    for (const c of this.controllers.values()) c.abort()
    if (this.pollTimer) clearTimeout(this.pollTimer)
  }

  private fresh(file: File, collection: string, key?: string): UploadTask {
    counter += 1
    return {
      key: key ?? `u${counter}-${file.name}`,
      file,
      name: file.name,
      size: file.size,
      collection,
      phase: 'waiting',
      sent: 0,
      status: null,
      progress: 0,
      docId: null,
      error: null,
      note: null,
    }
  }

  private emit(): void {
    for (const fn of this.listeners) fn()
  }

  private update(key: string, patch: Partial<UploadTask>): void {
    const task = this.tasks.find((t) => t.key === key)
    if (!task) return
    this.replace(key, { ...task, ...patch })
  }

  private replace(key: string, next: UploadTask): void {
    this.tasks = this.tasks.map((t) => (t.key === key ? next : t))
    this.emit()
  }

  private pump(): void {
    if (this.disposed) return
    let running = this.tasks.filter((t) => t.phase === 'uploading').length
    for (const task of this.tasks) {
      if (running >= this.concurrency) break
      if (task.phase !== 'waiting') continue
      running += 1
      void this.send(task)
    }
    this.schedulePoll()
  }

  private async send(task: UploadTask): Promise<void> {
    const controller = new AbortController()
    this.controllers.set(task.key, controller)
    this.update(task.key, { phase: 'uploading', sent: 0 })
    try {
      const item = await this.deps.upload(
        task.file,
        task.collection,
        (sent) => this.update(task.key, { sent }),
        controller.signal,
      )
      this.accepted(task.key, item)
    } catch (err) {
      if (!isAbort(err)) this.fail(task.key, err)
    } finally {
      this.controllers.delete(task.key)
      this.pump()
    }
  }

  private accepted(key: string, item: UploadItem): void {
    if (item.status === 'rejected' || !item.id) {
      this.fail(key, new ApiError(item.error ?? 'Rejected by the backend', 400, item.error_type ?? 'rejected'))
      return
    }
    const note = item.duplicate
      ? 'Already uploaded: same content'
      : item.replaces
        ? 'New version: replaces the previous one when ready'
        : null
    this.update(key, {
      phase: item.status === 'ready' ? 'ready' : item.status === 'failed' ? 'failed' : 'processing',
      sent: 1,
      docId: item.id,
      status: item.status,
      progress: item.status === 'ready' ? 1 : 0,
      error: item.status === 'failed' ? (item.error ?? 'Processing failed') : null,
      note,
    })
    this.changed()
  }

  private fail(key: string, err: unknown): void {
    const message = err instanceof Error ? err.message : String(err)
    this.update(key, { phase: 'failed', error: message })
    this.changed()
  }

  private schedulePoll(): void {
    if (this.disposed || this.pollTimer || this.polling) return
    if (!this.tasks.some((t) => t.phase === 'processing')) return
    this.pollTimer = setTimeout(() => {
      this.pollTimer = null
      void this.poll()
    }, this.pollMs)
  }

  private async poll(): Promise<void> {
    this.polling = true
    try {
      for (const task of this.tasks.filter((t) => t.phase === 'processing' && t.docId)) {
        if (this.disposed) return
        try {
          const doc = await this.deps.get(task.docId as string)
          this.progressed(task.key, doc)
        } catch (err) {
          if (err instanceof ApiError && err.status === 404) {
            this.fail(task.key, new ApiError('The document was deleted', 404, 'not_found'))
          } else if (err instanceof ApiError) {
            // Backend slow or down for a moment: keep the task, say so, try again next tick.
            this.update(task.key, { note: `Waiting for the backend: ${err.message}` })
          }
        }
      }
    } finally {
      this.polling = false
      this.schedulePoll()
    }
  }

  private progressed(key: string, doc: DocumentInfo): void {
    if (doc.status === 'ready') {
      this.update(key, { phase: 'ready', status: 'ready', progress: 1, note: null })
      this.changed()
    } else if (doc.status === 'failed' || doc.status === 'deleting') {
      this.fail(key, new ApiError(doc.error ?? 'Processing failed', 0, 'failed'))
      this.update(key, { status: doc.status })
    } else {
      const task = this.tasks.find((t) => t.key === key)
      this.update(key, {
        status: doc.status,
        progress: doc.progress,
        note: task?.note?.startsWith('Waiting for the backend') ? null : (task?.note ?? null),
      })
    }
  }
}
