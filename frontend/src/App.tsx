import { useCallback, useEffect, useRef, useState, useSyncExternalStore } from 'react'
import { getReady, listCollections, listDocuments } from './api/client'
import { IN_PROGRESS } from './api/types'
import { canCreate, canWrite, useAuth } from './auth/context'
import { UserMenu } from './auth/UserMenu'
import { Banners } from './components/Banners'
import { ChatPane } from './components/ChatPane'
import { CollectionPicker } from './components/CollectionPicker'
import { ConversationList } from './components/ConversationList'
import { DocumentList } from './components/DocumentList'
import { Logo } from './components/Logo'
import { StatusIndicator, healthOf } from './components/StatusIndicator'
import { UploadPanel } from './components/UploadPanel'
import { useAsk, type AskSettings } from './hooks/useAsk'
import { useConversations } from './hooks/useConversations'
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
  const [pane, setPane] = useState<'chats' | 'docs' | 'ask'>('docs')
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
  const conv = useConversations()
  const health = healthOf(ready.data, ready.error)
  const auth = useAuth()

  // Conversations: a question goes to the open one (created on the first question); one opened from the list, or
  // the one open before a reload, shows its stored turns.
  const settings = (conversationId?: string): AskSettings => ({ collection, generate, topK, conversationId })
  const { open: openConversation, startNew, reload: reloadConversations } = conv
  const loadChat = chat.load
  const openChat = useCallback(
    async (id: string) => {
      try {
        const c = await openConversation(id)
        loadChat(c.messages ?? [], { collection, generate, topK, conversationId: id })
      } catch {
        startNew() // deleted elsewhere, or from another account: start afresh
        loadChat([], { collection, generate, topK })
      }
    },
    [openConversation, startNew, loadChat, collection, generate, topK],
  )
  const restored = useRef(false)
  useEffect(() => {
    if (restored.current) return
    restored.current = true
    if (conv.currentId) void openChat(conv.currentId)
  }, [conv.currentId, openChat])
  const newChat = () => {
    chat.clear()
    startNew()
  }
  async function askIn(question: string) {
    chat.submit(question, settings(await conv.ensure()))
  }
  // The server titles a conversation from its first question: the list shows it once the answer is in.
  const lastStatus = chat.turns[chat.turns.length - 1]?.status
  useEffect(() => {
    if (lastStatus === 'done' || lastStatus === 'error') void reloadConversations()
  }, [lastStatus, reloadConversations])

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

  const collectionInfo = collections.data?.find((c) => c.name === collection)
  const readyDocs = collectionInfo?.ready ?? 0

  return (
    <div className="app">
      <a className="skip" href="#question">
        Skip to the question box
      </a>
      <header className="topbar">
        <div className="brand">
          <Logo />
          <h1>Ask your documents</h1>
        </div>
        <div className="topbar-end">
          <StatusIndicator info={ready.data} error={ready.error} at={ready.at} onRetry={ready.reload} />
          <UserMenu />
        </div>
      </header>

      <Banners health={health} ready={ready.data} onRetry={ready.reload} />

      <nav className="tabs" aria-label="Sections">
        {conv.available && (
          <button type="button" aria-pressed={pane === 'chats'} onClick={() => setPane('chats')}>
            Chats
          </button>
        )}
        <button type="button" aria-pressed={pane === 'docs'} onClick={() => setPane('docs')}>
          Documents
        </button>
        <button type="button" aria-pressed={pane === 'ask'} onClick={() => setPane('ask')}>
          Ask
        </button>
      </nav>

      <main className="layout" data-pane={pane} data-chats={conv.available}>
        {conv.available && (
          <div className="chats-column">
            <ConversationList
              conversations={conv.list}
              currentId={conv.currentId}
              error={conv.error?.message ?? null}
              onOpen={(id) => {
                void openChat(id)
                setPane('ask')
              }}
              onNew={() => {
                newChat()
                setPane('ask')
              }}
              onRename={conv.rename}
              onDelete={async (id) => {
                await conv.remove(id)
                if (id === conv.currentId) chat.clear()
              }}
            />
          </div>
        )}
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

        <ChatPane
          collection={collection}
          readyDocs={readyDocs}
          turns={chat.turns}
          busy={chat.busy}
          generate={generate}
          topK={topK}
          onGenerate={setGenerate}
          onTopK={setTopK}
          onAsk={(q) => void askIn(q)}
          onRetry={chat.retry}
          onStop={chat.stop}
          onNewChat={newChat}
          onRated={chat.rate}
          onRegenerate={(turn) =>
            // In a saved chat the server keeps both answers, so the page shows both; without one, the turn is redone.
            turn.settings.conversationId ? void askIn(turn.question) : chat.retry(turn.id)
          }
        />
      </main>
    </div>
  )
}
