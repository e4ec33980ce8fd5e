// Shapes of the backend API. Response shapes come from the backend's OpenAPI document: schema.d.ts is generated
// from openapi.json (`npm run api` writes both; `npm run lint` fails when they are stale). Written by hand: what the
// document does not describe (/ready, streamed events) and what the page sends or reads more narrowly than the
// document says (a request with every field optional, a query answer without the generated-answer fields).
import type { components } from './schema'

type Schemas = components['schemas']

/** A document's (ingestion job's) state: the backend's one list (catalog.DocumentStatus). */
export type DocStatus = Schemas['DocumentStatus']

/** A document as listed and polled; `job_id` (the same as `id`) is left out: the page never uses it. */
export type DocumentInfo = Omit<Schemas['Document'], 'job_id'>

export interface DocumentList {
  documents: DocumentInfo[]
  total: number
}

export type UploadItem = Schemas['UploadItem']

export type CollectionInfo = Schemas['CollectionInfo']

export type QueryResult = Schemas['QueryResult']

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
  /** A saved conversation: the question and answer are stored in it, and earlier turns shape the search. */
  conversation_id?: string
}

export interface QueryResponse {
  results: QueryResult[]
  timings: Timings
  cached: boolean
  message_id?: string | null
  search_query?: string | null
}

export interface Citation {
  marker: number
  result_id: string
  document_id: string | null
  source: string | null
  page?: number | null
  /** The passage is the document's parsed text [char_start, char_end), in Unicode code points. */
  char_start?: number | null
  char_end?: number | null
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
