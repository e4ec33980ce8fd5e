"""The docs stay walkable for a newcomer: a short root README that opens with the two commands, one README per
service, `.env.example` as the only configuration table, and no relative link or anchor that leads nowhere."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
SERVICE_READMES = [ROOT / "ml-api/README.md", ROOT / "backend/README.md", ROOT / "frontend/README.md"]
ROOT_README_MAX_BYTES = 12 * 1024
# Generated or third-party trees (model cards of downloaded checkpoints, packages) are not our docs.
SKIP_DIRS = {".git", "node_modules", ".venv", "venv", ".tools", ".bench", "bench-results", "test-results", "dist"}

FENCE = re.compile(r"^(```|~~~)")
INLINE_LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$")
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
EXTERNAL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")  # http:, https:, mailto:, ...


def markdown_files() -> list[Path]:
    """Tracked and untracked-but-not-ignored *.md files (git knows what is generated); a plain walk without git."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z", "--", "*.md"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout
        files = [ROOT / name for name in out.decode().split("\0") if name]
    except (OSError, subprocess.CalledProcessError):
        # models/ holds generated checkpoints (with their own model cards) except its README.
        files = [p for p in ROOT.rglob("*.md") if not (len(p.relative_to(ROOT).parts) > 2 and p.parts[-3] == "models")]
    return sorted({p for p in files if p.is_file() and not SKIP_DIRS & set(p.relative_to(ROOT).parts)})


def prose_lines(text: str, *, code_text: bool) -> list[str]:
    """The lines outside fenced code blocks: a `# comment` in a shell block is no heading, `[x](y)` in one is no
    link. Inline code keeps its text for headings (GitHub's anchors do) and is dropped for links."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line.lstrip()):
            fenced = not fenced
        elif not fenced:
            lines.append(INLINE_CODE.sub(lambda m: m.group(0).strip("`") if code_text else "", line))
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading anchors on its text
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    for line in prose_lines(path.read_text(encoding="utf-8"), code_text=True):
        if m := HEADING.match(line):
            base = slug(m.group(2))
            n = seen.get(base, 0)
            seen[base] = n + 1
            found.add(base if n == 0 else f"{base}-{n}")
    return found


def links(path: Path) -> list[str]:
    lines = prose_lines(path.read_text(encoding="utf-8"), code_text=False)
    found = INLINE_LINK.findall("\n".join(lines))
    return found + [m.group(1) for line in lines if (m := REFERENCE_DEF.match(line))]


def broken_links(path: Path, root: Path = ROOT) -> list[str]:
    broken = []
    for target in links(path):
        if EXTERNAL.match(target):
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        shown = dest.relative_to(root) if dest.is_relative_to(root) else dest
        if not dest.exists():
            broken.append(f"{target} (no {shown})")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target} (no heading #{anchor} in {shown})")
    return broken


def test_root_readme_is_short_and_opens_with_the_two_commands() -> None:
    data = README.read_bytes()
    assert len(data) <= ROOT_README_MAX_BYTES, f"README.md is {len(data)} bytes, over {ROOT_README_MAX_BYTES}"
    text = data.decode()
    top = text.split("\n## ", 1)[0].splitlines()[:20]
    for command in ("make dev", "make test"):
        assert any(line.startswith(command) for line in top), f"`{command}` is not among README.md's first lines"


@pytest.mark.parametrize("readme", SERVICE_READMES, ids=lambda p: p.parent.name)
def test_each_service_has_a_readme_pointing_at_the_configuration(readme: Path) -> None:
    name = readme.relative_to(ROOT)
    assert readme.is_file(), f"{name} is missing"
    assert "(../.env.example)" in readme.read_text(encoding="utf-8"), f"{name}: no link to .env.example"


def test_env_example_is_the_only_configuration_table() -> None:
    """Settings documented twice drift; the READMEs link to .env.example instead of tabulating variables."""
    tables = [
        str(p.relative_to(ROOT))
        for p in markdown_files()
        if re.search(r"^\|\s*`?variable`?\s*\|\s*default\s*\|", p.read_text(encoding="utf-8"), re.M | re.I)
    ]
    assert not tables, f"configuration tables outside .env.example: {tables}"


def test_every_relative_link_resolves() -> None:
    files = markdown_files()
    assert README in files and all(p in files for p in SERVICE_READMES), "markdown discovery missed the READMEs"
    broken = {str(p.relative_to(ROOT)): bad for p in files if (bad := broken_links(p))}
    assert not broken, f"broken relative links: {broken}"


def test_the_link_checker_catches_what_it_should(tmp_path: Path) -> None:
    """The checker itself: a missing file, a missing anchor, and links or headings inside code are caught or
    ignored as GitHub renders them."""
    (tmp_path / "other.md").write_text("# Other\n\n## Some `code` heading\n\n```bash\n# not a heading\n```\n")
    doc = tmp_path / "doc.md"
    doc.write_text(
        "# Doc\n\n[ok](other.md#some-code-heading) [self](#doc) [web](https://example.com) `[code](nowhere.md)`\n"
        "[gone](missing.md) [bad anchor](other.md#not-a-heading) [code block](other.md#not-a-heading-1)\n\n"
        "[ref]: other.md#nope\n\n```\n[fenced](nowhere.md)\n```\n"
    )
    tmp = tmp_path.resolve()
    assert broken_links(doc.resolve(), tmp) == [
        "missing.md (no missing.md)",
        "other.md#not-a-heading (no heading #not-a-heading in other.md)",
        "other.md#not-a-heading-1 (no heading #not-a-heading-1 in other.md)",
        "other.md#nope (no heading #nope in other.md)",
    ]
