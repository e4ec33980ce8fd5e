"""Bounded parsing: expansion bombs built here (DOCX zip bombs, huge HTML, PDFs with many pages or a decompression
bomb stream, a slow PDF) end `failed` naming the limit, in a real child process and through a running backend
whose memory is measured from /proc while they are parsed."""

from __future__ import annotations

import io
import os
import threading
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import Proc, start_backend, wait_ready
from docs import BREAD_PARAGRAPHS, WHALES_HTML, docx_bytes, pdf_bytes

from rag_backend.parsing import ParseError, ParseLimits, parse_document, parse_isolated

MB = 1024 * 1024
LOL = "".join(f"<!ENTITY l{i} '{f'&l{i - 1};' * 10 if i else 'lol'}'>" for i in range(9))
BILLION_LAUGHS = f"<!DOCTYPE html [{LOL}]><html><body><p>&l8;</p><p>Laughing matters.</p></body></html>".encode()


# -- builders ----------------------------------------------------------------------------------------------------------
def docx_with_body(paragraphs: int, *, varied: bool, extra: tuple[str, bytes] | None = None) -> bytes:
    """A real python-docx file whose body is replaced by `paragraphs` paragraphs (repeated = compresses ~300:1)."""
    base = zipfile.ZipFile(io.BytesIO(docx_bytes("Bomb", ["seed"])))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        for info in base.infolist():
            data = base.read(info)
            if info.filename == "word/document.xml":
                head, tail = data.split(b"<w:body>", 1)
                if varied:
                    body = b"".join(
                        b"<w:p><w:r><w:t>p%d x%x</w:t></w:r></w:p>" % (i, i * 7919) for i in range(paragraphs)
                    )
                else:
                    body = b"<w:p><w:r><w:t>all work and no play</w:t></w:r></w:p>" * paragraphs
                data = head + b"<w:body>" + body + tail
            z.writestr(info.filename, data)
        if extra:
            z.writestr(*extra)
    return out.getvalue()


def raw_pdf(pages: int, content: bytes = b"BT /F1 12 Tf 72 720 Td (Hello page) Tj ET", *, flate: bool = False) -> bytes:
    """A minimal valid PDF: `pages` pages sharing one content stream (so thousands of pages stay small)."""
    stream = zlib.compress(content, 9) if flate else content
    filt = b" /Filter /FlateDecode" if flate else b""
    page = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
    page += b"/Contents 4 0 R >>"
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [" + b" ".join(b"%d 0 R" % (5 + i) for i in range(pages)) + b"] /Count %d >>" % pages,
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length %d%s >>\nstream\n" % (len(stream), filt) + stream + b"\nendstream",
        *[page] * pages,
    ]
    out = bytearray(b"%PDF-1.7\n")
    offsets = []
    for n, body in enumerate(objs, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1) + b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return bytes(out)


def html_tags(n: int) -> bytes:
    return b"<html><body>" + b"<p>a" * n + b"</body></html>"


def huge_element(words: int) -> bytes:
    """One paragraph of `words` x 2 words: few elements, but every layer (lxml, BeautifulSoup) copies the text."""
    return b"<html><body><p>" + b"lorem ipsum " * words + b"</p></body></html>"


def _stream_bomb(mb: int) -> bytes:
    """One page whose content stream inflates from a few KB to `mb` MB."""
    return raw_pdf(1, b"BT (x) Tj ET\n" + b" " * (mb * MB), flate=True)


SLOW_PDF_CONTENT = b"BT /F1 9 Tf 20 780 Td 11 TL " + b"(lorem ipsum dolor sit amet) ' " * 3000 + b"ET"


# -- in a child process, directly --------------------------------------------------------------------------------------
def test_normal_files_parse_identically_in_the_child() -> None:
    limits = ParseLimits()
    files = [
        (pdf_bytes(["First page about volcanoes.", "Second page."]), "pdf"),
        (docx_bytes("Sourdough", BREAD_PARAGRAPHS), "docx"),
        (WHALES_HTML.encode(), "html"),
        (b"---\ntitle: T\n---\n# Head\nbody text\n", "markdown"),
        ("caf\u00e9 na\u00efve".encode("cp1252"), "text"),
    ]
    for data, fmt in files:
        assert parse_isolated(data, fmt, limits) == parse_document(data, fmt), fmt


def test_workers_are_reused_concurrent_and_replaced_when_killed() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from rag_backend.parsing import isolated

    limits = ParseLimits()
    data = [docx_bytes(f"Doc {i}", [f"paragraph {i}"]) for i in range(12)]
    with ThreadPoolExecutor(4) as pool:
        docs = list(pool.map(lambda d: parse_isolated(d, "docx", limits), data))
    assert docs == [parse_document(d, "docx") for d in data]
    idle = list(isolated._POOL._idle)
    assert 1 <= len(idle) <= 4  # one warm worker per parse that ran at once, kept for the next documents
    for worker in idle:  # killed while idle (say by the OOM killer): the next parse takes a fresh one
        os.kill(worker.pid, 9)
    time.sleep(0.2)
    assert parse_isolated(data[0], "docx", limits) == docs[0]


def test_child_reports_the_same_errors() -> None:
    with pytest.raises(ParseError, match="corrupt PDF"):
        parse_isolated(b"%PDF-1.7 this is no PDF", "pdf", ParseLimits())
    with pytest.raises(ParseError, match="empty"):
        parse_isolated(b"  \n", "text", ParseLimits())


def _blob_docx(mb: int) -> bytes:
    """A DOCX carrying `mb` MB of hex text (2:1 compression): big expanded, no bomb ratio."""
    return docx_with_body(10, varied=True, extra=("word/media/blob.bin", os.urandom(mb * MB // 2).hex().encode()))


@pytest.mark.parametrize(
    ("make", "fmt", "limits", "needle"),
    [
        pytest.param(lambda: docx_with_body(300_000, varied=False), "docx", ParseLimits(), "zip bomb", id="zip-bomb"),
        pytest.param(
            lambda: docx_with_body(200_000, varied=True), "docx", ParseLimits(), "PARSE_MAX_ELEMENTS=", id="docx-xml"
        ),
        pytest.param(
            lambda: _blob_docx(6), "docx", ParseLimits(max_expanded_mb=4), "PARSE_MAX_EXPANDED_MB=4", id="expanded"
        ),
        pytest.param(lambda: html_tags(600_000), "html", ParseLimits(), "PARSE_MAX_ELEMENTS=300000", id="html-tags"),
        pytest.param(lambda: raw_pdf(2500), "pdf", ParseLimits(), "PARSE_MAX_PAGES=2000", id="pdf-pages"),
        pytest.param(
            lambda: _stream_bomb(12),
            "pdf",
            ParseLimits(max_expanded_mb=4),
            "PARSE_MAX_EXPANDED_MB=4",
            id="pdf-stream-bomb",
        ),
        pytest.param(
            lambda: html_tags(250_000), "html", ParseLimits(max_memory_mb=48), "PARSE_MAX_MEMORY_MB=48", id="memory"
        ),
        pytest.param(
            lambda: raw_pdf(1900, SLOW_PDF_CONTENT, flate=True),
            "pdf",
            ParseLimits(timeout_s=2),
            "PARSE_TIMEOUT_S=2",
            id="time",
        ),
    ],
)
def test_limit_broken_in_the_child(make: Callable[[], bytes], fmt: str, limits: ParseLimits, needle: str) -> None:
    data = make()
    start = time.monotonic()
    with pytest.raises(ParseError, match=needle) as info:
        parse_isolated(data, fmt, limits)
    assert "over the parse limit" in info.value.message or "zip bomb" in info.value.message
    assert time.monotonic() - start < limits.timeout_s + 10


def test_entities_are_not_expanded() -> None:
    doc = parse_isolated(BILLION_LAUGHS, "html", ParseLimits())
    text = " ".join(s.text for s in doc.sections)
    assert "Laughing matters." in text and "lollol" not in text and len(text) < 2000


# -- through a running backend, memory measured ------------------------------------------------------------------------
def _rss_kb(pid: int, field: str = "VmRSS") -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _descendants(root: int) -> set[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found = {root}
    grew = True
    while grew:
        new = {pid for pid, ppid in parents.items() if ppid in found and pid not in found}
        found |= new
        grew = bool(new)
    return found - {root}


class MemoryWatch:
    """Polls the backend's and every descendant's RSS (the fork server and its parse children) every 20 ms."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.backend_kb = 0
        self.child_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> MemoryWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.backend_kb = max(self.backend_kb, _rss_kb(self.pid))
            for pid in _descendants(self.pid):
                self.child_kb = max(self.child_kb, _rss_kb(pid))
            time.sleep(0.02)


LIMITED = {"PARSE_MAX_MEMORY_MB": "64", "PARSE_TIMEOUT_S": "5", "PARSE_MAX_EXPANDED_MB": "16"}


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory, ml_api: Proc) -> Iterator[Proc]:
    proc = start_backend(tmp_path_factory.mktemp("parse-limits"), ml_api.url, name="limited", **LIMITED)
    yield proc
    proc.stop()


BOMBS: list[tuple[str, Callable[[], bytes], str]] = [
    # the file: 50 KB of DOCX, 14 MB of XML (python-docx held >1 GB for a minute on tens of MB)
    ("zip-bomb.docx", lambda: docx_with_body(250_000, varied=False), "zip bomb"),
    ("elements.docx", lambda: docx_with_body(200_000, varied=True), "PARSE_MAX_ELEMENTS=300000"),
    ("expanded.docx", lambda: _blob_docx(20), "PARSE_MAX_EXPANDED_MB=16"),
    ("tags.html", lambda: html_tags(600_000), "PARSE_MAX_ELEMENTS=300000"),
    ("memory.html", lambda: huge_element(2_000_000), "PARSE_MAX_MEMORY_MB=64"),
    ("pages.pdf", lambda: raw_pdf(2500), "PARSE_MAX_PAGES=2000"),
    ("stream-bomb.pdf", lambda: _stream_bomb(40), "PARSE_MAX_EXPANDED_MB=16"),
    ("slow.pdf", lambda: raw_pdf(1900, SLOW_PDF_CONTENT, flate=True), "PARSE_TIMEOUT_S=5"),
]  # fmt: skip


def test_bombs_fail_with_the_limit_and_bounded_memory(limited: Proc) -> None:
    pid = limited.service.pid
    figures: list[str] = []
    with limited.client(timeout=60) as client:
        for name, make, needle in BOMBS:
            data = make()
            with MemoryWatch(pid) as watch:
                start = time.monotonic()
                r = client.post("/api/documents", files=[("files", (name, data, "application/octet-stream"))])
                assert r.status_code == 202, r.text
                doc = wait_ready(client, r.json()["documents"][0]["id"], timeout=60)
                seconds = time.monotonic() - start
            assert doc["status"] == "failed", (name, doc)
            assert needle in doc["error"], (name, doc["error"])
            figures.append(
                f"{name}: {len(data) / MB:.2f} MB upload, {seconds:.1f} s, backend peak RSS "
                f"{watch.backend_kb // 1024} MB, parser peak RSS {watch.child_kb // 1024} MB"
            )
            assert watch.backend_kb < 400 * 1024, figures[-1]  # the backend holds the upload and little else
            assert watch.child_kb < (64 + 120) * 1024, figures[-1]  # PARSE_MAX_MEMORY_MB over the fork server
        print("\n" + "\n".join(figures))  # the figures for the closing note (pytest -s)
        # a normal file still parses in the same backend, and nothing of the killed parses is left running
        ok = client.post(
            "/api/documents",
            files=[("files", ("ok.docx", docx_bytes("Fine", BREAD_PARAGRAPHS), "application/octet-stream"))],
        )
        assert wait_ready(client, ok.json()["documents"][0]["id"])["status"] == "ready"
        laughs = client.post("/api/documents", files=[("files", ("laughs.html", BILLION_LAUGHS, "text/html"))])
        assert wait_ready(client, laughs.json()["documents"][0]["id"])["status"] == "ready"
    # what stays: the fork server and at most INGEST_WORKERS (4) idle workers, each back near its baseline
    # (a worker killed at the timeout or left big by a parse is gone)
    left = {p: _rss_kb(p) // 1024 for p in _descendants(pid)}
    assert 1 <= len(left) <= 5 and max(left.values()) < 120, left
    assert _rss_kb(pid, "VmHWM") < 400 * 1024
