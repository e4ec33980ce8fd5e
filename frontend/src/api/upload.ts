import { SIGNED_OUT } from '../auth/events'
import { ApiError, UNREACHABLE } from './client'
import type { UploadItem } from './types'

function errorOf(xhr: XMLHttpRequest): ApiError {
  if (xhr.status === 401) window.dispatchEvent(new Event(SIGNED_OUT)) // the session ended: back to sign-in
  let message = `${xhr.status} ${xhr.statusText}`.trim()
  let type = 'http'
  try {
    const body = JSON.parse(xhr.responseText) as { error?: unknown; error_type?: unknown }
    if (typeof body.error === 'string') message = body.error
    if (typeof body.error_type === 'string') type = body.error_type
  } catch {
    // A proxy's own page (nginx's 413, a 502): say it in words.
    if (xhr.status === 413) message = 'File too large for the server'
    else if (xhr.status === 502 || xhr.status === 504) message = UNREACHABLE
  }
  return new ApiError(message, xhr.status, type)
}

/**
 * One file per request, through XMLHttpRequest: fetch() cannot report upload progress, and a request per
 * file gives each file its own progress bar and its own error.
 */
export function uploadFile(
  file: File,
  collection: string,
  onProgress: (fraction: number) => void,
  signal?: AbortSignal,
): Promise<UploadItem> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest()
    const form = new FormData()
    form.append('collection', collection)
    form.append('files', file, file.name)
    xhr.open('POST', '/api/documents')
    xhr.responseType = 'text'
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable && e.total > 0) onProgress(e.loaded / e.total)
    }
    xhr.onload = () => {
      if (xhr.status < 200 || xhr.status >= 300) return reject(errorOf(xhr))
      try {
        const body = JSON.parse(xhr.responseText) as { documents?: UploadItem[] }
        const item = body.documents?.[0]
        if (!item) throw new Error('no document in the answer')
        resolve(item)
      } catch {
        reject(new ApiError('Unexpected answer from the backend', xhr.status, 'http'))
      }
    }
    xhr.onerror = () => reject(new ApiError(UNREACHABLE, 0, 'network'))
    xhr.onabort = () => reject(new DOMException('Upload cancelled', 'AbortError'))
    signal?.addEventListener('abort', () => xhr.abort(), { once: true })
    xhr.send(form)
  })
}
