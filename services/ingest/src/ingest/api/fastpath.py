"""``POST /v1/responses`` served straight from ASGI, beside FastAPI's router.

The single-answer endpoint is the hottest path of the platform (every widget answer). Through FastAPI's
router each request also paid for route matching, the exception and exit-stack middlewares, dependency
solving and response-model serialisation, about a fifth of the endpoint's CPU under load. This
middleware sits innermost (inside the body-limit and metrics middlewares), runs the same
:func:`~ingest.api.responses.accept_answer` the route runs, and renders refusals with FastAPI's own
exception handlers, so callers see exactly what the route would answer. Everything else goes on to the
router; the route stays, and documents the endpoint in the OpenAPI schema.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response, status
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic_core import to_json
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

from ingest.api.responses import accept_answer
from pulse_shared.http import route_path

PATH = "/v1/responses"
Handler = Callable[[Request, Any], Awaitable[Response]]


class AnswerFastPath:
    """ASGI middleware answering ``POST /v1/responses`` itself (see the module's docstring)."""

    def __init__(self, app: ASGIApp, *, route: APIRoute, handlers: dict[type[Exception], Handler]) -> None:
        self.app = app
        self.route = route
        self.refused = handlers[HTTPException]
        self.invalid = handlers[RequestValidationError]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or route_path(scope) != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        scope["route"] = self.route  # what the metrics middleware labels the request with
        request = Request(scope, receive)
        headers = Response()  # collects the headers the handler sets, as FastAPI's injected Response does
        del headers.headers["content-length"]
        answer: Response
        try:
            accepted = await accept_answer(request, headers)
        except HTTPException as exc:
            answer = await self.refused(request, exc)
        except RequestValidationError as exc:
            answer = await self.invalid(request, exc)
        else:  # written as the ASGI messages a JSONResponse would send, without building one
            body = to_json(accepted)
            await send({"type": "http.response.start", "status": status.HTTP_202_ACCEPTED, "headers": [
                (b"content-length", str(len(body)).encode()), (b"content-type", b"application/json"),
                *headers.raw_headers]})
            await send({"type": "http.response.body", "body": body})
            return
        for name, value in headers.headers.items():  # CORS, Vary; a refusal's own headers take precedence
            if name not in answer.headers:
                answer.headers[name] = value
        await answer(scope, receive, send)


def install(app: FastAPI, router: APIRouter) -> None:
    """Put the fast path innermost among the app's middlewares (before the app first starts), rendering
    refusals with the app's exception handlers; ``router`` holds the documenting route."""
    route = next(r for r in router.routes if isinstance(r, APIRoute) and r.path == PATH and "POST" in (r.methods or ()))
    handlers: dict[Any, Any] = {HTTPException: http_exception_handler,
                                RequestValidationError: request_validation_exception_handler}
    handlers.update({k: v for k, v in app.exception_handlers.items() if k in handlers})
    app.user_middleware.append(Middleware(AnswerFastPath, route=route, handlers=handlers))
