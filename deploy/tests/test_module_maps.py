"""The services' READMEs name their files (the "Modules" map, and paths in backticks in the prose): each named file
must exist, so a module that is renamed, split or removed takes its README along instead of leaving a stale claim."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = {"ml-api": ROOT / "ml-api" / "ml_api", "backend": ROOT / "backend" / "rag_backend"}
_ENTRY = re.compile(r"^( {0,6})([\w.*-]+(?:/[\w.*-]+)*/?)(?:\s{2,}|$)")  # a map line: indent, name, then two spaces
_FILE = re.compile(r"(?<![\w/.`-])([\w*-]+(?:/[\w*-]+)*\.(?:py|txt))\b")  # file names inside a directory's note
_TICKED = re.compile(r"`([\w.-]+(?:/[\w.-]+)+\.py)`")  # `api/schemas.py` in the prose


def _exists(path: Path) -> bool:
    return any(path.parent.glob(path.name)) if "*" in path.name else path.exists()


def module_map(readme: Path) -> list[tuple[str, Path]]:
    """(line, path) for every file or directory the README's "### Modules" block names."""
    text = readme.read_text()
    block = text.split("### Modules", 1)[1].split("```text", 1)[1].split("```", 1)[0]
    named: list[tuple[str, Path]] = []
    parents: dict[int, Path] = {}
    current_dir: Path | None = None
    for line in block.splitlines():
        entry = _ENTRY.match(line)
        if entry:
            indent, name = len(entry.group(1)), entry.group(2)
            base = ROOT if indent == 0 else parents[indent - 2]
            path = base / name.rstrip("/")
            named.append((line.strip(), path))
            parents[indent] = path
            current_dir = path if name.endswith("/") else None
            note = line[entry.end() :]
        else:
            note = line
        if current_dir is not None:  # a directory's note lists its files: "core/  config.py (...), metrics.py"
            named += [(line.strip(), (ROOT if "/" in f else current_dir) / f) for f in _FILE.findall(note)]
    return named


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_every_file_the_module_map_names_exists(service: str) -> None:
    named = module_map(ROOT / service / "README.md")
    assert len(named) > 20, "the module map was not found or not parsed"
    missing = [f"{p.relative_to(ROOT)}  (from: {line})" for line, p in named if not _exists(p)]
    assert not missing, "README module map names files that do not exist:\n" + "\n".join(missing)


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_every_module_path_in_the_prose_exists(service: str) -> None:
    readme = ROOT / service / "README.md"
    package = SERVICES[service]
    ticked = _TICKED.findall(readme.read_text())
    missing = [p for p in ticked if not any((base / p).exists() for base in (package, ROOT / service, ROOT))]
    assert not missing, f"{readme.relative_to(ROOT)} names files that do not exist: {missing}"


def test_the_check_catches_a_stale_name(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(
        "### Modules\n\n```text\nbackend/rag_backend/\n  api/    routes\n    schemas.py  ok\n"
        "    gone.py     stale\n  core/   config.py (settings), vanished.py (stale)\n```\n"
    )
    missing = {p.name for _, p in module_map(readme) if not _exists(p)}
    assert missing == {"gone.py", "vanished.py"}
