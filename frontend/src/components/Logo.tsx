/** The page's mark: a document with lines, drawn in currentColor (decorative: the name beside it is the label). */
export function Logo() {
  return (
    <svg viewBox="0 0 24 24" aria-hidden="true" className="logo">
      <path d="M5 4h10l4 4v12H5z M15 4v4h4 M8 12h8 M8 16h6" />
    </svg>
  )
}
