"""Store contracts: what the backend writes and reads, the protocol both engines keep, shared validation.

A *space* is one physical Qdrant collection (server) or one edge shard (embedded). It holds a named dense
vector ``"dense"`` (cosine) and a named sparse vector ``"bm25"`` with the IDF modifier. Several logical user
collections share a space and are told apart by the payload field ``collection``; every point also carries
``document_id`` so a document can be deleted or hidden as a unit.

BM25 IDF statistics are scoped to the logical collections being searched (``SearchParams.idf`` with a corpus
filter), so one tenant's vocabulary never changes another tenant's scores, and a query over several collections
(``SearchFilter.collections``) weighs terms over exactly those.

Validation lives here, before either engine sees a point or query, so both refuse the same inputs with the
same messages.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypedDict, cast, runtime_checkable

DENSE = "dense"
SPARSE = "bm25"
_SPACE_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")


class StoreError(RuntimeError):
    """The store is unreachable or misconfigured; the message says what and where."""


class DimensionMismatch(StoreError):
    """A space exists with another dense dimension than the one asked for."""


class _PayloadKeys(TypedDict):
    """The keys the store itself relies on: tenancy and per-document delete/hide."""

    collection: str
    document_id: str


class ChunkPayload(_PayloadKeys, total=False):
    """The one shape of a chunk's payload: ingestion writes it, retrieval reads it, the store checks it.

    A plain dict at runtime (what both engines store and return); only ``collection`` and ``document_id`` are
    required, so tools and tests may index points that carry just those and some text.
    """

    source: str  # the uploaded file's display name
    title: str | None
    text: str
    position: int  # chunk number within the document
    page: int | None  # 1-based, PDF only
    heading: str | None
    tokens: int
    char_start: int  # the chunk is text[char_start:char_end] of its document's parsed text (code points);
    char_end: int  # absent from points indexed before offsets were kept


# Payload fields the engines filter and index on (keys of ChunkPayload).
COLLECTION_FIELD = "collection"
DOCUMENT_FIELD = "document_id"
SOURCE_FIELD = "source"
REQUIRED_FIELDS: tuple[str, ...] = tuple(sorted(_PayloadKeys.__required_keys__))
assert {COLLECTION_FIELD, DOCUMENT_FIELD, SOURCE_FIELD} <= ChunkPayload.__annotations__.keys()


@dataclass(frozen=True, slots=True)
class ChunkPoint:
    """One chunk to index: dense + BM25 sparse vectors and its payload."""

    id: str  # UUID string
    dense: Sequence[float]  # list[float] or 1-D numpy float32 array
    sparse_indices: Sequence[int]
    sparse_values: Sequence[float]
    payload: ChunkPayload


@dataclass(frozen=True, slots=True)
class Hit:
    """One search result; ``id`` is the canonical UUID string."""

    id: str
    score: float
    payload: ChunkPayload


@dataclass(frozen=True, slots=True)
class SearchFilter:
    """Which points of a space a search may return: only those of `collections` (one name or several).

    The set goes into the engine's query (and scopes BM25's IDF), never a filter applied to a top-k afterwards:
    a search limited to readable collections ranks their points only. An empty set is refused, never "all".
    """

    collections: str | Sequence[str]  # normalised to a sorted tuple of unique names
    exclude_document_ids: Sequence[str] = ()  # documents not yet visible (being indexed / replaced / deleted)
    document_ids: Sequence[str] = ()  # if non-empty: only these documents
    sources: Sequence[str] = ()  # if non-empty: only payload["source"] in these

    def __post_init__(self) -> None:
        names = (self.collections,) if isinstance(self.collections, str) else tuple(self.collections)
        if not names or not all(isinstance(n, str) and n for n in names):
            raise ValueError(f"a search filter needs one or more collection names, got {self.collections!r}")
        object.__setattr__(self, "collections", tuple(sorted(set(names))))

    @property
    def names(self) -> tuple[str, ...]:
        return self.collections  # type: ignore[return-value]  # a tuple once __post_init__ ran


@dataclass(frozen=True, slots=True)
class SearchRequest:
    """One query of a batch: dense (cosine) or BM25 sparse."""

    using: Literal["dense", "bm25"]
    dense: Sequence[float] | None = None  # for using="dense"
    sparse: tuple[Sequence[int], Sequence[float]] | None = None  # (indices, values) for using="bm25"
    limit: int = 10
    filter: SearchFilter | None = None  # required in practice


@runtime_checkable
class VectorStore(Protocol):
    """What the rest of the backend codes against; both implementations behave identically."""

    kind: str  # "qdrant-edge" or "qdrant"

    async def ensure_space(self, space: str, dim: int) -> None: ...

    async def upsert(self, space: str, points: Sequence[ChunkPoint]) -> None: ...

    async def search_batch(self, space: str, requests: Sequence[SearchRequest]) -> list[list[Hit]]: ...

    async def delete_document(self, space: str, collection: str, document_id: str) -> None: ...

    async def delete_collection(self, space: str, collection: str) -> None: ...

    async def count(self, space: str, collection: str, document_id: str | None = None) -> int: ...

    async def health(self) -> tuple[bool, str]: ...

    async def close(self) -> None: ...


# --------------------------------------------------------------------------------------------------------------
# Validation and conversion shared by both engines
# --------------------------------------------------------------------------------------------------------------


def check_space(space: str) -> None:
    """Space names become directory / collection names, so keep them to a safe alphabet."""
    if not isinstance(space, str) or _SPACE_RE.fullmatch(space) is None:
        raise ValueError(f"invalid space name {space!r}: expected 1-64 characters of [A-Za-z0-9_-]")


def check_dim(dim: int) -> None:
    if not isinstance(dim, int) or isinstance(dim, bool) or dim < 1:
        raise ValueError(f"invalid dense dimension {dim!r}: expected a positive int")


def _floats(values: Sequence[float]) -> list[float]:
    """Plain Python floats (numpy arrays included) for both engines' converters."""
    tolist = getattr(values, "tolist", None)
    return [float(v) for v in (tolist() if tolist is not None else values)]


def _ints(values: Sequence[int]) -> list[int]:
    tolist = getattr(values, "tolist", None)
    return [int(v) for v in (tolist() if tolist is not None else values)]


@dataclass(frozen=True, slots=True)
class PreparedPoint:
    """A validated, engine-neutral point."""

    id: str
    dense: list[float]
    sparse_indices: list[int]
    sparse_values: list[float]
    payload: dict[str, Any]


def prepare_points(space: str, dim: int, points: Sequence[ChunkPoint]) -> list[PreparedPoint]:
    """Validate ids, dims and the payload keys every other module relies on, before anything is written."""
    out: list[PreparedPoint] = []
    for p in points:
        try:
            pid = str(uuid.UUID(str(p.id)))
        except ValueError:
            raise ValueError(f"point id {p.id!r} is not a UUID string") from None
        dense = _floats(p.dense)
        if len(dense) != dim:
            raise DimensionMismatch(f"point {pid}: dense vector has dim {len(dense)}, space {space!r} has dim {dim}")
        indices, values = _ints(p.sparse_indices), _floats(p.sparse_values)
        if len(indices) != len(values):
            raise ValueError(f"point {pid}: {len(indices)} sparse indices but {len(values)} values")
        for key in REQUIRED_FIELDS:
            if not isinstance(p.payload.get(key), str):
                raise ValueError(f"point {pid}: payload[{key!r}] must be a str")
        out.append(PreparedPoint(pid, dense, indices, values, dict(p.payload)))
    return out


@dataclass(frozen=True, slots=True)
class PreparedQuery:
    """A validated, engine-neutral query; ``None`` in a batch means "answer []" (e.g. no BM25 tokens)."""

    using: Literal["dense", "bm25"]
    dense: list[float] | None
    sparse: tuple[list[int], list[float]] | None
    limit: int
    filter: SearchFilter | None


def prepare_queries(space: str, dim: int | None, requests: Sequence[SearchRequest]) -> list[PreparedQuery | None]:
    out: list[PreparedQuery | None] = []
    for r in requests:
        if r.limit < 1:
            raise ValueError(f"search limit must be >= 1, got {r.limit}")
        if r.using == DENSE:
            if r.dense is None:
                raise ValueError("using='dense' needs a dense query vector")
            dense = _floats(r.dense)
            if dim is not None and len(dense) != dim:
                raise DimensionMismatch(f"dense query has dim {len(dense)}, space {space!r} has dim {dim}")
            out.append(PreparedQuery(DENSE, dense, None, r.limit, r.filter))
        elif r.using == SPARSE:
            if r.sparse is None:
                raise ValueError("using='bm25' needs a sparse query (indices, values)")
            indices, values = _ints(r.sparse[0]), _floats(r.sparse[1])
            if len(indices) != len(values):
                raise ValueError(f"sparse query has {len(indices)} indices but {len(values)} values")
            out.append(PreparedQuery(SPARSE, None, (indices, values), r.limit, r.filter) if indices else None)
        else:
            raise ValueError(f"unknown vector {r.using!r}: expected 'dense' or 'bm25'")
    return out


def scatter(queries: Sequence[PreparedQuery | None], results: list[list[Hit]]) -> list[list[Hit]]:
    """Put the results of the non-empty queries back at their positions; empty ones get []."""
    it = iter(results)
    return [next(it) if q is not None else [] for q in queries]


def to_hit(point_id: object, score: float, payload: dict[str, Any] | None) -> Hit:
    """A search result from either engine's scored point: the payload as written, the id as a UUID string."""
    return Hit(id=str(point_id), score=float(score), payload=cast(ChunkPayload, dict(payload or {})))
