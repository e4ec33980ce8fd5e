"""scripts/stack without Docker: argument handling through its dry run (STACK_DRY_RUN=1 / -n prints the compose
commands), and the real execution path against a fake `docker` on PATH that records its arguments."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT, STACK, install_fake

FAKE_DOCKER = r"""#!/usr/bin/env bash
# Records every call (one line, shell-quoted) and its stdin for `exec ... python -`; answers `compose version`
# and `compose ps --format` from FAKE_PS.
printf '%q ' "$@" >>"$FAKE_DOCKER_CALLS"; echo >>"$FAKE_DOCKER_CALLS"
if [[ ${1-} == compose && ${2-} == version ]]; then echo "Docker Compose version v2.40.0"; exit 0; fi
for arg in "$@"; do
  if [[ $arg == ps ]]; then printf '%b' "${FAKE_PS-}"; exit 0; fi
  if [[ $arg == - ]]; then cat >"$FAKE_DOCKER_STDIN"; exit "${FAKE_EXEC_STATUS:-0}"; fi
done
[[ " $* " == *" exec "* ]] && exit "${FAKE_EXEC_STATUS:-0}"
exit 0
"""


def stack(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"), "STACK_GPU": "1"}
    base["STACK_ENGINE_ENV"] = "/dev/null"  # never the engine of a stack `make compose-up` brought up here
    base.update(env or {})
    return subprocess.run([str(STACK), *args], env=base, cwd=cwd or ROOT, capture_output=True, text=True, timeout=30)


def dry(*args: str, **env: str) -> list[list[str]]:
    """The compose commands a dry run prints, each split into words."""
    r = stack(*args, env={"STACK_DRY_RUN": "1", **env})
    assert r.returncode == 0, r.stderr
    lines = [line for line in r.stdout.splitlines() if line.startswith("+ ")]
    assert lines, r.stdout
    return [shlex.split(line[2:]) for line in lines]


def test_help():
    for flag in ("--help", "-h"):
        r = stack(flag)
        assert r.returncode == 0
        for word in (
            "start",
            "stop",
            "status",
            "logs",
            "pull",
            "list",
            "remove",
            "health",
            "test",
            "exec",
            "--cpu",
            "--profile",
            "--dry-run",
            "STACK_DRY_RUN",
        ):
            assert word in r.stdout, word
    assert stack("start", "--help").returncode == 0


def test_script_is_strict_bash():
    text = STACK.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in text
    assert os.access(STACK, os.X_OK)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "Usage:"),
        (("frobnicate",), "unknown command: frobnicate"),
        (("--frob", "start"), "unknown option: --frob"),
        (("start", "--profile", "gpu"), "unknown profile: gpu"),
        (("start", "--profile"), "needs a name"),
        (("remove",), "name the models"),
        (("exec", "backend"), "exec: usage"),
        (("logs", "--tail", "many"), "--tail takes a number"),
        (("stop", "--volumes", "backend"), "whole stack only"),
        (("list", "extra"), "takes no arguments"),
    ],
)
def test_bad_arguments_exit_2_with_a_reason(args, message):
    r = stack(*args, env={"STACK_DRY_RUN": "1"})
    assert r.returncode == 2
    assert message in r.stderr


def test_start_gpu_default_services():
    [cmd] = dry("start")
    assert cmd == ["docker", "compose", "-f", "docker-compose.yml", "up", "-d", "--build", "--wait", "--remove-orphans"]


def test_start_cpu_with_profiles_in_any_position():
    [a] = dry("--cpu", "start", "-p", "ollama", "--profile=monitoring", "backend")
    [b] = dry("start", "backend", "--profile", "ollama", "-p", "monitoring", "--cpu")
    expected = [
        "docker",
        "compose",
        "-f",
        "docker-compose.yml",
        "-f",
        "docker-compose.cpu.yml",
        "--profile",
        "ollama",
        "--profile",
        "monitoring",
        "up",
        "-d",
        "--build",
        "--wait",
        "--remove-orphans",
        "backend",
    ]
    assert a == expected and b == expected


def test_all_profiles_and_env_profiles():
    [cmd] = dry("-p", "all", "config")
    assert cmd[cmd.index("config") - 6 : cmd.index("config")] == [
        "--profile",
        "ollama",
        "--profile",
        "monitoring",
        "--profile",
        "logging",
    ]
    [cmd] = dry("config", STACK_PROFILES="logging,ollama")
    assert "--profile" in cmd and cmd.count("--profile") == 2 and "logging" in cmd and "ollama" in cmd
    r = stack("config", env={"STACK_DRY_RUN": "1", "STACK_PROFILES": "nope"})
    assert r.returncode == 2 and "unknown profile: nope" in r.stderr


def test_gpu_auto_detection_without_nvidia_smi(tmp_path):
    # No nvidia-smi on PATH: the CPU override is used.
    r = stack("-n", "start", env={"STACK_GPU": "auto", "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0 and "-f docker-compose.cpu.yml" in r.stdout
    # An nvidia-smi that lists a GPU: the GPU file alone.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    smi = bindir / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-1)'\n")
    smi.chmod(0o755)
    r = stack("-n", "start", env={"STACK_GPU": "auto", "PATH": f"{bindir}:/usr/bin:/bin"})
    assert r.returncode == 0 and "docker-compose.cpu.yml" not in r.stdout
    assert stack("-n", "start", env={"STACK_GPU": "maybe"}).returncode == 2


def test_commands_that_look_at_a_running_stack_see_every_profile():
    for args in (("status",), ("logs",), ("stop",), ("health",)):
        for cmd in dry(*args):
            assert cmd[cmd.index("--profile") + 1] == "*", args
    # ... unless profiles are named.
    [cmd] = dry("status", "-p", "ollama")
    assert "*" not in cmd and "ollama" in cmd


def test_stop_logs_and_status():
    assert dry("stop")[0][-2:] == ["down", "--remove-orphans"]
    assert dry("stop", "--volumes")[0][-3:] == ["down", "--remove-orphans", "--volumes"]
    assert dry("stop", "backend", "frontend")[0][-3:] == ["stop", "backend", "frontend"]
    assert dry("logs")[0][-3:] == ["logs", "--tail", "200"]
    assert dry("logs", "-f", "--tail", "20", "backend", "ml-api")[0][-6:] == [
        "logs",
        "--tail",
        "20",
        "--follow",
        "backend",
        "ml-api",
    ]
    assert dry("status")[0][-2:] == ["ps", "--all"]


def test_ollama_model_commands_go_through_the_entrypoint():
    entry = ["exec", "-T", "ollama", "bash", "/opt/stack/ollama-entrypoint.sh"]
    assert dry("pull")[0][-6:] == [*entry, "pull"]
    assert dry("pull", "llama3.2:3b", "nomic-embed-text")[0][-8:] == [*entry, "pull", "llama3.2:3b", "nomic-embed-text"]
    assert dry("list")[0][-7:] == [*entry, "cli", "list"]
    assert dry("remove", "phi3")[0][-8:] == [*entry, "cli", "rm", "phi3"]
    # The entrypoint mounted by compose is the one these commands call.
    assert (
        "./deploy/ollama/entrypoint.sh:/opt/stack/ollama-entrypoint.sh:ro" in (ROOT / "docker-compose.yml").read_text()
    )


def test_exec_passes_the_command_through_untouched():
    # Words that are options of the script (-p, --cpu, -n) belong to the command after `exec SERVICE`.
    [cmd] = dry("exec", "backend", "ls", "-p", "--cpu", "-n", "/data")
    assert cmd[-8:] == ["exec", "-T", "backend", "ls", "-p", "--cpu", "-n", "/data"]


def test_test_command_pipes_the_smoke_test_into_the_backend():
    r = stack("-n", "test")
    assert r.returncode == 0
    assert r.stdout.rstrip().endswith("exec -T backend python - < deploy/smoke/smoke_test.py")
    assert (ROOT / "deploy" / "smoke" / "smoke_test.py").is_file()


def test_dry_run_prints_commands_that_the_shell_reads_back():
    r = stack("-n", "health")
    ps_line = r.stdout.splitlines()[0]
    assert shlex.split(ps_line[2:])[-4:] == ["ps", "--all", "--format", "{{.Service}} {{.State}} {{.Health}}"]


@pytest.fixture
def fake_docker(tmp_path):
    bindir = install_fake(tmp_path, "docker", FAKE_DOCKER)
    calls = tmp_path / "docker-calls.txt"
    env = {
        "PATH": f"{bindir}:/usr/bin:/bin",
        "FAKE_DOCKER_CALLS": str(calls),
        "FAKE_DOCKER_STDIN": str(tmp_path / "docker-stdin.txt"),
    }

    def calls_made() -> list[list[str]]:
        return [shlex.split(line) for line in calls.read_text().splitlines()] if calls.exists() else []

    return env, calls_made, tmp_path


def test_real_run_uses_docker_compose_from_the_repository_root(fake_docker):
    env, calls, _ = fake_docker
    r = stack("start", "--cpu", "-p", "ollama", env=env, cwd=Path("/"))
    assert r.returncode == 0, r.stderr
    made = calls()
    assert made[0] == ["compose", "version"]  # `docker compose` is there: it is used
    assert made[1][:6] == ["compose", "-f", "docker-compose.yml", "-f", "docker-compose.cpu.yml", "--profile"]
    # STACK_COMPOSE picks another command.
    r = stack("status", env={**env, "STACK_COMPOSE": "docker --log-level error compose"})
    assert r.returncode == 0 and calls()[-1][:4] == ["--log-level", "error", "compose", "-f"]


def test_real_test_command_sends_the_smoke_test_on_stdin(fake_docker):
    env, calls, tmp = fake_docker
    r = stack("test", env=env)
    assert r.returncode == 0, r.stderr
    assert calls()[-1][-4:] == ["-T", "backend", "python", "-"]
    assert (tmp / "docker-stdin.txt").read_text() == (ROOT / "deploy" / "smoke" / "smoke_test.py").read_text()
    assert stack("test", env={**env, "FAKE_EXEC_STATUS": "1"}).returncode == 1


def test_health_reads_container_states(fake_docker):
    env, calls, _ = fake_docker
    healthy = "ml-api running healthy\nbackend running healthy\nfrontend running \nredis running healthy\n"
    r = stack("health", env={**env, "FAKE_PS": healthy})
    assert r.returncode == 0, r.stdout + r.stderr
    assert "backend /ready:" in r.stdout
    assert "exec -T backend python -c" in " ".join(calls()[-1])
    sick = "ml-api running unhealthy\nbackend running healthy\n"
    assert stack("health", env={**env, "FAKE_PS": sick}).returncode == 1
    exited = "qdrant exited \n"
    r = stack("health", env={**env, "FAKE_PS": exited})
    assert r.returncode == 1 and "qdrant" in r.stdout
    r = stack("health", env={**env, "FAKE_PS": ""})
    assert r.returncode == 1 and "nothing is running" in r.stderr
    # The backend's /ready failing fails health too.
    assert stack("health", env={**env, "FAKE_PS": healthy, "FAKE_EXEC_STATUS": "1"}).returncode == 1


def test_no_docker_at_all_is_a_clear_error(tmp_path):
    # A PATH with only what the script itself needs (bash, dirname): no docker, no docker-compose.
    for tool in ("bash", "dirname"):
        found = subprocess.run(["bash", "-c", f"command -v {tool}"], capture_output=True, text=True).stdout.strip()
        (tmp_path / tool).symlink_to(found)
    r = stack("status", env={"PATH": str(tmp_path)})
    assert r.returncode == 2 and "docker compose" in r.stderr


def test_a_stack_from_make_compose_up_is_driven_through_its_engine(fake_docker):
    """`make compose-up` leaves .stack/engine.env (Compose command, DOCKER_HOST, ports): every command uses it."""
    env, calls, tmp = fake_docker
    engine_env = tmp / "engine.env"
    engine_env.write_text(
        "CONTAINER_ENGINE=docker\nSTACK_COMPOSE='docker --log-level warn compose'\nFRONTEND_PORT=41000\n"
    )
    r = stack("status", env={**env, "STACK_ENGINE_ENV": str(engine_env)})
    assert r.returncode == 0, r.stderr
    assert calls()[-1][:4] == ["--log-level", "warn", "compose", "-f"]
