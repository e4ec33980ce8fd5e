"""The page's nginx in front of scaled backends, run for real: frontend/nginx/default.conf.template rendered as the
image renders it, served by the machine's nginx (Debian's `nginx-light`, which .ci/run installs; without one the
tests fail, never skip), with a stand-in for Docker's DNS that answers `backend` with the replicas' addresses and
stand-in backends on 127.0.0.x.

It shows what `docker compose up --scale backend=N` relies on: requests spread over every replica, a replica added
to DNS gets traffic once the cached answer expires, one that went away is skipped without an error, and port 8000
passes the API through unbuffered (Server-Sent Events token by token) with the body limit and the forwarded host, and
cookies pass both ways unchanged (the page's session: `Set-Cookie` from the backend, `Cookie` to it). Only what
cannot run here is changed in the rendered file: the listen ports (free ones, no IPv6), the page's root, and the DNS
cache time (1 s instead of 10 s, so the test need not wait)."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from conftest import ROOT
from devharness import free_port, serve

TEMPLATE = ROOT / "frontend" / "nginx" / "default.conf.template"
NGINX = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)
REPLICAS = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]


@pytest.fixture(autouse=True, scope="module")
def _nginx_installed() -> None:
    """`make test` needs the real nginx: a missing binary fails every test here with the fix, instead of a skip that
    a green run would hide."""
    if NGINX is None:
        pytest.fail("no nginx binary: apt-get install nginx-light (.ci/run installs it) to run the page's nginx")


class FakeDNS:
    """Answers A queries for one name with the current address list (TTL 1), NXDOMAIN for any other: Docker's
    embedded DNS as nginx sees it, a scaled service being one name with an address per replica."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.addresses: list[str] = []
        self.queries = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                data, peer = self.sock.recvfrom(512)
            except OSError:
                return
            self.queries += 1
            self.sock.sendto(self._answer(data), peer)

    def _answer(self, query: bytes) -> bytes:
        qid, flags = struct.unpack("!HH", query[:4])
        pos, labels = 12, []
        while query[pos]:
            labels.append(query[pos + 1 : pos + 1 + query[pos]].decode())
            pos += 1 + query[pos]
        question = query[12 : pos + 5]
        qtype = struct.unpack("!H", query[pos + 1 : pos + 3])[0]
        found = ".".join(labels).lower() == self.name
        answers = list(self.addresses) if found and qtype == 1 else []
        rcode = 0 if found else 3
        header = struct.pack("!HHHHHH", qid, 0x8180 | (flags & 0x0100) | rcode, 1, len(answers), 0, 0)
        records = b"".join(struct.pack("!HHHIH", 0xC00C, 1, 1, 1, 4) + socket.inet_aton(a) for a in answers)
        return header + question + records

    def close(self) -> None:
        self.sock.close()


# What the backend's sign-in answers: a session cookie with every attribute the backend sets, and a second one, so
# that a proxy merging, rewriting or dropping either would show.
SET_COOKIES = [
    "rag_session=tok-3Fz_9; HttpOnly; Max-Age=43200; Path=/; SameSite=lax; Secure",
    "other=1; Path=/api",
]


def fake_backend(address: str, port: int, seen: list[dict]) -> ThreadingHTTPServer:
    """A backend replica: says who it is, records what nginx sent, streams two events a second apart, and sets
    cookies on POST /api/auth/login."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _reply(self, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(200)
            if self.path == "/api/auth/login":
                for cookie in SET_COOKIES:
                    self.send_header("Set-Cookie", cookie)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            seen.append({"replica": address, "path": self.path, "headers": dict(self.headers)})
            if self.path == "/api/query/stream":
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                for i in range(2):
                    self.wfile.write(f"data: token {i}\n\n".encode())
                    self.wfile.flush()
                    time.sleep(1.0)
                self.close_connection = True
                return
            self._reply({"replica": address, "path": self.path})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if self.headers.get("Transfer-Encoding") == "chunked":
                while (size := int(self.rfile.readline().strip(), 16)) > 0:
                    body += self.rfile.read(size)
                    self.rfile.readline()
                self.rfile.readline()
            seen.append({"replica": address, "path": self.path, "bytes": len(body), "headers": dict(self.headers)})
            self._reply({"replica": address, "bytes": len(body)})

    server = ThreadingHTTPServer((address, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def render(tmp: Path, dns_port: int, backend_port: int, page_port: int, api_port: int) -> Path:
    """The template as the image's entrypoint renders it (envsubst of its three variables), then the test-only
    changes, each checked to have applied."""
    text = TEMPLATE.read_text()
    for var, value in {
        "NGINX_RESOLVER": f"127.0.0.1:{dns_port}",
        "BACKEND_URL": f"http://backend:{backend_port}",
        "CLIENT_MAX_BODY_SIZE": "1m",
    }.items():
        assert "${" + var + "}" in text
        text = text.replace("${" + var + "}", value)
    changes = [
        (r"(?m)^\s*listen \[::\]:\d+;\n", ""),
        (r"listen 3000;", f"listen 127.0.0.1:{page_port};"),
        (r"listen 8000;", f"listen 127.0.0.1:{api_port};"),
        (r"valid=10s", "valid=1s"),
        (r"root /usr/share/nginx/html;", f"root {tmp / 'html'};"),
    ]
    for pattern, new in changes:
        text, n = re.subn(pattern, new, text)
        assert n, pattern
    (tmp / "html").mkdir()
    (tmp / "html" / "index.html").write_text("<!doctype html><title>page</title>")
    (tmp / "default.conf").write_text(text)
    for d in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (tmp / d).mkdir()
    conf = tmp / "nginx.conf"
    conf.write_text(
        # As root (CI), nginx would switch its worker to `nobody`, who cannot read tmp_path.
        f"""{"user root;" if os.geteuid() == 0 else ""}
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log off;
    default_type application/octet-stream;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    include {tmp}/default.conf;
}}
"""
    )
    return conf


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[dict]:
    dns = FakeDNS("backend")
    backend_port = free_port()
    seen: list[dict] = []
    servers = {a: fake_backend(a, backend_port, seen) for a in REPLICAS}
    page_port, api_port = free_port(), free_port()
    conf = render(tmp_path, dns.port, backend_port, page_port, api_port)
    cmd = [NGINX, "-p", str(tmp_path), "-c", str(conf)]
    try:
        with serve(cmd, None, tmp_path / "nginx.out", url=f"http://127.0.0.1:{page_port}", health="/healthz") as nginx:
            yield {
                "dns": dns,
                "servers": servers,
                "seen": seen,
                "page": nginx.url,
                "api": f"http://127.0.0.1:{api_port}",
                "log": tmp_path / "error.log",
            }
    finally:
        dns.close()
        for server in servers.values():
            server.shutdown()
            server.server_close()


def spread(url: str, n: int) -> Counter:
    """Which replica answered each of n requests (each a new connection, as separate clients would)."""
    hits: Counter = Counter()
    for _ in range(n):
        r = httpx.get(url, timeout=10)
        assert r.status_code == 200, r.text
        hits[r.json()["replica"]] += 1
    return hits


def test_requests_spread_over_every_replica_and_follow_scaling(stack):
    dns = stack["dns"]
    dns.addresses = REPLICAS[:2]
    first = spread(stack["api"] + "/api/collections", 60)
    assert set(first) == set(REPLICAS[:2]) and min(first.values()) >= 10, first
    # `--scale backend=3`: the new replica is in DNS; nginx asks again once its cached answer has expired.
    dns.addresses = REPLICAS
    time.sleep(1.5)
    after = spread(stack["api"] + "/api/collections", 90)
    assert set(after) == set(REPLICAS) and min(after.values()) >= 10, after
    # The page's /api goes the same way.
    page = spread(stack["page"] + "/api/collections", 60)
    assert set(page) == set(REPLICAS), page


def test_a_replica_that_went_away_is_skipped(stack):
    dns = stack["dns"]
    dns.addresses = REPLICAS
    gone = stack["servers"].pop(REPLICAS[0])
    gone.shutdown()
    gone.server_close()  # connection refused from now on, while DNS (cached) still lists it
    hits = spread(stack["api"] + "/health", 40)
    assert set(hits) == set(REPLICAS[1:]), hits


def test_port_8000_streams_events_unbuffered(stack):
    stack["dns"].addresses = REPLICAS[:1]
    started = time.monotonic()
    with httpx.stream("GET", stack["api"] + "/api/query/stream", timeout=10) as r:
        assert r.status_code == 200
        lines = r.iter_lines()
        first = next(line for line in lines if line)
        first_at = time.monotonic() - started
        rest = [line for line in lines if line]
    assert first == "data: token 0" and rest == ["data: token 1"]
    # The first event arrives while the replica is still producing the second (a second later).
    assert first_at < 0.8, f"first event after {first_at:.2f}s: buffered"


def test_port_8000_passes_paths_headers_and_the_body_limit(stack):
    stack["dns"].addresses = REPLICAS[:1]
    api = stack["api"]
    r = httpx.get(api + "/docs?x=1", timeout=10)
    assert r.status_code == 200 and r.json()["path"] == "/docs?x=1"
    headers = {k.lower(): v for k, v in stack["seen"][-1]["headers"].items()}
    # The backend's same-origin check sees the host and port the client used.
    assert headers["x-forwarded-host"] == api.removeprefix("http://")
    assert headers["x-forwarded-for"] == "127.0.0.1"
    r = httpx.post(api + "/api/documents", content=b"x" * 300_000, timeout=10)
    assert r.status_code == 200 and r.json()["bytes"] == 300_000
    # CLIENT_MAX_BODY_SIZE (1m here; MAX_REQUEST_MB in compose) applies on 8000 as on the page.
    for base in (api, stack["page"]):
        r = httpx.post(base + "/api/documents", content=b"x" * 1_200_000, timeout=10)
        assert r.status_code == 413, (base, r.status_code)


def test_the_page_is_still_served_on_its_own_port(stack):
    stack["dns"].addresses = REPLICAS[:1]
    r = httpx.get(stack["page"] + "/some/route", timeout=10)
    assert r.status_code == 200 and "<title>page</title>" in r.text
    assert r.headers["x-frame-options"] == "DENY" and "default-src 'self'" in r.headers["content-security-policy"]
    assert httpx.get(stack["page"] + "/healthz", timeout=10).text == "ok\n"


def test_cookies_pass_through_unchanged(stack):
    """The page's session: the backend's Set-Cookie headers reach the browser as sent (each one, every attribute:
    no proxy_cookie_* rewrite, no hidden header), and the browser's Cookie header reaches the backend as sent."""
    stack["dns"].addresses = REPLICAS[:1]
    for base in (stack["page"], stack["api"]):
        r = httpx.post(base + "/api/auth/login", json={"email": "a@example.com", "password": "x"}, timeout=10)
        assert r.status_code == 200, (base, r.text)
        assert r.headers.get_list("set-cookie") == SET_COOKIES, base
        cookie = "rag_session=tok-3Fz_9; other=1; theme=dark"
        r = httpx.get(base + "/api/auth/me", headers={"Cookie": cookie}, timeout=10)
        assert r.status_code == 200 and r.json()["path"] == "/api/auth/me"
        headers = {k.lower(): v for k, v in stack["seen"][-1]["headers"].items()}
        assert headers["cookie"] == cookie, base
