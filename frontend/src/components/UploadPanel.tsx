import { useId, useRef, useState, type DragEvent } from 'react'
import { STATUS_LABELS, formatBytes } from '../lib/format'
import type { UploadTask } from '../lib/uploads'

export const ACCEPT = '.pdf,.docx,.html,.htm,.md,.markdown,.mdx,.txt,.text,.rst,.csv,.json,.xml,.log'

interface Props {
  collection: string
  tasks: readonly UploadTask[]
  onFiles: (files: File[]) => void
  onRetry: (key: string) => void
  onDismiss: (key: string) => void
  onClearFinished: () => void
}

function stageOf(task: UploadTask): { label: string; value: number | null } {
  switch (task.phase) {
    case 'waiting':
      return { label: 'Waiting', value: 0 }
    case 'uploading':
      return { label: `Uploading ${Math.round(task.sent * 100)}%`, value: task.sent }
    case 'processing': {
      const stage = STATUS_LABELS[task.status ?? 'queued'] ?? task.status ?? 'Processing'
      const pct = Math.round(task.progress * 100)
      // Stages before embedding have no fraction to show: an indeterminate bar says "busy".
      return task.progress > 0
        ? { label: `${stage} ${pct}%`, value: task.progress }
        : { label: stage, value: null }
    }
    case 'ready':
      return { label: 'Ready', value: 1 }
    case 'failed':
      return { label: 'Failed', value: 0 }
  }
}

export function UploadPanel({ collection, tasks, onFiles, onRetry, onDismiss, onClearFinished }: Props) {
  const input = useRef<HTMLInputElement>(null)
  const [over, setOver] = useState(false)
  const hintId = useId()
  const finished = tasks.filter((t) => t.phase === 'ready' || t.phase === 'failed').length

  function drop(e: DragEvent) {
    e.preventDefault()
    setOver(false)
    const files = Array.from(e.dataTransfer.files)
    if (files.length) onFiles(files)
  }

  return (
    <section className="panel upload" aria-labelledby="upload-title">
      <h2 id="upload-title">Upload</h2>
      <div
        className={`dropzone${over ? ' over' : ''}`}
        data-testid="dropzone"
        onDragEnter={(e) => {
          e.preventDefault()
          setOver(true)
        }}
        onDragOver={(e) => {
          e.preventDefault()
          e.dataTransfer.dropEffect = 'copy'
        }}
        onDragLeave={(e) => {
          if (!e.currentTarget.contains(e.relatedTarget as Node | null)) setOver(false)
        }}
        onDrop={drop}
      >
        <svg className="dropzone-icon" viewBox="0 0 24 24" aria-hidden="true">
          <path d="M12 16V4m0 0-4 4m4-4 4 4M4 16v3a1 1 0 0 0 1 1h14a1 1 0 0 0 1-1v-3" />
        </svg>
        <p>
          Drop files here or{' '}
          <button type="button" className="link" onClick={() => input.current?.click()} aria-describedby={hintId}>
            choose files
          </button>
        </p>
        <p className="hint" id={hintId}>
          PDF, Word, HTML, Markdown or text, into <strong>{collection}</strong>
        </p>
        <input
          ref={input}
          type="file"
          multiple
          accept={ACCEPT}
          hidden
          data-testid="file-input"
          aria-label="Choose files to upload"
          onChange={(e) => {
            const files = Array.from(e.target.files ?? [])
            e.target.value = '' // the same file can be picked again after a failure
            if (files.length) onFiles(files)
          }}
        />
      </div>

      {tasks.length > 0 && (
        <>
          <ul className="tasks" aria-label="Uploads">
            {tasks.map((t) => {
              const stage = stageOf(t)
              return (
                <li key={t.key} className={`task task-${t.phase}`} data-testid="upload-task">
                  <div className="task-head">
                    <span className="filename" title={t.name}>
                      {t.name}
                    </span>
                    <span className="task-size">{formatBytes(t.size)}</span>
                  </div>
                  <div className="task-progress">
                    <progress
                      max={1}
                      value={stage.value ?? undefined}
                      aria-label={`${t.name}: ${stage.label}`}
                    />
                    <span className="task-stage" aria-live="polite">
                      {stage.label}
                    </span>
                  </div>
                  {t.note && <p className="task-note">{t.note}</p>}
                  {t.error && (
                    <p className="task-error" role="alert">
                      {t.error}
                    </p>
                  )}
                  <div className="task-actions">
                    {t.phase === 'failed' && (
                      <button type="button" className="small" onClick={() => onRetry(t.key)}>
                        Retry
                      </button>
                    )}
                    <button
                      type="button"
                      className="small ghost"
                      onClick={() => onDismiss(t.key)}
                      aria-label={`${t.phase === 'uploading' || t.phase === 'waiting' ? 'Cancel' : 'Dismiss'} ${t.name}`}
                    >
                      {t.phase === 'uploading' || t.phase === 'waiting' ? 'Cancel' : 'Dismiss'}
                    </button>
                  </div>
                </li>
              )
            })}
          </ul>
          {finished > 0 && (
            <button type="button" className="link clear" onClick={onClearFinished}>
              Clear finished ({finished})
            </button>
          )}
        </>
      )}
    </section>
  )
}
