"""Lookup API and the segment explorer page, over the worker's Redis state.

Every route needs an API key with a scope (stream_app/auth.py). Reading needs only a
read-only Redis user; erasing a customer (admin scope) needs one that may write the
deployment's keys. Every response carries a strict Content-Security-Policy: the page
runs only its own script, so a value that slipped into the data cannot run as code.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import fastapi_offline
import numpy as np
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from pydantic import BaseModel

from segstream.assembly import window_spec
from segstream.config import Settings
from segstream.core.personality import TRAITS
from segstream.core.profiles import profiles
from segstream.errors import StoreCorrupt, SystemFailure
from segstream.models.artefact import ModelArtefact, TorchSequenceModel
from segstream.state.redis_client import UNAVAILABLE, client_for, verify
from segstream.state.redis_store import RedisStateStore

from .auth import KeyRing, requirer

STATIC = Path(__file__).parent / "static"
ASSETS = {
    "explorer.js": "text/javascript",
    "explorer.css": "text/css",
    "vendor/echarts.min.js": "text/javascript",
}  # ECharts 6.1.0 (Apache-2.0), scripts/vendor-js
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",  # profiles are personal data: no copies in shared caches
}


class Segment(BaseModel):
    segment: int
    label: str
    size: int
    description: str
    recommendation: str
    why: str
    traits: dict[str, float]
    centroid: list[float]
    position: list[float]  # on the explorer's 2-D map
    # who is in it, in spending terms: a shallow tree over the last six windows' category shares
    # (rules_accuracy: its held-out accuracy over all segments, from training)
    rules: list[str] = []
    rules_accuracy: float | None = None


class TrajectoryPoint(BaseModel):
    window_start: str
    segment: int
    position: list[float]
    hidden: list[float]
    traits: dict[str, float]  # predicted Big-Five after this window (the model's scale: 0 = average)
    # set where the segment differs from the point before: why, from the trait shift
    change: str | None = None


class Flow(BaseModel):
    before: int  # -1: no segment yet (the customer's first)
    after: int
    customers: int


class WindowSummary(BaseModel):
    """One window: customers by segment among those whose window was applied, and how they moved."""

    window_start: str
    sizes: dict[int, int]
    flows: list[Flow]


class Customer(BaseModel):
    customer_id: str
    model_version: str  # the hidden space these segments live in (blue/green: docs/operations.md)
    segment: int  # -1 while warming up
    segment_label: str | None
    recommendation: str | None
    traits: dict[str, float]
    windows_applied: int
    last_window_start: str
    trajectory: list[TrajectoryPoint]
    segment_history: list[dict]


class MapPoint(BaseModel):
    customer_id: str
    segment: int
    x: float
    y: float


# Swagger UI 5 (OpenAPI 3.1, as FastAPI writes it) as fastapi-offline packages it; only its files
SWAGGER_DIR = Path(fastapi_offline.__file__).parent / "static"
SWAGGER_ASSETS = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css", "favicon.png": "image/png"}


def swagger_page() -> tuple[str, str]:
    """FastAPI's Swagger UI page pointed at the packaged assets, and a CSP that allows exactly its
    one inline script (by hash) and the inline styles Swagger UI sets, nothing from elsewhere."""
    page = get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="segstream lookup API",
        swagger_js_url="/docs-assets/swagger-ui-bundle.js",
        swagger_css_url="/docs-assets/swagger-ui.css",
        swagger_favicon_url="/docs-assets/favicon.png",
        # no badge from validator.swagger.io: nothing leaves the page
        swagger_ui_parameters={"validatorUrl": None},
    ).body.decode()
    inline = re.findall(r"<script>(.*?)</script>", page, re.S)
    hashes = " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'" for s in inline)
    csp = (
        f"default-src 'none'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    return page, csp


def create_app(settings: Settings, ring: KeyRing) -> FastAPI:
    """``ring``: the keys that may call it (``segstream api`` loads the configured ones, see auth.py)."""
    require = requirer(ring)
    artefact = ModelArtefact.load(settings.model_path)
    model = TorchSequenceModel(artefact)
    # a request must not hang on a Redis that is down: one quick retry, then 503
    client = client_for(settings, retries=1, timeout_s=2.0)
    verify(client)
    store = RedisStateStore.for_deployment(client, settings, artefact.hidden_size, artefact.version)
    spec = window_spec(settings)
    # FastAPI's own /docs and /redoc load their scripts from a CDN: /docs is served below from
    # fastapi-offline's copy of Swagger UI instead; /redoc is off
    api = FastAPI(title="segstream lookup API", version="1", description=__doc__, docs_url=None, redoc_url=None)
    docs_page, docs_csp = swagger_page()

    @api.middleware("http")
    async def security_headers(request: Request, call_next):
        response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        if request.url.path == "/docs":
            response.headers["Content-Security-Policy"] = docs_csp
        return response

    @api.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        """Swagger UI, offline; calling a route from it needs a key (its Authorize button)."""
        return HTMLResponse(docs_page)

    @api.get("/docs-assets/{name}", include_in_schema=False)
    def docs_asset(name: str):
        if name not in SWAGGER_ASSETS:
            raise HTTPException(404, "no such file")
        return FileResponse(SWAGGER_DIR / name, media_type=SWAGGER_ASSETS[name])

    async def store_unavailable(request: Request, err: Exception):
        return JSONResponse(
            {"detail": f"the state store (Redis) is unavailable: {type(err).__name__}: {err}"},
            status_code=503,
            headers={"Retry-After": "5", **SECURITY_HEADERS},
        )

    for unavailable in UNAVAILABLE:
        api.add_exception_handler(unavailable, store_unavailable)

    async def cannot_serve(request: Request, err: SystemFailure):
        return JSONResponse(
            {"detail": f"stored data cannot be served ({err.reason}): {err}"},
            status_code=503,
            headers={"Retry-After": "30", **SECURITY_HEADERS},
        )

    api.add_exception_handler(SystemFailure, cannot_serve)

    @api.get("/healthz", include_in_schema=False)
    def healthz() -> dict:
        """The process answers (a liveness probe; no personal data, no key needed)."""
        return {"ok": True}

    def started() -> bool:
        """A worker has written this deployment's centroids: before that there are no segments."""
        return bool(client.exists(store.centroid_key))

    @api.get("/readyz", include_in_schema=False)
    def readyz():
        """Ready to serve: Redis answers and a worker has written this deployment's centroids."""
        try:
            client.ping()
        except UNAVAILABLE as err:
            return JSONResponse({"ready": False, "reason": f"Redis unavailable: {err}"}, status_code=503)
        if not started():
            return JSONResponse(
                {"ready": False, "reason": "no worker has written centroids for this namespace and model yet"},
                status_code=503,
            )
        if not np.isfinite(store.centroid_stats().centroids).all():
            return JSONResponse({"ready": False, "reason": "the stored centroids are not finite"}, status_code=503)
        return {"ready": True, "model_version": artefact.version}

    def month(idx: int) -> str:
        return datetime.fromtimestamp(spec.start(int(idx)), tz=UTC).date().isoformat()

    def basis() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Centroids and a 2-D projection (their principal axes): stable while centroids move slowly.
        Callers check started() first, once per request."""
        c = store.centroid_stats().centroids
        if not np.isfinite(c).all():
            raise StoreCorrupt("the stored centroids hold values that are not finite numbers")
        mean = c.mean(0)
        _, _, vt = np.linalg.svd(c - mean, full_matrices=False)
        return c, mean, vt[:2]

    rules = artefact.trained_on.get("segment_rules", {})

    def segments() -> list[Segment]:
        c, mean, axes = basis()
        sizes = store.segment_sizes()
        pos = (c - mean) @ axes.T
        return [
            Segment(
                segment=p.segment,
                label=p.label,
                size=sizes.get(p.segment, 0),
                description=p.description,
                recommendation=p.family,
                why=p.why,
                traits=p.traits,
                centroid=c[p.segment].tolist(),
                position=pos[p.segment].tolist(),
                rules=rules.get(str(p.segment), []),
                rules_accuracy=artefact.trained_on.get("segment_rules_accuracy"),
            )
            for p in profiles(model.traits_of(c))
        ]

    segments_scope, customers_scope = Depends(require("segments")), Depends(require("customers"))

    @api.get("/api/segments", response_model=list[Segment], dependencies=[segments_scope])
    def list_segments():
        return segments() if started() else []  # before any worker has run: none yet

    @api.get("/api/segments/{segment}", response_model=Segment, dependencies=[segments_scope])
    def get_segment(segment: int):
        if not started():
            raise HTTPException(
                404,
                f"no segments yet: no worker has written centroids for namespace "
                f"{settings.redis_prefix!r} and model {artefact.version}",
            )
        segs = segments()
        if not 0 <= segment < len(segs):
            raise HTTPException(404, f"no segment {segment}: segments are 0..{len(segs) - 1}")
        return segs[segment]

    def trajectory_points(traj, mean, axes, prof) -> list[TrajectoryPoint]:
        """Each stored window's state, with its traits; a segment change names the traits that moved most."""
        traits = model.traits_of(traj.h) if len(traj) else np.zeros((0, len(TRAITS)))
        points, prev = [], None
        for i, (w, s, h) in enumerate(zip(traj.last_window.tolist(), traj.segment.tolist(), traj.h)):
            change = None
            if s >= 0 and s != prev and i > 0:
                shift = traits[i] - traits[i - 1]
                top = np.argsort(-np.abs(shift))[:2]
                moved = ", ".join(f"{TRAITS[t]} {shift[t]:+.2f}" for t in top)
                was = f"{prev} {prof[prev].label}" if prev is not None and prev >= 0 else "no segment"
                change = f"{was} → {s} {prof[s].label}: {moved}"
            points.append(
                TrajectoryPoint(
                    window_start=month(w),
                    segment=int(s),
                    position=((h - mean) @ axes.T).tolist(),
                    hidden=h.tolist(),
                    traits=dict(zip(TRAITS, map(float, traits[i]))),
                    change=change,
                )
            )
            prev = s
        return points

    @api.get("/api/windows", response_model=list[WindowSummary], dependencies=[segments_scope])
    def windows(last: int = Query(24, ge=1, le=240)):
        """Segment sizes and flows per window (aggregates, no customer ids), kept by the workers'
        commits; the newest ``last`` windows, oldest first."""
        flows = store.window_flows()
        out = []
        for w in sorted(flows)[-last:]:
            sizes: dict[int, int] = {}
            for (_, after), n in flows[w].items():
                sizes[after] = sizes.get(after, 0) + n
            out.append(
                WindowSummary(
                    window_start=month(w),
                    sizes=dict(sorted(sizes.items())),
                    flows=[Flow(before=b, after=a, customers=n) for (b, a), n in sorted(flows[w].items())],
                )
            )
        return out

    @api.get("/api/customers", response_model=list[str], dependencies=[customers_scope])
    def search_customers(prefix: str = Query("", max_length=64), limit: int = Query(50, ge=1, le=500)):
        """Customer ids starting with ``prefix`` (the explorer's search box), sorted."""
        return sorted(store.customer_ids(limit, prefix)) if started() else []

    @api.get("/api/customers/{customer_id}", response_model=Customer, dependencies=[customers_scope])
    def get_customer(customer_id: str):
        if not started():
            raise HTTPException(404, f"unknown customer {customer_id!r}: no worker has run for this namespace yet")
        state, _ = store.load([customer_id])
        if state.last_window[0] < 0:
            raise HTTPException(404, f"unknown customer {customer_id!r}: no window of theirs has been processed")
        c, mean, axes = basis()
        traj = store.trajectory(customer_id)
        prof = profiles(model.traits_of(c))
        seg = int(state.segment[0])
        history, prev = [], None
        for w, s in zip(traj.last_window.tolist(), traj.segment.tolist()):
            if s != prev:
                history.append({"window_start": month(w), "segment": s})
                prev = s
        return Customer(
            customer_id=customer_id,
            model_version=artefact.version,
            segment=seg,
            segment_label=prof[seg].label if seg >= 0 else None,
            recommendation=prof[seg].family if seg >= 0 else None,
            traits=dict(zip(TRAITS, map(float, model.traits_of(state.h)[0]))),
            windows_applied=int(state.n_windows[0]),
            last_window_start=month(state.last_window[0]),
            trajectory=trajectory_points(traj, mean, axes, prof),
            segment_history=history,
        )

    @api.delete("/api/customers/{customer_id}", dependencies=[Depends(require("admin"))])
    def forget_customer(customer_id: str) -> dict:
        """Erase the customer (docs/security.md); idempotent. Needs a Redis user that may write."""
        from redis.exceptions import NoPermissionError

        from .erasure import Eraser

        try:
            done = Eraser(settings, store.r, store).forget(customer_id)
        except NoPermissionError:
            raise HTTPException(
                503,
                "this API's Redis user is read-only: erase with `segstream forget`, "
                "or run an admin API with a user that may write the namespace",
            ) from None
        return asdict(done)

    @api.get("/api/map", response_model=list[MapPoint], dependencies=[customers_scope])
    def customer_map(limit: int = Query(2000, ge=1, le=20000)):
        ids = store.customer_ids(limit)
        if not ids or not started():
            return []
        state, _ = store.load(ids)
        _, mean, axes = basis()
        xy = (state.h - mean) @ axes.T
        return [
            MapPoint(customer_id=i, segment=int(s), x=float(p[0]), y=float(p[1]))
            for i, s, p in zip(ids, state.segment, xy)
        ]

    @api.get("/", include_in_schema=False, dependencies=[segments_scope])
    def explorer():
        return FileResponse(STATIC / "explorer.html", media_type="text/html")

    @api.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return Response(status_code=204)  # none: a browser's request must not be a console 404

    @api.get("/static/{name:path}", include_in_schema=False, dependencies=[segments_scope])
    def asset(name: str):
        if name not in ASSETS:
            raise HTTPException(404, "no such file")
        return FileResponse(STATIC / name, media_type=ASSETS[name])

    return api
