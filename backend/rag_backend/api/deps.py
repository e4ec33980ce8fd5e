"""What a route may ask for, as typed `Annotated[..., Depends(...)]` aliases over the app's one Services object.

A route names the component it uses (`catalog: CatalogDep`) instead of digging through the request, so its
signature says what it touches and a type checker sees the real classes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from rag_backend.access.model import NOBODY, Principal
from rag_backend.access.service import AccessService
from rag_backend.answers import Answerer
from rag_backend.cache import Cache
from rag_backend.catalog import Catalog
from rag_backend.chunking import Chunker
from rag_backend.conversations import Conversations
from rag_backend.core.config import Settings
from rag_backend.embedding import Embedder
from rag_backend.ingestion import Ingestion
from rag_backend.llm import Chain
from rag_backend.reranking import Reranker
from rag_backend.retrieval import Retriever
from rag_backend.store import VectorStore
from rag_backend.upstream import Upstream


@dataclass(slots=True)
class Services:
    """Every component, opened once by the app's lifespan (in this order) and closed in reverse."""

    settings: Settings
    catalog: Catalog
    store: VectorStore
    cache: Cache
    upstream: Upstream
    embedder: Embedder
    reranker: Reranker
    chunker: Chunker
    ingestion: Ingestion
    retriever: Retriever
    chain: Chain
    answerer: Answerer
    access: AccessService
    conversations: Conversations


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def _settings(svc: ServicesDep) -> Settings:
    return svc.settings


def _catalog(svc: ServicesDep) -> Catalog:
    return svc.catalog


def _ingestion(svc: ServicesDep) -> Ingestion:
    return svc.ingestion


def _retriever(svc: ServicesDep) -> Retriever:
    return svc.retriever


def _answerer(svc: ServicesDep) -> Answerer:
    return svc.answerer


def _chain(svc: ServicesDep) -> Chain:
    return svc.chain


SettingsDep = Annotated[Settings, Depends(_settings)]
CatalogDep = Annotated[Catalog, Depends(_catalog)]
IngestionDep = Annotated[Ingestion, Depends(_ingestion)]
RetrieverDep = Annotated[Retriever, Depends(_retriever)]
AnswererDep = Annotated[Answerer, Depends(_answerer)]
ChainDep = Annotated[Chain, Depends(_chain)]


def _access(svc: ServicesDep) -> AccessService:
    return svc.access


def principal(request: Request) -> Principal:
    """Who is calling: the guard middleware resolved it (API key, user key or sign-in cookie) before the route."""
    found: Principal = getattr(request.state, "principal", NOBODY)
    return found


AccessDep = Annotated[AccessService, Depends(_access)]
PrincipalDep = Annotated[Principal, Depends(principal)]


async def readable_collections(request: Request) -> frozenset[str] | None:
    """The collections the caller may read; None = no restriction (AUTH_MODE=none, the operator key, an admin)."""
    services: Services = request.app.state.services
    return await services.access.readable(principal(request))


def owner_of(request: Request) -> str | None:
    """The signed-in user's stable id (what owns their things), None in AUTH_MODE=none and for the operator key."""
    return principal(request).user_id


ReadableDep = Annotated[frozenset[str] | None, Depends(readable_collections)]
