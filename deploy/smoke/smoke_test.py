"""End-to-end smoke test of a running backend (and the ml-api and store behind it).

Creates a throw-away collection, uploads a small Markdown document, waits until it is indexed, asks a question whose
answer is in it, checks that the document comes back first, and deletes the collection again. Python stdlib only:
`scripts/stack test` pipes this file into the backend container (`python - < deploy/smoke/smoke_test.py`), and it
runs anywhere else as `python3 deploy/smoke/smoke_test.py --url http://localhost:8000`.
Exit status 0 when every step passed; each step prints one line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
import uuid

DOCUMENT = """# Smoke test of the retrieval stack

The lighthouse keeper of Quillon Point counts exactly seventeen ravens every morning before breakfast.
Ravens are large black birds of the crow family; they nest on the cliffs below the lighthouse.

## Unrelated notes

Photovoltaic cells convert sunlight into electricity. Tides follow the moon.
"""
QUESTION = "How many ravens does the lighthouse keeper of Quillon Point count?"


class StepFailed(Exception):
    pass


class Client:
    def __init__(self, base: str, api_key: str | None, timeout: float) -> None:
        self.base = base.rstrip("/")
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.timeout = timeout

    def call(self, method: str, path: str, body: bytes | None = None, content_type: str | None = None):
        headers = dict(self.headers)
        if content_type:
            headers["Content-Type"] = content_type
        req = urllib.request.Request(self.base + path, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw, status = resp.read(), resp.status
        except urllib.error.HTTPError as exc:
            raw, status = exc.read(), exc.code
        except OSError as exc:
            raise StepFailed(f"{method} {path}: {exc}") from None
        try:
            return status, json.loads(raw or b"null")
        except ValueError:
            return status, raw.decode("utf-8", "replace")

    def json(self, method: str, path: str, payload: object):
        return self.call(method, path, json.dumps(payload).encode(), "application/json")

    def upload(self, collection: str, filename: str, data: bytes):
        boundary = uuid.uuid4().hex
        parts = [
            f'--{boundary}\r\nContent-Disposition: form-data; name="collection"\r\n\r\n{collection}\r\n'.encode(),
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{filename}"\r\n'
                "Content-Type: text/markdown\r\n\r\n"
            ).encode()
            + data
            + b"\r\n",
            f"--{boundary}--\r\n".encode(),
        ]
        return self.call("POST", "/api/documents", b"".join(parts), f"multipart/form-data; boundary={boundary}")


def step(name: str, ok: bool, detail: object) -> None:
    print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail if isinstance(detail, str) else json.dumps(detail)}")
    if not ok:
        raise StepFailed(name)


def run(client: Client, index_timeout: float) -> None:
    status, body = client.call("GET", "/ready")
    step("backend /ready", status == 200, body)

    collection = f"smoke-{uuid.uuid4().hex[:10]}"
    status, body = client.json("POST", "/api/collections", {"name": collection})
    step(f"create collection {collection}", status == 201, body)
    try:
        status, body = client.upload(collection, "smoke-test.md", DOCUMENT.encode())
        doc = (body or {}).get("documents", [{}])[0] if isinstance(body, dict) else {}
        step("upload a document", status == 202 and bool(doc.get("id")), body)
        doc_id = doc["id"]

        deadline = time.monotonic() + index_timeout
        while True:
            status, body = client.call("GET", f"/api/documents/{doc_id}")
            state = body.get("status") if isinstance(body, dict) else None
            if state in ("ready", "failed") or time.monotonic() > deadline or status != 200:
                break
            time.sleep(0.5)
        step("document indexed", state == "ready", {k: (body or {}).get(k) for k in ("status", "chunks", "error")})

        status, body = client.json("POST", "/api/query", {"query": QUESTION, "collection": collection, "top_k": 3})
        results = body.get("results", []) if isinstance(body, dict) else []
        top = results[0] if results else {}
        step(
            "query finds it",
            status == 200 and top.get("document_id") == doc_id and "seventeen ravens" in top.get("text", ""),
            {"results": len(results), "timings": (body or {}).get("timings") if isinstance(body, dict) else body},
        )
    finally:
        status, body = client.call("DELETE", f"/api/collections/{collection}")
        step(f"delete collection {collection}", status == 200, body)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("SMOKE_URL", "http://127.0.0.1:8000"), help="backend base URL")
    parser.add_argument("--api-key", default=os.environ.get("API_KEY") or None, help="default: $API_KEY")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for indexing")
    args = parser.parse_args(argv)
    try:
        run(Client(args.url, args.api_key, timeout=60), args.timeout)
    except StepFailed as exc:
        print(f"smoke test failed at: {exc}", file=sys.stderr)
        return 1
    print("smoke test passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
