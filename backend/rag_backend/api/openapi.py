"""The API's OpenAPI document as committed for the page, which generates its TypeScript types from it.

    python -m rag_backend.api.openapi ../frontend/src/api/openapi.json   (or: cd frontend && npm run api)

tests/test_openapi.py fails when the committed copy differs from what the code produces.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from rag_backend.api.app import create_app
from rag_backend.core.config import Settings


def document() -> dict[str, Any]:
    """Independent of the environment: the schema comes from the code, never from settings."""
    return create_app(Settings(_env_file=None)).openapi()  # type: ignore[call-arg]


def render() -> str:
    return json.dumps(document(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m rag_backend.api.openapi OUTPUT.json", file=sys.stderr)
        return 2
    Path(argv[0]).write_text(render(), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
