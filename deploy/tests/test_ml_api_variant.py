"""ml-api's two images (full and slim) without a Docker engine: the Dockerfile's lock choice runs here with a fake
`uv`, and compose's ML_API_VARIANT reaches the build argument and the tag."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT, install_fake

DOCKERFILE = ROOT / "ml-api" / "Dockerfile"
COMPOSE = ROOT / ".tools" / "bin" / "docker-compose"
# The CUDA images (target runtime) and the CPU ones (target runtime-cpu, docker-compose.cpu.yml).
LOCKS = {"gpu": {"full": "gpu.txt", "slim": "gpu-slim.txt"}, "cpu": {"full": "cpu-full.txt", "slim": "cpu-slim.txt"}}
FAKE_UV = '#!/usr/bin/env bash\nprintf "%s\\n" "$*" >>"$FAKE_UV_CALLS"\n'


def instructions() -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    lines = [line for line in DOCKERFILE.read_text().splitlines() if not line.lstrip().startswith("#")]
    return [i.strip() for i in re.sub(r"\\\n", " ", "\n".join(lines)).splitlines() if i.strip()]


def lock_step(device: str) -> str:
    """The shell command of the RUN that installs the device's lock, without RUN and its --mount flags."""
    [run] = [i for i in instructions() if i.startswith("RUN ") and f"/{LOCKS[device]['full']}" in i]
    return re.sub(r"^RUN\s+(--\S+\s+)*", "", run)


def run_lock_step(tmp_path: Path, variant: str | None, device: str = "gpu") -> subprocess.CompletedProcess[str]:
    """As `docker build` runs it (/bin/sh -c, the ARG in the environment), with uv recording its arguments."""
    calls = tmp_path / "uv-calls"
    bindir = install_fake(tmp_path, "uv", FAKE_UV)
    env = {
        "PATH": f"{bindir}:{os.environ['PATH']}",
        "FAKE_UV_CALLS": str(calls),
        "TORCH_INDEX": "https://torch.example",
    }
    if variant is not None:
        env["VARIANT"] = variant
    return subprocess.run(["/bin/sh", "-c", lock_step(device)], env=env, capture_output=True, text=True, timeout=30)


def test_variant_defaults_to_full_in_both_stages() -> None:
    args = [i for i in instructions() if i.startswith("ARG VARIANT")]
    assert args == ["ARG VARIANT=full"] * 4, args  # build and runtime stages, CPU and CUDA


@pytest.mark.parametrize("device", ["gpu", "cpu"])
@pytest.mark.parametrize("variant", ["full", "slim"])
def test_each_variant_installs_its_own_lock(tmp_path: Path, variant: str, device: str) -> None:
    res = run_lock_step(tmp_path, variant, device)
    assert res.returncode == 0, res.stderr
    [call] = (tmp_path / "uv-calls").read_text().splitlines()
    assert call.startswith("pip sync ") and "--require-hashes" in call and "--only-binary :all:" in call, call
    assert call.endswith(f"/tmp/requirements/{LOCKS[device][variant]}"), call
    # torch's CPU wheels: the PyTorch index (TORCH_INDEX) for the CPU full image only, local wheels always looked at
    assert ("--extra-index-url https://torch.example" in call) == ((device, variant) == ("cpu", "full")), call


def test_an_unknown_variant_stops_the_build(tmp_path: Path) -> None:
    res = run_lock_step(tmp_path, "tiny")
    assert res.returncode != 0 and "VARIANT must be full or slim" in res.stderr
    assert not (tmp_path / "uv-calls").exists()


def test_every_lock_reaches_the_build_context() -> None:
    copies = [i for i in instructions() if i.startswith("COPY requirements/")]
    sources = [s for copy in copies for s in copy.split()[1:-1] if s != ".wheel[s]"]  # .wheels: optional
    assert sorted(sources) == sorted(f"requirements/{lock}" for locks in LOCKS.values() for lock in locks.values())
    ignored = [p for p in (ROOT / "ml-api" / ".dockerignore").read_text().splitlines() if p and not p.startswith("#")]
    for source in sources:
        assert (ROOT / "ml-api" / source).is_file(), source
        assert not any(fnmatch.fnmatch(source, p.removeprefix("**/")) for p in ignored), source


def test_slim_lock_pins_what_the_full_one_pins() -> None:
    """Same versions of everything they share, so both images compute the same numbers."""
    requirements = ROOT / "ml-api" / "requirements"

    def pins(name: str) -> dict[str, str]:
        return dict(re.findall(r"^([a-z0-9_.-]+)==(\S+)", (requirements / name).read_text(), re.M))

    for slim, full in (("cpu-slim.txt", "cpu.txt"), ("gpu-slim.txt", "gpu.txt")):
        slim_pins, full_pins = pins(slim), pins(full)
        assert slim_pins and {k: full_pins.get(k) for k in slim_pins} == slim_pins, (slim, full)


def resolved_ml_api(files: tuple[str, ...] = ("docker-compose.yml",), **env: str) -> dict:
    if not COMPOSE.is_file():
        pytest.skip(f"{COMPOSE} missing: `make check-deploy` installs it")
    clean = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), **env}
    cmd = [
        str(COMPOSE),
        "--env-file",
        "/dev/null",
        *(w for f in files for w in ("-f", f)),
        "config",
        "--format",
        "json",
    ]
    res = subprocess.run(cmd, env=clean, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)["services"]["ml-api"]


@pytest.mark.parametrize(("env", "variant"), [({}, "full"), ({"ML_API_VARIANT": "slim"}, "slim")])
def test_compose_builds_and_tags_the_chosen_variant(env: dict[str, str], variant: str) -> None:
    ml = resolved_ml_api(**env)
    assert ml["build"]["args"] == {"VARIANT": variant}
    assert ml["image"] == f"ml-api:latest-{variant}"
    assert ml["build"]["target"] == "runtime"


@pytest.mark.parametrize(("env", "variant"), [({}, "full"), ({"ML_API_VARIANT": "slim"}, "slim")])
def test_the_cpu_file_builds_and_tags_the_cpu_image(env: dict[str, str], variant: str) -> None:
    ml = resolved_ml_api(**env, files=("docker-compose.yml", "docker-compose.cpu.yml"))
    assert ml["build"]["args"] == {"VARIANT": variant} and ml["build"]["target"] == "runtime-cpu"
    assert ml["image"] == f"ml-api:latest-cpu-{variant}"
