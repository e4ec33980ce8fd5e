"""`ml-api models prepare` and the reranker slot: a real cross-encoder online, a loud fallback only offline.

No test reaches the real hub: "offline" is HF_ENDPOINT on a port nothing listens on, "online" is a small local
HTTP server speaking the hub's wire format (model info, then HEAD/GET per file) that serves the test
cross-encoder under the id BAAI/bge-reranker-base.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import EMBED_DIR, RERANK_DIR, ROOT, start_server, stop_server
from devharness import free_port

from ml_api.tools.hub import checkpoint_files

REPO = "BAAI/bge-reranker-base"
SHA = "0123456789abcdef0123456789abcdef01234567"


class FakeHub(ThreadingHTTPServer):
    """The hub's API as huggingface_hub calls it; `status` other than 200 answers every request with it."""

    def __init__(self, files: dict[str, bytes], status: int = 200) -> None:
        super().__init__(("127.0.0.1", 0), _HubHandler)
        self.files, self.status, self.requests = files, status, []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _HubHandler(BaseHTTPRequestHandler):
    server: FakeHub

    def log_message(self, *args: object) -> None:
        pass

    def _answer(self, head: bool) -> None:
        path = self.path.split("?")[0]
        self.server.requests.append(f"{self.command} {path}")
        code, body, headers = self.server.status, b"{}", {"Content-Type": "application/json"}
        siblings = [*self.server.files, "pytorch_model.bin", "onnx/model.onnx"]  # what a real repo also holds
        if code != 200:
            pass
        elif path in (f"/api/models/{REPO}", f"/api/models/{REPO}/revision/main"):
            body = json.dumps({"id": REPO, "sha": SHA, "siblings": [{"rfilename": n} for n in siblings]}).encode()
        elif path.startswith(f"/{REPO}/resolve/{SHA}/") and path.rsplit("/", 1)[1] in self.server.files:
            body = self.server.files[path.rsplit("/", 1)[1]]
            headers = {"X-Repo-Commit": SHA, "ETag": f'"{hashlib.sha256(body).hexdigest()}"'}
        else:
            code = 404
        self.send_response(code)
        for key, value in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(key, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def do_GET(self) -> None:
        self._answer(head=False)

    def do_HEAD(self) -> None:
        self._answer(head=True)


@pytest.fixture
def hub(request: pytest.FixtureRequest) -> Iterator[FakeHub]:
    files = {f.name: f.read_bytes() for f in RERANK_DIR.iterdir() if f.is_file() and f.name != "manifest.json"}
    server = FakeHub(files, getattr(request, "param", 200))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def models(tmp_path: Path) -> Path:
    """A models dir with the embedder already there (linked), so `prepare` only does reranker work."""
    out = tmp_path / "models"
    out.mkdir()
    (out / "all-MiniLM-L6-v2").symlink_to(EMBED_DIR)
    return out


def prepare(models: Path, endpoint: str, *extra: str, **env_extra: str) -> subprocess.CompletedProcess[str]:
    shared = models.parent / "shared"
    if not shared.is_dir():
        (shared / "models").mkdir(parents=True)
        (shared / "models" / RERANK_DIR.name).symlink_to(RERANK_DIR)
    env = {
        "PATH": "/usr/bin:/bin",
        "HF_ENDPOINT": endpoint,
        "HF_HOME": str(models.parent / "hf-home"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "SHARED_DIR": str(shared),
        **env_extra,
    }
    cmd = [sys.executable, "-m", "ml_api", "models", "prepare", "--models-dir", str(models), *extra]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)


def slot_manifest(models: Path) -> dict:
    return json.loads((models / "reranker" / "manifest.json").read_text())


def dead_endpoint() -> str:
    return f"http://127.0.0.1:{free_port()}"  # nothing listens there: the hub is unreachable


def test_offline_fills_the_slot_with_the_test_reranker_and_says_so(models: Path) -> None:
    res = prepare(models, dead_endpoint())
    assert res.returncode == 0, res.stderr[-2000:]
    assert "reranker: offline fallback" in res.stdout
    assert "#" * 100 + "\n# WARNING: the default reranker" in res.stderr and "TEST cross-encoder" in res.stderr
    assert "unreachable" in res.stderr and "make models" in res.stderr
    manifest = slot_manifest(models)
    assert manifest["fallback"] is True and manifest["wanted"] == REPO and "unreachable" in manifest["fallback_reason"]
    assert (models / "reranker" / "model.safetensors").read_bytes() == (RERANK_DIR / "model.safetensors").read_bytes()
    again = prepare(models, dead_endpoint())  # still offline: kept, and still loud
    assert "still the offline fallback" in again.stdout and "TEST cross-encoder" in again.stderr


def test_hf_hub_offline_never_asks_the_hub(models: Path, hub: FakeHub) -> None:
    res = prepare(models, hub.url, HF_HUB_OFFLINE="1")
    assert res.returncode == 0 and "offline fallback" in res.stdout
    assert hub.requests == [] and "HF_HUB_OFFLINE is set" in slot_manifest(models)["fallback_reason"]


def test_online_replaces_the_fallback_then_keeps_the_real_model(models: Path, hub: FakeHub) -> None:
    assert prepare(models, dead_endpoint()).returncode == 0
    res = prepare(models, hub.url)
    assert res.returncode == 0, res.stderr[-2000:]
    assert f"{REPO} fetched from the hub (replaced the offline fallback)" in res.stdout
    assert "WARNING" not in res.stderr
    manifest = slot_manifest(models)
    assert manifest | {"name": REPO, "source": REPO, "revision": SHA, "fallback": False} == manifest
    slot = models / "reranker"
    assert sorted(p.name for p in slot.iterdir()) == sorted([*hub.files, "manifest.json"])
    fetched = {r.rsplit("/", 1)[1] for r in hub.requests if r.startswith("GET /" + REPO)}
    assert fetched == set(hub.files)  # neither pytorch_model.bin nor onnx/: one set of weights
    assert not list(models.glob(".reranker*"))  # staging and the old slot are gone
    kept = prepare(models, dead_endpoint())  # a real model stays, whatever the network
    assert kept.returncode == 0 and "reranker: present (BAAI/bge-reranker-base" in kept.stdout
    assert "WARNING" not in kept.stderr and slot_manifest(models)["fallback"] is False


@pytest.mark.parametrize("hub", [404, 401], indirect=True)
def test_a_hub_that_says_no_is_an_error_not_a_fallback(models: Path, hub: FakeHub) -> None:
    res = prepare(models, hub.url)
    assert res.returncode == 2
    assert f"answered {hub.status} for {REPO}" in res.stderr and "HF_HUB_OFFLINE=1" in res.stderr
    assert not (models / "reranker").exists()


@pytest.mark.parametrize("hub", [503], indirect=True)
def test_a_hub_failing_on_its_side_counts_as_unreachable(models: Path, hub: FakeHub) -> None:
    res = prepare(models, hub.url)
    assert res.returncode == 0 and "offline fallback" in res.stdout
    assert "503" in slot_manifest(models)["fallback_reason"]


def test_prepare_with_another_reranker_id_asks_for_it(models: Path, hub: FakeHub) -> None:
    res = prepare(models, hub.url, "--reranker", "BAAI/bge-reranker-v2-m3")
    assert res.returncode == 2 and "answered 404 for BAAI/bge-reranker-v2-m3" in res.stderr


def test_checkpoint_files_take_one_set_of_weights() -> None:
    repo = ["config.json", "model.safetensors", "pytorch_model.bin", "onnx/model.onnx", "sentencepiece.bpe.model"]
    repo += ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", ".gitattributes", "README.md"]
    assert checkpoint_files(repo) == [
        "config.json",
        "model.safetensors",
        "sentencepiece.bpe.model",
        "special_tokens_map.json",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    assert "pytorch_model.bin" in checkpoint_files(["config.json", "pytorch_model.bin", "training_args.bin"])
    assert "training_args.bin" not in checkpoint_files(["config.json", "pytorch_model.bin", "training_args.bin"])


def test_serving_the_fallback_is_visible_in_info_and_the_log(models: Path, tmp_path: Path) -> None:
    assert prepare(models, dead_endpoint()).returncode == 0
    server = start_server(tmp_path, "fallback", RERANK_MODEL=str(models / "reranker"))
    try:
        with server.client() as http:
            reranking = http.get("/info").json()["reranking"]
    finally:
        stop_server(server)
    assert reranking["fallback"] is True and "unreachable" in reranking["fallback_reason"]
    assert reranking["model"] == RERANK_DIR.name and reranking["source"]
    assert "SERVING THE TEST RERANKER" in server.output()
