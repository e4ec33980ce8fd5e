import { useEffect, useRef, useState } from 'react'
import { getDocumentBytes, isAbort } from '../api/client'
import { matchRuns } from '../lib/passage'

interface Props {
  documentId: string
  page: number
  passage: string
}

type State = { phase: 'loading' } | { phase: 'ready'; pages: number; marked: number } | { phase: 'error'; message: string }

/**
 * Loaded on first use only: pdf.js is most of the page's weight. Its worker is bundled by Vite as a worker chunk
 * of our own origin (a plain .js file, which every server types right; no CDN), made once and reused.
 */
let worker: Worker | null = null
async function loadPdfjs() {
  const [pdfjs, { default: PdfWorker }] = await Promise.all([
    import('pdfjs-dist'),
    import('pdfjs-dist/build/pdf.worker.min.mjs?worker'),
  ])
  worker ??= new PdfWorker()
  pdfjs.GlobalWorkerOptions.workerPort = worker
  return pdfjs
}

/**
 * One page of a PDF drawn by pdf.js on a canvas, with its text layer on top; the text runs that hold the
 * passage get the `hl` class (a highlight), and the first of them is scrolled into view.
 */
export function PdfPage({ documentId, page, passage }: Props) {
  const host = useRef<HTMLDivElement>(null)
  const [state, setState] = useState<State>({ phase: 'loading' })

  useEffect(() => {
    const ctrl = new AbortController()
    let destroy: (() => void) | undefined
    const el = host.current
    ;(async () => {
      try {
        const [pdfjs, data] = await Promise.all([loadPdfjs(), getDocumentBytes(documentId, ctrl.signal)])
        if (ctrl.signal.aborted || !el) return
        const task = pdfjs.getDocument({ data, isEvalSupported: false })
        destroy = () => void task.destroy()
        const doc = await task.promise
        const n = Math.min(Math.max(1, page), doc.numPages)
        const pdfPage = await doc.getPage(n)
        const width = Math.max(280, el.clientWidth || 600)
        const scale = width / pdfPage.getViewport({ scale: 1 }).width
        const viewport = pdfPage.getViewport({ scale })
        const ratio = window.devicePixelRatio || 1

        el.replaceChildren()
        el.style.setProperty('--total-scale-factor', String(scale))
        el.style.setProperty('--scale-round-x', '1px')
        el.style.setProperty('--scale-round-y', '1px')
        el.style.width = `${Math.floor(viewport.width)}px`
        el.style.height = `${Math.floor(viewport.height)}px`
        const canvas = document.createElement('canvas')
        canvas.width = Math.floor(viewport.width * ratio)
        canvas.height = Math.floor(viewport.height * ratio)
        canvas.style.width = `${Math.floor(viewport.width)}px`
        canvas.style.height = `${Math.floor(viewport.height)}px`
        canvas.setAttribute('aria-hidden', 'true')
        el.append(canvas)
        await pdfPage.render({
          canvas,
          viewport,
          transform: ratio !== 1 ? [ratio, 0, 0, ratio, 0, 0] : undefined,
        }).promise
        if (ctrl.signal.aborted) return

        const layer = document.createElement('div')
        layer.className = 'textLayer'
        el.append(layer)
        const text = new pdfjs.TextLayer({ textContentSource: pdfPage.streamTextContent(), container: layer, viewport })
        await text.render()
        const hits = matchRuns(text.textContentItemsStr, passage)
        for (const i of hits) text.textDivs[i]?.classList.add('hl')
        text.textDivs[hits[0]]?.scrollIntoView?.({ block: 'center' })
        setState({ phase: 'ready', pages: doc.numPages, marked: hits.length })
      } catch (err) {
        if (isAbort(err) || ctrl.signal.aborted) return
        setState({ phase: 'error', message: err instanceof Error ? err.message : String(err) })
      }
    })()
    return () => {
      ctrl.abort()
      destroy?.()
    }
  }, [documentId, page, passage])

  return (
    <div className="pdf">
      <p className="pdf-caption" data-testid="pdf-status">
        {state.phase === 'loading' && 'Loading the page…'}
        {state.phase === 'ready' &&
          `Page ${page} of ${state.pages}${state.marked ? ': the passage is highlighted' : ': the passage was not found on this page'}`}
        {state.phase === 'error' && <span className="field-error">The PDF could not be shown: {state.message}</span>}
      </p>
      <div className="pdf-page" ref={host} data-testid="pdf-page" />
    </div>
  )
}
