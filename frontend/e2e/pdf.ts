// A minimal text PDF (PDF 1.4, Helvetica, one page per entry), made at test time so that no binary
// fixture is committed. pypdf, which the backend parses PDFs with, reads its text back.

function escape(text: string): string {
  return text.replace(/[\\()]/g, (c) => `\\${c}`)
}

function wrap(text: string, width = 80): string[] {
  const lines: string[] = []
  let line = ''
  for (const word of text.split(/\s+/)) {
    if (line && line.length + word.length + 1 > width) {
      lines.push(line)
      line = word
    } else {
      line = line ? `${line} ${word}` : word
    }
  }
  if (line) lines.push(line)
  return lines
}

export function pdfBytes(pages: string[], title = 'Document'): Buffer {
  const objects: string[] = []
  const add = (body: string) => objects.push(body) // object number = index + 1
  add('<< /Type /Catalog /Pages 2 0 R >>')
  add('') // pages, filled in below
  add('<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>')
  add(`<< /Title (${escape(title)}) /Producer (e2e) >>`)
  const kids: number[] = []
  for (const text of pages) {
    const body = wrap(text)
      .map((l) => `(${escape(l)}) Tj T*`)
      .join('\n')
    const stream = `BT /F1 12 Tf 16 TL 56 770 Td\n${body}\nET`
    add(`<< /Length ${Buffer.byteLength(stream, 'latin1')} >>\nstream\n${stream}\nendstream`)
    const contents = objects.length
    add(`<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 3 0 R >> >> /Contents ${contents} 0 R >>`)
    kids.push(objects.length)
  }
  objects[1] = `<< /Type /Pages /Kids [${kids.map((k) => `${k} 0 R`).join(' ')}] /Count ${kids.length} >>`

  let out = '%PDF-1.4\n%\xe2\xe3\xcf\xd3\n'
  const offsets: number[] = []
  objects.forEach((body, i) => {
    offsets.push(Buffer.byteLength(out, 'latin1'))
    out += `${i + 1} 0 obj\n${body}\nendobj\n`
  })
  const xref = Buffer.byteLength(out, 'latin1')
  out += `xref\n0 ${objects.length + 1}\n0000000000 65535 f \n`
  out += offsets.map((o) => `${String(o).padStart(10, '0')} 00000 n \n`).join('')
  out += `trailer\n<< /Size ${objects.length + 1} /Root 1 0 R /Info 4 0 R >>\nstartxref\n${xref}\n%%EOF\n`
  return Buffer.from(out, 'latin1')
}

export const VOLCANO_PAGES = [
  'Volcanoes form where magma from the mantle reaches the surface of the Earth. Basaltic lava is runny ' +
    'and builds broad shield volcanoes such as Mauna Loa in Hawaii.',
  'Explosive eruptions happen when viscous, gas-rich magma traps pressure until it fragments into ash. ' +
    'Pyroclastic flows of hot gas and rock race down the slopes of the volcano at hundreds of kilometres per hour.',
]
