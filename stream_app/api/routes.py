"""The API's routes: each one a scope check and one call into the read model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import JSONResponse

from segstream.config import Settings

from .read_model import ReadModel
from .schemas import Customer, MapPoint, Segment, WindowSummary


def probes(read: ReadModel) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/healthz")
    def healthz() -> dict:
        """The process answers (a liveness probe; no personal data, no key needed)."""
        return {"ok": True}

    @router.get("/readyz")
    def readyz():
        """Ready to serve: Redis answers and a worker has written this deployment's centroids."""
        reason = read.not_ready()
        if reason:
            return JSONResponse({"ready": False, "reason": reason}, status_code=503)
        return {"ready": True, "model_version": read.artefact.version}

    return router


def lookups(read: ReadModel, require: Callable[[str], Callable], settings: Settings) -> APIRouter:
    router = APIRouter()
    segments_scope, customers_scope = [Depends(require("segments"))], [Depends(require("customers"))]

    @router.get("/api/segments", response_model=list[Segment], dependencies=segments_scope)
    def list_segments():
        return read.segments()

    @router.get("/api/segments/{segment}", response_model=Segment, dependencies=segments_scope)
    def get_segment(segment: int):
        return read.segment(segment)

    @router.get("/api/windows", response_model=list[WindowSummary], dependencies=segments_scope)
    def windows(last: int = Query(24, ge=1, le=240)):
        """Segment sizes and flows per window (aggregates, no customer ids), kept by the workers'
        commits; the newest ``last`` windows, oldest first."""
        return read.windows(last)

    @router.get("/api/customers", response_model=list[str], dependencies=customers_scope)
    def search_customers(prefix: str = Query("", max_length=64), limit: int = Query(50, ge=1, le=500)):
        """Customer ids starting with ``prefix`` (the explorer's search box), sorted."""
        return read.customer_ids(prefix, limit)

    @router.get("/api/customers/{customer_id}", response_model=Customer, dependencies=customers_scope)
    def get_customer(customer_id: str):
        return read.customer(customer_id)

    @router.delete("/api/customers/{customer_id}", dependencies=[Depends(require("admin"))])
    def forget_customer(customer_id: str) -> dict:
        """Erase the customer (docs/security.md); idempotent. Needs a Redis user that may write."""
        from redis.exceptions import NoPermissionError

        from ..erasure import Eraser

        eraser = Eraser(settings, read.store.r, read.store)
        try:
            done = eraser.forget(customer_id)
        except NoPermissionError:
            raise HTTPException(
                503,
                "this API's Redis user is read-only: erase with `segstream forget`, "
                "or run an admin API with a user that may write the namespace",
            ) from None
        finally:
            eraser.close()
        return asdict(done)

    @router.get("/api/map", response_model=list[MapPoint], dependencies=customers_scope)
    def customer_map(limit: int = Query(2000, ge=1, le=20000)):
        return read.customer_map(limit)

    return router
