"""Parsing in worker processes under memory, CPU and wall-clock limits, so no upload can exhaust the backend.

The backend starts a fork server (`parsing.forkserver`: a fresh interpreter with the parsers imported and warm)
on first use and keeps a small pool of workers forked from it, one per parse running at once. A worker parses
one document at a time under its own memory and CPU limits; the backend kills it at PARSE_TIMEOUT_S, and a
worker whose parse ran out of memory or grew it retires, so its memory goes back to the system. Reusing warm
workers keeps the cost per document at a socket round trip (a fork per document cost 10-40 ms of copy-on-write
faults); workers idle for a minute are retired. The workers' log records travel back and are logged here.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag_backend.parsing.base import ParsedDocument, ParseError, Section, UnsupportedFormat
from rag_backend.parsing.forkserver import ACK, PID, loads, recv_exact, recv_frame, send_frame
from rag_backend.parsing.limits import ParseLimits, over

log = logging.getLogger(__name__)

_IDLE_S = 60.0  # an idle worker is retired after this long (the next parse forks a warm one in milliseconds)


@dataclass(eq=False)
class _Worker:
    sock: socket.socket
    pid: int
    fresh: bool = True
    idle_since: float = field(default_factory=time.monotonic)

    def kill(self) -> None:
        """Closing the socket ends an idle worker; SIGKILL ends a busy one (its fork server reaps it)."""
        self.sock.close()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(self.pid, signal.SIGKILL)


class _Pool:
    """The fork server's process and control socket, and the idle workers; all of it started on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._ctrl: socket.socket | None = None
        self._idle: list[_Worker] = []
        self._reaper: threading.Thread | None = None

    def acquire(self, fresh: bool = False) -> _Worker:
        with self._lock:
            if self._idle and not fresh:
                worker = self._idle.pop()
                worker.fresh = False
                return worker
            return self._fork_locked()

    def release(self, worker: _Worker) -> None:
        worker.idle_since = time.monotonic()
        with self._lock:
            self._idle.append(worker)

    def _fork_locked(self) -> _Worker:
        ours, theirs = socket.socketpair()
        try:
            for attempt in (1, 2):
                ctrl = self._ctrl or self._start_locked()
                try:
                    socket.send_fds(ctrl, [b"w"], [theirs.fileno()])
                    pid = recv_exact(ctrl, PID.size)
                    if pid is not None:
                        return _Worker(ours, int(PID.unpack(pid)[0]))
                except OSError:
                    pass
                self._stop_locked()  # the fork server died (killed, out of memory): start a fresh one
                if attempt == 2:
                    ours.close()
                    raise ParseError("the parser process could not be started (see the backend log)")
        finally:
            theirs.close()
        raise AssertionError("unreachable")

    def _start_locked(self) -> socket.socket:
        ours, theirs = socket.socketpair()
        root = str(Path(__file__).resolve().parents[2])  # rag_backend's parent: importable whatever the cwd
        env = os.environ | {"PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
        code = f"from rag_backend.parsing.forkserver import serve; serve({theirs.fileno()})"
        self._proc = subprocess.Popen(
            [sys.executable, "-c", code], pass_fds=(theirs.fileno(),), env=env, stdin=subprocess.DEVNULL
        )
        theirs.close()
        self._ctrl = ours
        if self._reaper is None:
            self._reaper = threading.Thread(target=self._reap, name="parse-reaper", daemon=True)
            self._reaper.start()
        return ours

    def _reap(self) -> None:
        while True:
            time.sleep(_IDLE_S / 4)
            now = time.monotonic()
            with self._lock:
                old = [w for w in self._idle if now - w.idle_since > _IDLE_S]
                self._idle = [w for w in self._idle if w not in old]
            for worker in old:
                worker.sock.close()  # it exits at end of stream

    def stop(self) -> None:
        with self._lock:
            self._stop_locked()

    def _stop_locked(self) -> None:
        for worker in self._idle:
            worker.sock.close()
        self._idle = []
        if self._ctrl is not None:
            self._ctrl.close()  # the fork server exits at end of stream
            self._ctrl = None
        if self._proc is not None:
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None


_POOL = _Pool()
atexit.register(_POOL.stop)


class _Stale(Exception):
    """A reused worker was gone before it took the request (killed while idle): try a fresh one."""


def parse_isolated(data: bytes, fmt: str, limits: ParseLimits) -> ParsedDocument:
    """`parse_document(data, fmt, limits)` in a worker process: the same result or the same ParseError, or a
    ParseError naming the limit the parse broke (time, memory). Blocking; call it from a thread."""
    deadline = time.monotonic() + limits.timeout_s
    header = _header(fmt, limits)
    for fresh in (False, True):
        worker = _POOL.acquire(fresh)
        try:
            answer = _exchange(worker, header, data, deadline)
        except _Stale:
            worker.sock.close()  # already gone: nothing to kill
            continue
        except TimeoutError:
            worker.kill()
            seconds = f"{limits.timeout_s:g}"
            raise over(f"parsing took longer than {seconds} s", "PARSE_TIMEOUT_S", seconds) from None
        except BaseException:
            worker.kill()
            raise
        if answer is None:
            worker.sock.close()  # it is gone already
            raise ParseError(
                "the parser process died without an answer; the file most likely needs more memory than "
                f"PARSE_MAX_MEMORY_MB={limits.max_memory_mb} or more time than PARSE_TIMEOUT_S={limits.timeout_s:g}"
            )
        body = loads(answer)
        if body.get("retire"):
            worker.sock.close()  # it exits by itself after this answer
        else:
            _POOL.release(worker)
        return _decode(body)
    raise ParseError("the parser process could not be reached (see the backend log)")


def _header(fmt: str, limits: ParseLimits) -> bytes:
    return json.dumps({"fmt": fmt, "limits": {f: getattr(limits, f) for f in ParseLimits.__slots__}}).encode()


def _exchange(worker: _Worker, header: bytes, data: bytes, deadline: float) -> bytearray | None:
    """Request, acknowledgement, answer; None when the worker died while parsing."""
    sock = worker.sock
    sock.settimeout(max(0.001, deadline - time.monotonic()))
    try:
        send_frame(sock, header)
        send_frame(sock, data)
        ack = recv_exact(sock, len(ACK))
    except (BrokenPipeError, ConnectionResetError):
        ack = None
    if ack is None:
        if worker.fresh:
            return None  # a fresh worker that died on the request: the request's doing
        raise _Stale
    sock.settimeout(max(0.001, deadline - time.monotonic()))
    try:
        return recv_frame(sock)
    except ConnectionResetError:
        return None


def _decode(body: dict[str, Any]) -> ParsedDocument:
    for name, level, message in body.get("logs", []):
        logging.getLogger(str(name)).log(int(level), "%s", message)
    error = body.get("error")
    if error is not None:
        if body.get("kind") == "unsupported":
            raise UnsupportedFormat(str(error))
        raise ParseError(str(error))
    doc = body["doc"]
    sections = [Section(text=t, page=p, heading=h) for t, p, h in doc["sections"]]
    return ParsedDocument(format=doc["format"], title=doc["title"], sections=sections)
