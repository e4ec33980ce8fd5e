// Finding a passage in a document. The backend's offsets count Unicode code points (Python's str), while a
// JavaScript string indexes UTF-16 units: an emoji or a rare CJK character before the passage would shift a plain
// `text.slice(start, end)`. Array.from splits by code point, so the slices below match the backend's.

export interface Located {
  before: string
  passage: string
  after: string
}

/** text split around [start, end) counted in code points; null when the offsets do not fit the text. */
export function sliceByCodePoints(text: string, start: number, end: number): Located | null {
  const points = Array.from(text)
  if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end <= start || end > points.length) {
    return null
  }
  return {
    before: points.slice(0, start).join(''),
    passage: points.slice(start, end).join(''),
    after: points.slice(end).join(''),
  }
}

/** Where the passage is in the text: by its offsets when they are known and fit, else by searching for it. */
export function locate(
  text: string,
  start: number | null | undefined,
  end: number | null | undefined,
  fallback: string,
): Located | null {
  if (start != null && end != null) {
    const found = sliceByCodePoints(text, start, end)
    if (found) return found
  }
  const needle = fallback.trim()
  const at = needle ? text.indexOf(needle) : -1
  if (at < 0) return null
  return { before: text.slice(0, at), passage: needle, after: text.slice(at + needle.length) }
}

const norm = (s: string) => s.toLowerCase().replace(/\s+/g, '')

/**
 * Which of a PDF page's text runs (pdf.js text layer items) hold the passage. Whitespace is ignored on both
 * sides, since a PDF's text runs rarely keep the parsed text's spaces and line breaks. Looks for the passage's
 * beginning, then its end (a passage that starts on the page before), and returns the indices of the runs from
 * there to the passage's length.
 */
export function matchRuns(runs: string[], passage: string): number[] {
  const target = norm(passage)
  if (!target) return []
  const owner: number[] = []
  let page = ''
  runs.forEach((run, i) => {
    const n = norm(run)
    page += n
    for (let k = 0; k < n.length; k++) owner.push(i)
  })
  // The longest piece of the passage's start (or end) that the page holds, down to 12 characters.
  const piece = (head: boolean) => {
    for (let len = Math.min(60, target.length); len >= Math.min(12, target.length); len--) {
      const at = page.indexOf(head ? target.slice(0, len) : target.slice(-len))
      if (at >= 0) return { at, len }
    }
    return null
  }
  let from: number
  let to: number
  const head = piece(true)
  if (head) {
    from = head.at
    to = Math.min(page.length, head.at + target.length)
  } else {
    const tail = piece(false)
    if (!tail) return []
    to = tail.at + tail.len
    from = Math.max(0, to - target.length)
  }
  const hit = new Set<number>()
  for (let k = from; k < to; k++) hit.add(owner[k])
  return [...hit].sort((a, b) => a - b)
}
