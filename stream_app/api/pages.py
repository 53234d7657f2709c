"""What a browser loads: the explorer page, its assets, the offline Swagger UI, and the
headers every response carries.

Every response carries a strict Content-Security-Policy: the page runs only its own script,
so a value that slipped into the data cannot run as code. Nothing comes from a CDN: FastAPI's
own /docs and /redoc load their scripts from one, so /docs is served from fastapi-offline's
copy of Swagger UI instead and /redoc is off.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable
from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, Response

STATIC = Path(__file__).parent.parent / "static"
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


def add_security_headers(api: FastAPI, docs_csp: str) -> None:
    @api.middleware("http")
    async def security_headers(request: Request, call_next):
        response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        if request.url.path == "/docs":
            response.headers["Content-Security-Policy"] = docs_csp
        return response


def pages(docs_page: str, segments_scope: Callable) -> APIRouter:
    """The explorer needs the ``segments`` scope; Swagger UI is open (calling a route from it needs
    a key, its Authorize button)."""
    router = APIRouter(include_in_schema=False)
    scoped = [Depends(segments_scope)]

    @router.get("/docs")
    def docs() -> HTMLResponse:
        return HTMLResponse(docs_page)

    @router.get("/docs-assets/{name}")
    def docs_asset(name: str):
        if name not in SWAGGER_ASSETS:
            raise HTTPException(404, "no such file")
        return FileResponse(SWAGGER_DIR / name, media_type=SWAGGER_ASSETS[name])

    @router.get("/", dependencies=scoped)
    def explorer():
        return FileResponse(STATIC / "explorer.html", media_type="text/html")

    @router.get("/favicon.ico")
    def favicon() -> Response:
        return Response(status_code=204)  # none: a browser's request must not be a console 404

    @router.get("/static/{name:path}", dependencies=scoped)
    def asset(name: str):
        if name not in ASSETS:
            raise HTTPException(404, "no such file")
        return FileResponse(STATIC / name, media_type=ASSETS[name])

    return router
