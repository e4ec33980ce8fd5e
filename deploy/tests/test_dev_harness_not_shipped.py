"""The dev harness (devtools/devharness) serves tests, benchmarks and eval only: no image may ship it and no
service may import it, or production would run code that nothing but a test has ever exercised."""

from __future__ import annotations

import re

from conftest import ROOT

SERVICES = {"ml-api": "ml_api", "backend": "rag_backend", "frontend": "src"}
MENTION = re.compile(r"devtools|devharness")


def test_image_build_contexts_are_the_service_directories() -> None:
    """devtools/ lies outside every context, so no COPY can reach it."""
    for compose in ROOT.glob("docker-compose*.yml"):
        contexts = re.findall(r"^\s+context:\s*(\S+)\s*$", compose.read_text(), re.M)
        assert all(c.strip("'\"").removeprefix("./").rstrip("/") in SERVICES for c in contexts), (compose, contexts)


def test_no_dockerfile_or_dockerignore_names_it() -> None:
    files = [ROOT / s / n for s in SERVICES for n in ("Dockerfile", ".dockerignore") if (ROOT / s / n).is_file()]
    assert files, "no Dockerfile found: the check looks at the wrong place"
    for path in files:
        assert not MENTION.search(path.read_text()), path


def test_no_service_code_or_lock_uses_it() -> None:
    sources = [p for s, pkg in SERVICES.items() for p in (ROOT / s / pkg).rglob("*")]
    shipped = [p for p in sources if p.suffix in {".py", ".ts", ".tsx"}]
    locks = [*ROOT.glob("*/requirements/*.txt"), *ROOT.glob("*/pyproject.toml")]
    assert shipped and locks
    for path in shipped + locks:
        if path.parent.name != "devtools":
            assert not MENTION.search(path.read_text(errors="replace")), path
