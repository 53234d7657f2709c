"""Lookup API and the segment explorer page, over the worker's Redis state.

Every route needs an API key with a scope (stream_app/auth.py). Reading needs only a
read-only Redis user; erasing a customer (admin scope) needs one that may write the
deployment's keys. The app is routers over a read model (``read_model.py``): what the
API computes is apart from how it is served (``routes.py``, ``pages.py``).
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from segstream.assembly import window_spec
from segstream.config import Settings
from segstream.errors import NotFound, SystemFailure
from segstream.models.artefact import ModelArtefact
from segstream.state.layout import StateLayout
from segstream.state.redis_client import UNAVAILABLE, client_for, verify
from segstream.state.redis_store import RedisStateStore

from ..auth import KeyRing, requirer
from .pages import SECURITY_HEADERS, add_security_headers, pages, swagger_page
from .read_model import ReadModel
from .routes import lookups, probes

__all__ = ["create_app"]


def create_app(settings: Settings, ring: KeyRing) -> FastAPI:
    """``ring``: the keys that may call it (``segstream api`` loads the configured ones, see auth.py)."""
    require = requirer(ring)
    artefact = ModelArtefact.load(settings.model_path)
    # a request must not hang on a Redis that is down: one quick retry, then 503
    client = client_for(settings, retries=1, timeout_s=2.0)
    verify(client)
    store = RedisStateStore.for_deployment(client, settings, artefact.hidden_size, artefact.version)
    layout = StateLayout.for_deployment(client, settings, store.keys)
    read = ReadModel(store, artefact, window_spec(settings), settings.redis_prefix, layout)
    api = FastAPI(title="segstream lookup API", version="1", description=__doc__, docs_url=None, redoc_url=None)
    docs_page, docs_csp = swagger_page()
    add_security_headers(api, docs_csp)
    add_error_answers(api)
    api.include_router(probes(read))
    api.include_router(lookups(read, require, settings))
    api.include_router(pages(docs_page, require("segments")))
    return api


def add_error_answers(api: FastAPI) -> None:
    """Errors as clean answers with the security headers (a handler's response skips the middleware)."""

    def answer(status: int, detail: str, retry_after: str | None = None) -> JSONResponse:
        headers = {**SECURITY_HEADERS, **({"Retry-After": retry_after} if retry_after else {})}
        return JSONResponse({"detail": detail}, status_code=status, headers=headers)

    async def store_unavailable(request: Request, err: Exception):
        return answer(503, f"the state store (Redis) is unavailable: {type(err).__name__}: {err}", "5")

    async def cannot_serve(request: Request, err: SystemFailure):
        return answer(503, f"stored data cannot be served ({err.reason}): {err}", "30")

    async def not_found(request: Request, err: NotFound):
        return answer(404, str(err))

    for unavailable in UNAVAILABLE:
        api.add_exception_handler(unavailable, store_unavailable)
    api.add_exception_handler(SystemFailure, cannot_serve)
    api.add_exception_handler(NotFound, not_found)
