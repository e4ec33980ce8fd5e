"""The backend's HTTP API, one router per resource; `router` is what the app mounts."""

from __future__ import annotations

from fastapi import APIRouter

from rag_backend.api.routes import auth, collections, conversations, documents, ops, query, users

router = APIRouter()
for _resource in (auth, users, documents, collections, conversations, query, ops):
    router.include_router(_resource.router)
