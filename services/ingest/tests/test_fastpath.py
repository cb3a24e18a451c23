"""The fast path's dispatch: which requests it answers itself and which go on to FastAPI's router."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import Request, Response
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.types import Message, Receive, Scope, Send

from ingest.api import fastpath


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


class Router:
    """Stands for the rest of the app: records what reached it."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.paths.append(scope["path"])
        await Response(status_code=404)(scope, receive, send)


@pytest.mark.parametrize(("method", "path", "root_path", "answered_by_fast_path"), [
    ("POST", "/v1/responses", "", True),
    ("POST", "/pulse/v1/responses", "/pulse", True),  # mounted below a prefix (uvicorn --root-path, a proxy)
    ("POST", "/v1/responses/batch", "", False),
    ("POST", "/pulsev1/responses", "/pulse", False),  # the prefix must end at a path segment
    ("GET", "/v1/responses", "", False),
    ("POST", "/v1/responses", "/other", True),  # a root_path the path does not start with is not stripped
])
async def test_only_single_answer_posts_take_the_fast_path(monkeypatch: pytest.MonkeyPatch, method: str, path: str,
                                                          root_path: str, answered_by_fast_path: bool) -> None:
    async def accepted(_request: Request, _response: Response) -> dict[str, str]:
        return {"response_id": "r-1", "status": "accepted"}

    monkeypatch.setattr(fastpath, "accept_answer", accepted)
    router = Router()
    route = APIRoute(fastpath.PATH, endpoint=lambda: None, methods=["POST"])
    middleware = fastpath.AnswerFastPath(router, route=route, handlers={HTTPException: http_exception_handler,
                                                                        RequestValidationError: http_exception_handler})
    sent: list[dict[str, Any]] = []

    async def send(message: Message) -> None:
        sent.append(dict(message))

    scope = {"type": "http", "method": method, "path": path, "root_path": root_path, "headers": [],
             "query_string": b""}
    await middleware(scope, _no_body, send)
    assert sent[0]["status"] == (202 if answered_by_fast_path else 404)
    assert router.paths == ([] if answered_by_fast_path else [path])
