"""The HTTP surface every service shares: ``/livez``, ``/readyz``, ``/metrics`` and request metrics."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from importlib import resources
from typing import Any
from urllib.parse import parse_qsl, urlencode

import asyncpg
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pulse_shared.db import is_transient
from pulse_shared.health import Health
from pulse_shared.metrics import HTTP_LATENCY, HTTP_REQUESTS, labelled


def route_path(scope: Scope) -> str:
    """The request's path below the app's mount point, as Starlette's router matches it: ASGI ``path``
    includes ``root_path``, which a proxy or ``uvicorn --root-path`` sets."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root):len(root) + 1] == "/":
        return path[len(root):]
    return path


class RequestMetricsMiddleware:
    """Counts requests and measures latency per route template (pure ASGI, so it adds little)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "")
            labelled(HTTP_REQUESTS, method, path, str(status)).inc()
            labelled(HTTP_LATENCY, method, path).observe(time.perf_counter() - start)


class EmptyQueryMiddleware:
    """Query parameters sent empty (``from=&to=``, ``cursor=``) mean "not given", as a form left blank does:
    they are dropped before routing, so each route sees its default instead of refusing an empty value."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            query: bytes = scope.get("query_string", b"")
            if query and (b"=&" in query or query.endswith(b"=") or b"&&" in query or query.startswith(b"&")):
                pairs = [(k, v) for k, v in parse_qsl(query.decode("latin-1"), keep_blank_values=True) if v != ""]
                scope = {**scope, "query_string": urlencode(pairs).encode("latin-1")}
        await self.app(scope, receive, send)


def create_app(
    *,
    title: str,
    description: str,
    health: Health,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
    version: str = "0.1.0",
    **kwargs: Any,
) -> FastAPI:
    """A FastAPI app with the health and metrics endpoints, request metrics and offline API docs in place."""
    app = FastAPI(title=title, description=description, version=version, lifespan=lifespan, docs_url=None,
                  redoc_url=None, **kwargs)
    app.add_middleware(EmptyQueryMiddleware)
    app.add_middleware(RequestMetricsMiddleware)
    for kind in (DBAPIError, PoolTimeout, asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError):
        app.add_exception_handler(kind, database_unavailable)
    serve_docs(app)

    @app.get("/livez", include_in_schema=False)
    async def livez() -> JSONResponse:
        if health.dead_reason is not None:
            return JSONResponse({"status": "dead", "reason": health.dead_reason}, status_code=503)
        return JSONResponse({"status": "ok"})

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        ready, checks = await health.readiness()
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "checks": checks}, status_code=200 if ready else 503
        )

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app


#: What a client is told to wait before retrying a request the database could not serve.
DATABASE_RETRY_AFTER_SECONDS = 2


async def database_unavailable(_request: Request, exc: Exception) -> JSONResponse:
    """A request the database could not serve right now (restarting, failing over, out of connections, a pool
    exhausted): 503 with Retry-After, as it will pass again shortly; never a 500. Anything else is a bug and
    stays a 500."""
    if not (isinstance(exc, PoolTimeout) or is_transient(exc)):
        raise exc
    return JSONResponse({"detail": "the database is unavailable right now; retry shortly"}, status_code=503,
                        headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)})


#: Swagger UI 5 and ReDoc 2, packaged on PyPI (``fastapi-offline``), served by the service itself: ``/docs``
#: works where the browser cannot reach a CDN (an air-gapped cluster, a port-forward from a locked-down laptop).
DOCS_ASSETS = resources.files("fastapi_offline") / "static"
DOCS_ASSETS_URL = "/docs/assets"


def serve_docs(app: FastAPI) -> None:
    """``/docs`` (Swagger UI, with an Authorize button for each security scheme) and ``/redoc``, from assets
    the service serves (nothing is fetched from elsewhere)."""
    app.mount(DOCS_ASSETS_URL, StaticFiles(directory=str(DOCS_ASSETS)), name="docs-assets")
    assert app.openapi_url is not None

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}", title=f"{app.title}: API",
            swagger_js_url=f"{root}{DOCS_ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_ASSETS_URL}/favicon.png",
            oauth2_redirect_url=None, swagger_ui_parameters={"persistAuthorization": True})

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(openapi_url=f"{root}{app.openapi_url}", title=f"{app.title}: API",
                              redoc_js_url=f"{root}{DOCS_ASSETS_URL}/redoc.standalone.js",
                              redoc_favicon_url=f"{root}{DOCS_ASSETS_URL}/favicon.png", with_google_fonts=False)
