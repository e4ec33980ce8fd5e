"""deploy/ollama/entrypoint.sh for real: run under bash against a fake Ollama HTTP API (see conftest.py) and a fake
`ollama` binary on PATH for the `ollama serve` path."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
from conftest import ENTRYPOINT, free_port, wait_for


def entry_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "OLLAMA_STATE_DIR": str(tmp_path / "state"),
        "OLLAMA_PROBE_TIMEOUT_S": "5",
        "OLLAMA_START_TIMEOUT_S": "30",
        "OLLAMA_PULL_TIMEOUT_S": "30",
    }
    env.update(extra)
    return env


def run(args: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(ENTRYPOINT), *args], env=env, capture_output=True, text=True, timeout=timeout)


def log_records(stderr: str) -> list[dict]:
    """Every line the entrypoint logs is a JSON object with the fields the other services write."""
    records = [json.loads(line) for line in stderr.splitlines() if line.strip()]
    for r in records:
        assert {"ts", "level", "logger", "msg", "service"} <= r.keys(), r
        assert r["service"] == "ollama" and r["logger"] == "ollama-entrypoint"
    return records


class Serving:
    """`entrypoint.sh serve` in the background, its log in a file."""

    def __init__(self, tmp_path: Path, env: dict[str, str]) -> None:
        self.err = tmp_path / "entrypoint.stderr"
        self.proc = subprocess.Popen(
            ["bash", str(ENTRYPOINT), "serve"], env=env, stdout=subprocess.DEVNULL, stderr=self.err.open("w")
        )

    def log(self) -> str:
        return self.err.read_text() if self.err.exists() else ""

    def wait_log(self, text: str, timeout: float = 30) -> None:
        def seen() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"entrypoint exited ({self.proc.returncode}) before logging {text!r}:\n{self.log()}"
                )
            return text in self.log()

        wait_for(seen, timeout, what=repr(text))

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)


@pytest.fixture
def serving(tmp_path):
    started: list[Serving] = []

    def start(env: dict[str, str]) -> Serving:
        s = Serving(tmp_path, env)
        started.append(s)
        return s

    yield start
    for s in started:
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait()


def test_skips_serve_when_ollama_answers_and_pulls_only_missing(tmp_path, fake_ollama, fake_bin, serving):
    fake = fake_ollama(["llama3.2:latest", "qwen2.5:0.5b"])
    env = entry_env(
        tmp_path, OLLAMA_URL=fake.url, OLLAMA_PULL_MODELS="llama3.2, nomic-embed-text:v1.5,qwen2.5:0.5b", **fake_bin
    )
    s = serving(env)
    s.wait_log("pulled nomic-embed-text:v1.5")
    assert s.proc.poll() is None, "it stays up while the external Ollama serves"
    assert fake.pulls() == ["nomic-embed-text:v1.5"], "only the missing model is pulled"
    pull = next(r for r in fake.requests() if r["method"] == "POST")
    assert pull["body"] == {"model": "nomic-embed-text:v1.5", "stream": True}
    assert pull["protocol"] == "HTTP/1.0"
    assert not Path(fake_bin["FAKE_OLLAMA_CALLS"]).exists(), "no ollama serve when one already answers"
    assert (tmp_path / "state" / "url").read_text().strip() == fake.url
    assert s.stop() == 0
    records = log_records(s.log())
    msgs = [r["msg"] for r in records]
    assert any("already answers" in m for m in msgs)
    assert "model llama3.2 is present" in msgs and "model qwen2.5:0.5b is present" in msgs
    # Pull progress from the NDJSON stream, each status once.
    assert "pull nomic-embed-text:v1.5: verifying sha256 digest" in msgs
    assert sum("pulling 6a0746a1ec1a" in m for m in msgs) == 1


def test_nothing_to_pull_when_all_present(tmp_path, fake_ollama, fake_bin, serving):
    fake = fake_ollama(["llama3.2:3b"])
    s = serving(entry_env(tmp_path, OLLAMA_URL=fake.url, OLLAMA_PULL_MODELS="llama3.2:3b", **fake_bin))
    s.wait_log("model llama3.2:3b is present")
    assert fake.pulls() == []
    assert s.stop() == 0


def test_starts_ollama_serve_when_none_answers(tmp_path, fake_bin, serving):
    port = free_port()
    closed = free_port()  # nothing listens there: the configured URL does not answer
    env = entry_env(
        tmp_path,
        OLLAMA_URL=f"http://127.0.0.1:{closed}",
        OLLAMA_HOST=f"0.0.0.0:{port}",
        OLLAMA_PULL_MODELS="llama3.2:1b",
        FAKE_MODELS="other:latest",
        **fake_bin,
    )
    s = serving(env)
    s.wait_log("pulled llama3.2:1b")
    calls = Path(fake_bin["FAKE_OLLAMA_CALLS"]).read_text()
    assert "ARGS serve" in calls
    served = [json.loads(line) for line in Path(fake_bin["FAKE_REQUESTS"]).read_text().splitlines()]
    assert [r["body"]["model"] for r in served if r.get("method") == "POST"] == ["llama3.2:1b"]
    assert (tmp_path / "state" / "url").read_text().strip() == f"http://127.0.0.1:{port}"
    # The health probe sees the started server with its model.
    health = run(["health"], env)
    assert health.returncode == 0, health.stdout + health.stderr
    # SIGTERM reaches ollama serve (the fake exits 0 on it, as Ollama does) and the entrypoint exits with its status.
    assert s.stop() == 0
    assert "ollama serve exited with status 0" in s.log()
    log_records(s.log())


def test_serve_that_dies_early_fails_the_container(tmp_path, fake_bin):
    env = entry_env(
        tmp_path,
        OLLAMA_URL=f"http://127.0.0.1:{free_port()}",
        OLLAMA_HOST=f"127.0.0.1:{free_port()}",
        OLLAMA_PULL_MODELS="x",
        FAKE_SERVE_EXIT="3",
        **fake_bin,
    )
    r = run(["serve"], env)
    assert r.returncode == 3
    assert "exited with status 3 before answering" in r.stderr


def test_serve_that_never_answers_times_out(tmp_path, fake_bin):
    env = entry_env(
        tmp_path,
        OLLAMA_URL=f"http://127.0.0.1:{free_port()}",
        OLLAMA_HOST=f"127.0.0.1:{free_port()}",
        OLLAMA_START_TIMEOUT_S="2",
        FAKE_SERVE_HANG="1",
        **fake_bin,
    )
    r = run(["serve"], env)
    assert r.returncode == 1
    assert "did not answer" in r.stderr


def test_failed_pull_is_logged_and_health_reports_the_missing_model(tmp_path, fake_ollama, fake_bin, serving):
    fake = fake_ollama(["llama3.2:latest"], fail=["no-such-model"])
    env = entry_env(tmp_path, OLLAMA_URL=fake.url, OLLAMA_PULL_MODELS="no-such-model llama3.2", **fake_bin)
    s = serving(env)
    s.wait_log("some models are missing")
    assert s.proc.poll() is None, "a failed pull does not stop the server"
    err = [r for r in log_records(s.log()) if r["level"] == "error"]
    assert any("no-such-model failed (HTTP 500: pull model manifest: file does not exist)" in r["msg"] for r in err)
    health = run(["health"], env)
    assert health.returncode == 1
    assert "lacks: no-such-model" in health.stdout
    assert s.stop() == 0


def test_health(tmp_path, fake_ollama):
    fake = fake_ollama(["llama3.2:latest"])
    ok = run(["health"], entry_env(tmp_path, OLLAMA_URL=fake.url, OLLAMA_PULL_MODELS="llama3.2"))
    assert ok.returncode == 0 and "answers" in ok.stdout
    missing = run(["health"], entry_env(tmp_path, OLLAMA_URL=fake.url, OLLAMA_PULL_MODELS="llama3.2 phi3"))
    assert missing.returncode == 1 and "lacks: phi3" in missing.stdout
    fake.stop()
    down = run(["health"], entry_env(tmp_path, OLLAMA_URL=fake.url, OLLAMA_PULL_MODELS=""))
    assert down.returncode == 1 and "no answer" in down.stdout


def test_pull_command_pulls_given_models_that_are_missing(tmp_path, fake_ollama):
    fake = fake_ollama(["llama3.2:latest"])
    env = entry_env(tmp_path, OLLAMA_URL=fake.url, OLLAMA_PULL_MODELS="llama3.2")
    r = run(["pull", "llama3.2", "phi3:mini"], env)
    assert r.returncode == 0, r.stderr
    assert fake.pulls() == ["phi3:mini"]
    again = run(["pull"], env)  # default list: already there
    assert again.returncode == 0 and fake.pulls() == ["phi3:mini"]
    failing = fake_ollama([], fail=["nope"])
    bad = run(["pull", "nope"], entry_env(tmp_path, OLLAMA_URL=failing.url))
    assert bad.returncode == 1


def test_ollama_models_is_the_list_unless_it_is_a_path(tmp_path, fake_ollama, fake_bin, serving):
    # Without OLLAMA_PULL_MODELS, OLLAMA_MODELS names the models (the variable) and is unset before
    # `ollama serve`, for which it would be the model directory.
    port = free_port()
    env = entry_env(
        tmp_path,
        OLLAMA_URL=f"http://127.0.0.1:{free_port()}",
        OLLAMA_HOST=f"127.0.0.1:{port}",
        OLLAMA_MODELS="tinyllama,phi3:mini",
        **fake_bin,
    )
    s = serving(env)
    s.wait_log("pulled phi3:mini")
    calls = Path(fake_bin["FAKE_OLLAMA_CALLS"]).read_text()
    assert "OLLAMA_MODELS=<unset>" in calls
    assert s.stop() == 0
    # A path is Ollama's own setting: kept, and nothing is pulled.
    fake = fake_ollama([])
    r = run(["pull"], entry_env(tmp_path, OLLAMA_URL=fake.url, OLLAMA_MODELS="/var/lib/ollama/models"))
    assert r.returncode == 0 and fake.pulls() == []
    assert "no models to pull" in r.stderr


def test_cli_runs_ollama_against_the_url_in_use(tmp_path, fake_bin):
    env = entry_env(tmp_path, OLLAMA_URL="http://host.docker.internal:11434", **fake_bin)
    r = run(["cli", "list"], env)
    assert r.returncode == 0 and r.stdout.strip() == "fake ollama: list"
    assert "ENV OLLAMA_HOST=http://host.docker.internal:11434" in Path(fake_bin["FAKE_OLLAMA_CALLS"]).read_text()
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "url").write_text("http://127.0.0.1:11500\n")
    run(["cli", "rm", "x"], env)
    assert "ENV OLLAMA_HOST=http://127.0.0.1:11500" in Path(fake_bin["FAKE_OLLAMA_CALLS"]).read_text()


def test_help_and_unknown_command(tmp_path):
    h = run(["--help"], entry_env(tmp_path))
    assert h.returncode == 0 and "OLLAMA_PULL_MODELS" in h.stdout and "health" in h.stdout
    bad = run(["frobnicate"], entry_env(tmp_path))
    assert bad.returncode == 2 and "unknown command" in bad.stderr


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://ollama:11434", "ollama 11434 "),
        ("http://host.docker.internal", "host.docker.internal 80 "),
        ("http://127.0.0.1:8080/ollama/", "127.0.0.1 8080 /ollama"),
        ("localhost", "localhost 11434 "),
        ("127.0.0.1:11500", "127.0.0.1 11500 "),
        ("http://[::1]:11434", "::1 11434 "),
    ],
)
def test_parse_url(url, expected):
    script = f'source "{ENTRYPOINT}"; parse_url "$1"; printf "%s %s %s" "$URL_HOST" "$URL_PORT" "$URL_PREFIX"'
    r = subprocess.run(["bash", "-c", script, "_", url], capture_output=True, text=True, check=True)
    assert r.stdout == expected


def test_https_is_refused():
    r = subprocess.run(["bash", "-c", f'source "{ENTRYPOINT}"; parse_url https://x'], capture_output=True, text=True)
    assert r.returncode == 2 and "only http://" in r.stderr


@pytest.mark.parametrize(
    ("name", "normalised"),
    [
        ("llama3.2", "llama3.2:latest"),
        ("Llama3.2:3B", "llama3.2:3b"),
        ("hf.co/org/repo:Q4_K_M", "hf.co/org/repo:q4_k_m"),
        ("registry.local:5000/team/model", "registry.local:5000/team/model:latest"),
    ],
)
def test_model_names_compare_as_ollama_lists_them(name, normalised):
    r = subprocess.run(["bash", "-c", f'source "{ENTRYPOINT}"; norm "$1"', "_", name], capture_output=True, text=True)
    assert r.stdout == normalised


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("0.0.0.0:11434", "http://127.0.0.1:11434"),
        ("http://0.0.0.0:9000", "http://127.0.0.1:9000"),
        ("", "http://127.0.0.1:11434"),
        ("10.0.0.5:11434", "http://10.0.0.5:11434"),
    ],
)
def test_local_url_from_ollama_host(host, url):
    env = {"PATH": os.environ["PATH"], "OLLAMA_HOST": host}
    r = subprocess.run(["bash", "-c", f'source "{ENTRYPOINT}"; local_url'], env=env, capture_output=True, text=True)
    assert r.stdout == url
