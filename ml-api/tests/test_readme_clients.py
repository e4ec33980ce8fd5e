"""The root README's client snippets, run as written against the live service (only the base URL changes)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def snippets() -> list[str]:
    section = README.read_text(encoding="utf-8").split("## Clients you already run", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_the_readme_shows_one_snippet_per_client() -> None:
    imports = [re.search(r"^(?:from|import) (\w+)", code, flags=re.M).group(1) for code in snippets()]  # type: ignore[union-attr]
    assert imports == ["openai", "langchain_openai", "cohere", "huggingface_hub"]


@pytest.mark.parametrize("index", range(4), ids=["openai", "langchain", "cohere", "huggingface_hub"])
def test_readme_snippet_runs(server, index: int) -> None:
    code = snippets()[index].replace("http://localhost:8001", server.url)
    names: dict[str, object] = {}
    exec(compile(code, f"README.md snippet {index}", "exec"), names)
    if "vectors" in names:
        assert np.asarray(names["vectors"]).shape == (2, 384)
    if "vector" in names:
        assert np.asarray(names["vector"]).size == 384
    if "ranked" in names:  # the panda sentence first, through both Cohere clients
        assert names["ranked"].results[0].index == 1  # type: ignore[attr-defined]
        assert names["legacy"].results[0].index == 1  # type: ignore[attr-defined]
        packed = names["packed"].embeddings  # type: ignore[attr-defined]
        assert len(packed.float_[0]) == 384 and len(packed.int8[0]) == 384
        assert all(-128 <= v <= 127 for v in packed.int8[0])
    assert {"vectors", "vector", "ranked"} & set(names)
