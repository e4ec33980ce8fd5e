// Splits an answer into text and citation markers: "[1]", "[2][3]" and "[1, 2]" all cite.

export type Segment = { kind: 'text'; text: string } | { kind: 'cite'; marker: number }

const MARKER = /\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]/g

export function segments(answer: string): Segment[] {
  const out: Segment[] = []
  let last = 0
  for (const m of answer.matchAll(MARKER)) {
    const at = m.index ?? 0
    if (at > last) out.push({ kind: 'text', text: answer.slice(last, at) })
    for (const part of m[1].split(',')) out.push({ kind: 'cite', marker: Number(part.trim()) })
    last = at + m[0].length
  }
  if (last < answer.length) out.push({ kind: 'text', text: answer.slice(last) })
  return out
}

export const CITE_HREF = '#cite-'

/**
 * The answer's Markdown with each marker made a link (`[2]` → `[2](#cite-2)`) that Answer renders as a citation.
 * Code (fenced blocks and inline spans) is left as it is, and so is a marker already followed by "(" or ":"
 * (a Markdown link or a reference definition of the answer's own).
 */
export function linkMarkers(markdown: string): string {
  const parts = markdown.split(/(```[\s\S]*?(?:```|$)|`[^`\n]*`)/g)
  return parts
    .map((part, i) => {
      if (i % 2 === 1) return part // code
      return part.replace(new RegExp(`${MARKER.source}(?![(:])`, 'g'), (_m, list: string) =>
        list
          .split(',')
          .map((n) => `[${n.trim()}](${CITE_HREF}${n.trim()})`)
          .join(''),
      )
    })
    .join('')
}
