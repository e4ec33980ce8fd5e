"""The parser processes' side: a fork server with the parsers loaded and warm, and the workers it forks.

The fork server (a fresh interpreter started by the backend) imports the parsers, parses one small file of each
format, freezes its heap for the garbage collector, then forks one worker per request on its control socket. A
worker serves documents one at a time over its own socket, each under limits it sets on itself: an address-space
ceiling (RLIMIT_AS: its size with the upload in, plus PARSE_MAX_MEMORY_MB) and a CPU budget (RLIMIT_CPU:
PARSE_TIMEOUT_S plus a margin; the backend's wall clock normally ends it first). A worker exits after a parse
that ran out of memory or left it 64 MB bigger than it started, so a big parse's memory goes back to the system.
Frames are an 8-byte length and a payload; answers are JSON (never pickle), so a worker subverted by a hostile
file cannot make the backend run code.
"""

from __future__ import annotations

import contextlib
import gc
import io
import json
import logging
import os
import resource
import signal
import socket
import struct
import traceback
from pathlib import Path
from typing import Any

from rag_backend.parsing.base import ParseError, UnsupportedFormat, reason
from rag_backend.parsing.limits import MB, ParseLimits, over

FRAME = struct.Struct("!Q")
PID = struct.Struct("!q")
ACK = b"\x01"  # the worker has the whole request: an answerless end after it is the document's doing
_PRELOAD = ("rag_backend.parsing", "docx", "pypdf", "bs4", "lxml.etree", "lxml.html", "charset_normalizer", "orjson")
_MAX_DOCS = 1000  # a worker retires after this many documents (bounds slow leaks in the libraries)
_GROWTH = 64 * MB  # ... or when a parse left it this much bigger than it started
_INF = resource.RLIM_INFINITY


def serve(ctrl_fd: int) -> None:
    """The fork server's loop: one worker per request, until the backend closes the control socket."""
    import importlib

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group; the backend decides
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # workers are reaped by the kernel: no zombies
    for module in _PRELOAD:
        importlib.import_module(module)
    _warm_up()
    gc.freeze()  # workers' collections skip these objects: no copy-on-write of the whole heap
    ctrl = socket.socket(fileno=ctrl_fd)
    while True:
        try:
            msg, fds, _flags, _addr = socket.recv_fds(ctrl, 16, 1)
        except OSError:
            return
        if not msg or not fds:
            return
        pid = os.fork()
        if pid == 0:
            ctrl.close()
            status = 1
            try:
                _work(socket.socket(fileno=fds[0]))
                status = 0
            except BaseException:  # a bug in this module: say where, then end like any dead worker
                traceback.print_exc()
            finally:
                os._exit(status)
        os.close(fds[0])
        ctrl.sendall(PID.pack(pid))


def _work(channel: socket.socket) -> None:
    from rag_backend.parsing import parse_document

    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core dumps of crashed parses
    base_vm = vm("VmSize") or 256 * MB  # no /proc: a generous guess at the fork server's footprint
    base_rss = vm("VmRSS") or 0
    records: list[tuple[str, int, str]] = []
    _capture_logs(records)
    for served in range(1, _MAX_DOCS + 1):
        header = recv_frame(channel)
        frame = recv_frame(channel) if header is not None else None
        if header is None or frame is None:
            return  # the backend closed the socket (idle worker retired, or the backend is gone)
        data = bytes(frame)  # the parsers want bytes
        del frame
        channel.sendall(ACK)
        request = json.loads(header)
        limits = ParseLimits(**request["limits"])
        ceiling = (vm("VmSize") or base_vm) + limits.max_memory_mb * MB  # the upload is already in
        peak_before = vm("VmPeak") or 0
        records.clear()
        _limit(ceiling, limits.timeout_s)
        body: dict[str, Any]
        try:
            doc = parse_document(data, request["fmt"], limits)
            sections = [(s.text, s.page, s.heading) for s in doc.sections]
            body = {"doc": {"format": doc.format, "title": doc.title, "sections": sections}}
            del doc
        except MemoryError:
            body = {"error": _memory_message(limits)}
        except UnsupportedFormat as exc:
            body = {"error": exc.message, "kind": "unsupported"}
        except ParseError as exc:
            body = {"error": exc.message}
        except Exception as exc:  # parse_document wraps library errors; this is a bug, still reported, never silent
            body = {"error": f"could not parse the file: {reason(exc)}"}
        del data
        near = _hit_ceiling(ceiling, limits, peak_before)
        if "error" in body and near:
            # C libraries report a failed allocation in their own words ("unknown error", "corrupt"): near the
            # ceiling, the memory limit is the true reason
            body = {"error": _memory_message(limits)}
        body["logs"] = records
        grown = (vm("VmRSS") or 0) > base_rss + _GROWTH or (vm("VmSize") or 0) > base_vm + _GROWTH
        retire = near or grown or served == _MAX_DOCS
        body["retire"] = retire
        try:
            frame = _dumps(body)
        except MemoryError:
            frame = _dumps({"error": _memory_message(limits), "retire": True})
            retire = True
        _limit(_INF, None)
        send_frame(channel, frame)
        del body, frame
        if retire:
            return


def _limit(address_space: int, timeout_s: float | None) -> None:
    """Soft limits only (the hard ones stay as they are), so the next document can have its own. A platform that
    refuses them (macOS enforces no RLIMIT_AS) still parses, bounded by the backend's wall clock alone."""
    _soft(resource.RLIMIT_AS, address_space)
    cpu = _INF
    if timeout_s is not None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        cpu = int(usage.ru_utime + usage.ru_stime + timeout_s) + 2
    _soft(resource.RLIMIT_CPU, cpu)


def _soft(kind: int, value: int) -> None:
    """Sets the soft limit, never above the hard one the container or the shell imposed."""
    with contextlib.suppress(ValueError, OSError):
        hard = resource.getrlimit(kind)[1]
        if hard != _INF and (value == _INF or value > hard):
            value = hard
        resource.setrlimit(kind, (value, hard))


def _memory_message(limits: ParseLimits) -> str:
    return over("parsing needs more memory than allowed", "PARSE_MAX_MEMORY_MB", limits.max_memory_mb).message


def _hit_ceiling(ceiling: int, limits: ParseLimits, peak_before: int) -> bool:
    """This parse raised the worker's peak to within a quarter of PARSE_MAX_MEMORY_MB of its ceiling: an
    allocation most likely failed (VmPeak is a lifetime figure, hence the comparison with the peak before)."""
    peak = vm("VmPeak")
    return peak is not None and peak > peak_before and peak >= ceiling - max(16 * MB, limits.max_memory_mb * MB // 4)


def vm(field: str) -> int | None:
    """A byte count from /proc/self/status (VmSize, VmRSS, VmPeak); None where there is no /proc."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def recv_frame(sock: socket.socket) -> bytearray | None:
    """One frame, or None at end of stream (a partial frame counts as the end)."""
    head = recv_exact(sock, FRAME.size)
    if head is None:
        return None
    return recv_exact(sock, FRAME.unpack(head)[0])


def recv_exact(sock: socket.socket, n: int) -> bytearray | None:
    """Received in place: a 50 MB frame is held once, not once per chunk and again when joined."""
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:], min(n - got, 1 << 20))
        if not k:
            return None
        got += k
    return buf


def send_frame(sock: socket.socket, payload: bytes) -> None:
    sock.sendall(FRAME.pack(len(payload)))
    sock.sendall(payload)


def _dumps(body: dict[str, Any]) -> bytes:
    import orjson

    try:
        return b"O" + orjson.dumps(body)
    except TypeError:  # lone surrogates in extracted text: the standard library escapes them
        return b"J" + json.dumps(body).encode()


def loads(answer: bytearray) -> dict[str, Any]:
    body = memoryview(answer)[1:]  # no copy of a large answer
    if answer[:1] == b"O":
        import orjson

        return orjson.loads(body)  # type: ignore[no-any-return]
    return json.loads(bytes(body))  # type: ignore[no-any-return]


class _Collect(logging.Handler):
    def __init__(self, records: list[tuple[str, int, str]]) -> None:
        super().__init__(logging.WARNING)
        self.records = records

    def emit(self, record: logging.LogRecord) -> None:
        if len(self.records) < 50:
            self.records.append((record.name, record.levelno, record.getMessage()))


def _capture_logs(records: list[tuple[str, int, str]]) -> None:
    """Warnings (pypdf's, ours) go back with the answer, to be logged in the backend's own format."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(_Collect(records))
    root.setLevel(logging.WARNING)


def _warm_up() -> None:
    """Parses one small file of each format, so lazy imports, compiled patterns and library caches are built once
    here and inherited by every worker instead of rebuilt by each."""
    import docx

    from rag_backend.parsing import parse_document

    buf = io.BytesIO()
    document = docx.Document()
    document.add_heading("Warm", level=1)
    document.add_paragraph("Up.")
    document.add_table(rows=1, cols=2).cell(0, 0).text = "cell"
    document.save(buf)
    samples = [
        (buf.getvalue(), "docx"),
        (_tiny_pdf(), "pdf"),
        (b"<html><head><title>w</title></head><body><h1>w</h1><p>up</p><table><tr><td>c</td></tr></table></body></html>",
         "html"),
        (b"---\ntitle: w\n---\n# w\nup\n", "markdown"),
        (b"w\xe9rm up", "text"),
    ]  # fmt: skip
    for data, fmt in samples:
        with contextlib.suppress(Exception):  # a warm-up is an optimisation, never a reason not to serve
            parse_document(data, fmt, ParseLimits())


def _tiny_pdf() -> bytes:
    """One page with one line of text, with a correct cross-reference table (pypdf checks it)."""
    text = b"BT /F1 12 Tf 10 100 Td (warm up) Tj ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> "
        b">>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(text), text),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)
