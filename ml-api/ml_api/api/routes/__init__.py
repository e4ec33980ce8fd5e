"""One router per API family; mounted in this order, which is also the order of the OpenAPI page."""

from __future__ import annotations

from fastapi import APIRouter

from ml_api.api.routes import cohere, openai, ops, tei

router = APIRouter()
for family in (tei, openai, cohere, ops):
    router.include_router(family.router)
# The routes ml_api.api.fast answers without FastAPI's routing when their body validates (the latency path).
FAST_ROUTES = {**tei.FAST, **openai.FAST}
