"""Test documents on distinct topics, built as real files (Markdown, PDF, DOCX, HTML, text)."""

from __future__ import annotations

import io

SOLAR = """# Solar power

Photovoltaic cells convert sunlight directly into electricity. When photons strike the silicon
semiconductor, they knock electrons loose and the built-in electric field of the p-n junction drives
them through the circuit as a direct current. An inverter then turns that direct current into the
alternating current used by household appliances.

## Efficiency

Commercial monocrystalline panels reach about 22 percent efficiency. Heat lowers the output of a
panel, so installers leave an air gap behind the modules.
"""

VOLCANO_PAGES = [
    "Volcanoes form where magma from the mantle reaches the surface. Basaltic lava is runny and builds "
    "broad shield volcanoes such as Mauna Loa in Hawaii.",
    "Explosive eruptions happen when viscous, gas-rich magma traps pressure until it fragments into ash. "
    "Pyroclastic flows of hot gas and rock race down the slopes at hundreds of kilometres per hour.",
]

BREAD_PARAGRAPHS = [
    "Sourdough bread rises without commercial yeast.",
    "A starter culture of wild yeast and lactic acid bacteria ferments the dough, producing carbon "
    "dioxide that leavens the loaf and acids that give sourdough its tangy flavour.",
    "Bakers feed the starter with flour and water every day to keep the culture active.",
]

WHALES_HTML = """<!doctype html><html><head><title>Whale song</title><script>var tracking = 1;</script>
<style>body { color: red }</style></head><body><nav>Home | About | Contact</nav>
<h1>Whale song</h1><p>Humpback whales sing long, complex songs that can travel for thousands of kilometres
under water. Only the males sing, mostly during the breeding season.</p>
<h2>Echolocation</h2><p>Toothed whales such as dolphins and sperm whales use echolocation clicks to find prey
in the dark depths of the ocean.</p><footer>Copyright 2026</footer></body></html>"""


def pdf_bytes(pages: list[str]) -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("Helvetica", size=12)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 8, text)
    return bytes(pdf.output())


def docx_bytes(title: str, paragraphs: list[str]) -> bytes:
    import docx

    document = docx.Document()
    document.add_heading(title, level=1)
    for p in paragraphs:
        document.add_paragraph(p)
    buf = io.BytesIO()
    document.save(buf)
    return buf.getvalue()


def long_text(topic_word: str, paragraphs: int) -> str:
    """Many distinct paragraphs, so the document makes many chunks."""
    return "\n\n".join(
        f"Paragraph {i} of the {topic_word} report. The measured value for sample {i} was {i * 7 % 101} units, "
        f"recorded on day {i % 28 + 1} by team {i % 5}. Observations about {topic_word} continue in the next "
        f"section, where conditions {i} and {i + 1} are compared in detail."
        for i in range(paragraphs)
    )
