import { useCallback, useEffect, useRef, useState, useSyncExternalStore } from 'react'
import { getReady, listCollections, listDocuments } from './api/client'
import { IN_PROGRESS } from './api/types'
import { canCreate, canWrite, useAuth } from './auth/context'
import { UserMenu } from './auth/UserMenu'
import { AskBox } from './components/AskBox'
import { CollectionPicker } from './components/CollectionPicker'
import { DocumentList } from './components/DocumentList'
import { StatusIndicator, healthOf } from './components/StatusIndicator'
import { TurnView } from './components/TurnView'
import { UploadPanel } from './components/UploadPanel'
import { useAsk } from './hooks/useAsk'
import { useResource } from './hooks/useResource'
import { useStored } from './hooks/useStored'
import type { UploadQueue } from './lib/uploads'

const PAGE = 50

interface Props {
  /** Created by main.tsx (and by tests, with fake transport): uploads outlive any component. */
  uploads: UploadQueue
}

export function App({ uploads }: Props) {
  const [collection, setCollection] = useStored('rag.collection', 'default')
  const [generate, setGenerate] = useStored('rag.generate', true)
  const [topK, setTopK] = useStored('rag.topK', 5)
  const [allCollections, setAllCollections] = useState(false)
  const [limit, setLimit] = useState(PAGE)
  const [pane, setPane] = useState<'docs' | 'ask'>('docs')
  const failures = useRef(0)

  const ready = useResource('ready', getReady, (data, error) => {
    // Back off while the backend is down (2, 4, 8, 15 s), check often while it is not ready.
    failures.current = error ? failures.current + 1 : 0
    if (error) return Math.min(15_000, 1000 * 2 ** failures.current)
    return data?.status === 'ready' ? 15_000 : 4000
  })
  const collections = useResource('collections', listCollections, (_, error) => (error ? 5000 : null))
  // The key is the scope only: "show more" reloads the same list longer instead of blanking it.
  const docs = useResource(
    `docs:${allCollections ? '*' : collection}`,
    (signal) => listDocuments({ collection: allCollections ? undefined : collection, limit }, signal),
    (data, error) =>
      error ? 5000 : data?.documents.some((d) => IN_PROGRESS.has(d.status)) ? 1500 : null,
  )
  const tasks = useSyncExternalStore(uploads.subscribe, uploads.getSnapshot)
  const chat = useAsk()
  const health = healthOf(ready.data, ready.error)
  const auth = useAuth()

  const reloadDocs = docs.reload
  const reloadCollections = collections.reload
  const refreshAll = useCallback(() => {
    reloadDocs()
    reloadCollections()
  }, [reloadDocs, reloadCollections])
  useEffect(() => {
    const off = uploads.onDocumentsChanged(refreshAll)
    return () => {
      off()
    }
  }, [uploads, refreshAll])

  const listed = docs.data?.documents
  useEffect(() => {
    if (listed) uploads.observe(listed)
  }, [uploads, listed])

  // The backend came back: what was shown may be stale.
  const wasDown = useRef(false)
  useEffect(() => {
    const down = health === 'offline' || health === 'unavailable'
    if (wasDown.current && !down) refreshAll()
    wasDown.current = down
  }, [health, refreshAll])

  // Files dropped outside the drop zone must not navigate away from the page.
  useEffect(() => {
    const stop = (e: DragEvent) => e.preventDefault()
    window.addEventListener('dragover', stop)
    window.addEventListener('drop', stop)
    return () => {
      window.removeEventListener('dragover', stop)
      window.removeEventListener('drop', stop)
    }
  }, [])

  const uploading = tasks.some((t) => t.phase === 'uploading' || t.phase === 'waiting')
  useEffect(() => {
    if (!uploading) return
    const warn = (e: BeforeUnloadEvent) => e.preventDefault()
    window.addEventListener('beforeunload', warn)
    return () => window.removeEventListener('beforeunload', warn)
  }, [uploading])

  // Follow the conversation as it grows, unless the reader scrolled up to read something else.
  const thread = useRef<HTMLDivElement>(null)
  const stick = useRef(true)
  const lastTurn = chat.turns[chat.turns.length - 1]
  useEffect(() => {
    stick.current = true // a new question: back to the bottom
  }, [chat.turns.length])
  useEffect(() => {
    const el = thread.current
    if (el && stick.current) el.scrollTop = el.scrollHeight
  }, [chat.turns.length, lastTurn?.status, lastTurn?.answer])
  const announcement = !lastTurn
    ? ''
    : lastTurn.status === 'searching'
      ? 'Searching…'
      : lastTurn.status === 'done'
        ? `Answer ready, ${lastTurn.results?.length ?? 0} passages`
        : lastTurn.status === 'error'
          ? `The question failed: ${lastTurn.error?.message ?? ''}`
          : ''

  const collectionInfo = collections.data?.find((c) => c.name === collection)
  const readyDocs = collectionInfo?.ready ?? 0

  return (
    <div className="app">
      <a className="skip" href="#question">
        Skip to the question box
      </a>
      <header className="topbar">
        <div className="brand">
          <svg viewBox="0 0 24 24" aria-hidden="true" className="logo">
            <path d="M5 4h10l4 4v12H5z M15 4v4h4 M8 12h8 M8 16h6" />
          </svg>
          <h1>Ask your documents</h1>
        </div>
        <div className="topbar-end">
          <StatusIndicator info={ready.data} error={ready.error} at={ready.at} onRetry={ready.reload} />
          <UserMenu />
        </div>
      </header>

      {health === 'offline' && (
        <div className="banner banner-error" role="alert">
          <span>
            Can't reach the backend. Retrying automatically; failed uploads and questions can be retried once it is back.
          </span>
          <button type="button" className="small" onClick={ready.reload}>
            Retry now
          </button>
        </div>
      )}
      {health === 'unavailable' && ready.data && (
        <div className="banner banner-warn" role="alert">
          <span>
            Search is unavailable:{' '}
            {Object.entries(ready.data.components)
              .filter(([, c]) => !c.ok)
              .map(([name, c]) => `${name} (${c.detail})`)
              .join(', ')}
            .
          </span>
          <button type="button" className="small" onClick={ready.reload}>
            Retry
          </button>
        </div>
      )}

      <nav className="tabs" aria-label="Sections">
        <button type="button" aria-pressed={pane === 'docs'} onClick={() => setPane('docs')}>
          Documents
        </button>
        <button type="button" aria-pressed={pane === 'ask'} onClick={() => setPane('ask')}>
          Ask
        </button>
      </nav>

      <main className="layout" data-pane={pane}>
        <aside className="sidebar" aria-label="Documents and uploads">
          <CollectionPicker
            value={collection}
            collections={collections.data}
            onChange={(name) => {
              setCollection(name)
              setLimit(PAGE)
            }}
            onCreated={reloadCollections}
            canCreate={canCreate(auth)}
          />
          {canWrite(auth, collectionInfo) ? (
            <UploadPanel
            collection={collection}
            tasks={tasks}
            onFiles={(files) => uploads.add(files, collection)}
            onRetry={(key) => uploads.retry(key)}
            onDismiss={(key) => uploads.dismiss(key)}
            onClearFinished={() => uploads.clearFinished()}
            />
          ) : (
            <p className="read-only-note">You can read and ask about {collection}, but not change it.</p>
          )}
          <DocumentList
            collection={collection}
            all={allCollections}
            onAllChange={setAllCollections}
            documents={docs.data?.documents ?? null}
            total={docs.data?.total ?? 0}
            error={docs.error}
            offline={health === 'offline'}
            loading={docs.loading}
            onMore={() => {
              setLimit((l) => l + PAGE)
              docs.reload()
            }}
            onReload={refreshAll}
            onDeleted={refreshAll}
            canChange={(name) => canWrite(auth, collections.data?.find((c) => c.name === name))}
          />
        </aside>

        <section className="chat" aria-label="Questions and answers">
          <div
            className="thread"
            ref={thread}
            onScroll={(e) => {
              const el = e.currentTarget
              stick.current = el.scrollHeight - el.scrollTop - el.clientHeight < 80
            }}
          >
            {chat.turns.length === 0 ? (
              <div className="empty chat-empty">
                <h2>Ask about {collection}</h2>
                {readyDocs > 0 ? (
                  <p>
                    {readyDocs} {readyDocs === 1 ? 'document is' : 'documents are'} ready. Answers cite the
                    passages they come from.
                  </p>
                ) : (
                  <p>Upload a document first: answers cite the passages they come from.</p>
                )}
              </div>
            ) : (
              <>
                <div className="thread-head">
                  <button type="button" className="link small" onClick={chat.clear}>
                    Clear conversation
                  </button>
                </div>
                <ol className="turns" aria-label="Conversation">
                  {chat.turns.map((t) => (
                    <TurnView key={t.id} turn={t} onRetry={chat.retry} onStop={chat.stop} />
                  ))}
                </ol>
              </>
            )}
          </div>
          <div className="sr-only" role="status" aria-live="polite">
            {announcement}
          </div>
          <AskBox
            busy={chat.busy}
            generate={generate}
            topK={topK}
            onGenerate={setGenerate}
            onTopK={setTopK}
            onStop={chat.stop}
            onAsk={(q) => chat.submit(q, { collection, generate, topK })}
          />
        </section>
      </main>
    </div>
  )
}
