"""Domain contracts that need no running service (the catalog's are in test_catalog.py): the one chunk payload,
embedding identity, the LLM chain's fallback loop, and which layer may import what."""

from __future__ import annotations

import ast
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from rag_backend import errors
from rag_backend.catalog import open_catalog
from rag_backend.chunking import Chunk, Chunker, load_tokenizer
from rag_backend.core.config import Settings
from rag_backend.embedding import EmbedIdentity, check_identity, space_for
from rag_backend.ingestion.pipeline import Pipeline
from rag_backend.ingestion.state import Jobs
from rag_backend.lexical import Lexical
from rag_backend.llm import Chain, Outcome, ProviderFailed, ProviderRefused
from rag_backend.retrieval import _result
from rag_backend.store import ChunkPayload, ChunkPoint, EdgeStore, Hit
from rag_backend.store.base import check_space, prepare_points

PACKAGE = Path(__file__).resolve().parents[1] / "rag_backend"


# -- the chunk payload --------------------------------------------------------------------------------------------
def test_the_payload_ingestion_writes_is_the_one_the_store_checks_and_retrieval_reads(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)  # type: ignore[call-arg]
    jobs = Jobs(open_catalog(None, tmp_path), EdgeStore(tmp_path / "qdrant"))
    tokenizer = load_tokenizer("missing-tokenizer")
    chunker = Chunker(tokenizer, 64, 8)
    pipeline = Pipeline(settings, jobs, None, chunker, Lexical(), slots=1)  # type: ignore[arg-type]
    doc = {"id": "d1", "collection": "c", "filename": "a.pdf"}
    chunk = Chunk("Volcanoes erupt.", position=3, page=2, heading="Lava", char_start=0, char_end=16, tokens=4)
    point = pipeline._point(doc, "Volcanoes", chunk, np.ones(4, dtype=np.float32))
    assert set(point.payload) == set(ChunkPayload.__annotations__)
    (prepared,) = prepare_points("space", 4, [point])
    assert prepared.payload == point.payload

    shown = _result(Hit(point.id, 0.5, point.payload), 0.5, None)
    for key in ("text", "document_id", "source", "title", "position", "page", "heading"):
        assert shown[key] == point.payload[key]  # type: ignore[literal-required]
    jobs.catalog.close()


def test_the_store_refuses_a_payload_without_its_required_keys() -> None:
    point = {"collection": "c", "text": "no document id"}
    with pytest.raises(ValueError, match=r"payload\['document_id'\] must be a str"):
        prepare_points("space", 2, [ChunkPoint("0" * 32, [1.0, 0.0], [], [], point)])  # type: ignore[arg-type]


# -- embedding identity -------------------------------------------------------------------------------------------
def test_embedding_identity_names_a_valid_space_and_guards_collections() -> None:
    a = EmbedIdentity("ml-api", "BAAI/bge-small-en-v1.5 (onnx)", 384)
    b = EmbedIdentity("openai", "text-embedding-3-small", 384)
    check_space(space_for(a))
    assert space_for(a).startswith("chunks_baai-bge-small-en-v1-5-onnx_384_") and space_for(a) != space_for(b)
    check_identity("c", None, a)  # a collection not yet indexed takes any model
    check_identity("c", a.key, a)
    with pytest.raises(errors.Conflict, match="was indexed with embedding model ml-api:"):
        check_identity("c", a.key, b)


# -- the LLM chain ------------------------------------------------------------------------------------------------
class _Provider:
    def __init__(self, name: str, tokens: list[str], error: Exception | None = None, after: int = 0) -> None:
        self.name, self.model, self.url = name, f"{name}-model", f"http://{name}"
        self.tokens, self.error, self.after, self.calls = tokens, error, after, 0

    async def stream(self, messages: list[dict[str, str]], max_tokens: int | None = None) -> AsyncIterator[str]:
        self.calls += 1
        for i, token in enumerate(self.tokens):
            if self.error is not None and i == self.after:
                raise self.error
            yield token
        if self.error is not None and self.after >= len(self.tokens):
            raise self.error

    async def health(self) -> tuple[bool, str]:
        return True, self.url


def _chain(*providers: _Provider) -> Chain:
    settings = Settings(llm_breaker_failures=1, llm_breaker_reset_s=60)  # type: ignore[call-arg]
    return Chain(list(providers), settings)  # type: ignore[arg-type]


async def _run(chain: Chain, cached: dict[str, str] | None = None) -> tuple[str, Outcome]:
    async def lookup(provider: object) -> str | None:
        return (cached or {}).get(provider.name)  # type: ignore[attr-defined]

    outcome = Outcome()
    text = "".join([t async for t in chain.stream([{"role": "user", "content": "q"}], outcome, lookup)])
    return text, outcome


@pytest.mark.anyio
async def test_chain_falls_back_before_the_first_token_and_opens_the_breaker() -> None:
    down = _Provider("ollama", ["never"], ProviderFailed("ollama answered 503"))
    up = _Provider("openai", ["Hello", " world"])
    chain = _chain(down, up)
    text, outcome = await _run(chain)
    assert text == "Hello world" and outcome.provider is up and outcome.truncated is None
    assert [(a.provider, a.error) for a in outcome.attempts] == [("ollama", "ollama answered 503")]
    assert chain.breakers["ollama"].state == "open" and chain.breakers["openai"].state == "closed"

    text, outcome = await _run(chain)  # the open breaker skips the dead provider without calling it
    assert down.calls == 1 and outcome.attempts[0].error.startswith("skipped: circuit open")


@pytest.mark.anyio
async def test_chain_ends_truncated_mid_stream_and_serves_a_cached_answer_first() -> None:
    flaky = _Provider("ollama", ["Part", "ial"], ProviderRefused("ollama refused"), after=1)
    spare = _Provider("openai", ["never used"])
    text, outcome = await _run(_chain(flaky, spare))
    assert text == "Part" and outcome.provider is flaky and outcome.truncated == "ollama refused"
    assert spare.calls == 0

    fresh = _Provider("ollama", ["live"])
    text, outcome = await _run(_chain(fresh), cached={"ollama": "from cache"})
    assert text == "from cache" and outcome.cached and fresh.calls == 0

    text, outcome = await _run(_chain(_Provider("ollama", [], ProviderFailed("down"))))
    assert text == "" and outcome.provider is None and len(outcome.attempts) == 1


# -- layering -----------------------------------------------------------------------------------------------------
def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_http_stays_at_the_edge_and_retrieval_does_not_depend_on_ingestion() -> None:
    edge = ("fastapi", "starlette", "rag_backend.api", "rag_backend.core.errors")
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] in ("api", "core"):
            continue
        bad = {n for n in _imports(path) if n.startswith(edge)}
        assert not bad, f"{rel} imports {bad}: HTTP concerns belong in rag_backend/api"
    assert not {n for n in _imports(PACKAGE / "retrieval.py") if n.startswith("rag_backend.ingestion")}
