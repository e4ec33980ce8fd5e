// Shapes of the backend API (see the root README, "API (backend, port 8000)").

export type DocStatus =
  | 'queued'
  | 'parsing'
  | 'chunking'
  | 'embedding'
  | 'indexing'
  | 'ready'
  | 'failed'
  | 'deleting'

export interface DocumentInfo {
  id: string
  collection: string
  filename: string
  format: string
  size: number
  status: DocStatus
  progress: number
  chunks: number
  chunks_done: number
  pages: number | null
  title: string | null
  error: string | null
  created_at: number
  updated_at: number
}

export interface DocumentList {
  documents: DocumentInfo[]
  total: number
}

export interface UploadItem {
  filename: string
  id: string | null
  job_id: string | null
  status: DocStatus | 'rejected'
  duplicate: boolean
  replaces: string | null
  error: string | null
  error_type: string | null
}

export interface CollectionInfo {
  name: string
  embed_model: string | null
  documents: number
  ready: number
  failed: number
  chunks: number
  version: number
  created_at: number
}

export interface QueryResult {
  id: string
  text: string
  score: number
  rerank_score: number | null
  document_id: string
  source: string
  title: string | null
  position: number
  page: number | null
  heading: string | null
}

export type Timings = Record<string, number>

export interface QueryRequest {
  query: string
  collection?: string
  top_k?: number
  dense?: boolean
  sparse?: boolean
  rerank?: boolean
  candidates?: number
  filters?: { source?: string[]; document_id?: string[] }
}

export interface QueryResponse {
  results: QueryResult[]
  timings: Timings
  cached: boolean
}

export interface Citation {
  marker: number
  result_id: string
  document_id: string
  source: string
}

export interface Component {
  ok: boolean
  detail: string
  kind: string
}

export interface ReadyInfo {
  status: 'ready' | 'degraded' | 'unavailable'
  components: Record<string, Component>
}

export const IN_PROGRESS: ReadonlySet<DocStatus> = new Set([
  'queued',
  'parsing',
  'chunking',
  'embedding',
  'indexing',
])
