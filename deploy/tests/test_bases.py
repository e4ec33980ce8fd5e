"""deploy/bases stands in for exactly the official images our files name: every external FROM of our Dockerfiles
and every default-service image of docker-compose.yml has a stand-in under the same name (Docker's short names
normalised), and the README table lists each one."""

from __future__ import annotations

import re

import yaml
from conftest import ROOT

BUILD = ROOT / "deploy" / "bases" / "build.sh"
DEFAULT_SERVICES_PULLED = ("postgres", "redis", "qdrant")


def normalise(image: str) -> str:
    name = image if "/" in image.split(":")[0] else f"library/{image}"
    return name if name.split("/")[0].count(".") else f"docker.io/{name}"


def standins() -> set[str]:
    return set(re.findall(r"^\s+\[\w+\]=(\S+)$", BUILD.read_text(), re.M))


def external_froms() -> set[str]:
    found = set()
    for dockerfile in ("backend/Dockerfile", "ml-api/Dockerfile", "frontend/Dockerfile"):
        text = (ROOT / dockerfile).read_text()
        stages = set(re.findall(r"^FROM \S+ AS (\S+)$", text, re.M))
        for image in re.findall(r"^FROM (\S+)", text, re.M):
            if image not in stages and not image.startswith("nvidia/cuda"):  # the CUDA base: GPU images only
                found.add(normalise(image))
    return found


def compose_defaults() -> set[str]:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    return {normalise(re.sub(r"\$\{\w+:-([^}]+)\}", r"\1", services[s]["image"])) for s in DEFAULT_SERVICES_PULLED}


def test_every_base_we_pull_has_a_stand_in_of_the_same_name() -> None:
    wanted = external_froms() | compose_defaults()
    assert len(wanted) >= 7, wanted
    assert wanted <= standins(), f"no stand-in for {sorted(wanted - standins())}"


def test_the_readme_lists_every_stand_in_as_test_only() -> None:
    readme = (ROOT / "deploy" / "bases" / "README.md").read_text()
    assert "TEST-ONLY" in readme and "Never deploy or push" in readme
    for image in standins():
        short = image.removeprefix("docker.io/").removeprefix("library/")
        assert f"`{short}`" in readme, f"{short} missing from deploy/bases/README.md"
    assert "rag.test-only-standin" in BUILD.read_text()
