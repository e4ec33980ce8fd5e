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
