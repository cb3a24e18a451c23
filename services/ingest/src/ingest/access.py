"""Who may submit: the write key (header or query), its origin list, its survey's state, the rate limits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Response, Security, status
from fastapi.security import APIKeyHeader, APIKeyQuery

from ingest.catalog import CatalogStore
from ingest.domain.catalog import Survey, WriteKey
from ingest.domain.client_address import client_address
from ingest.protection import RateLimiter, origin_allowed, retry_after
from ingest.settings import IngestSettings
from pulse_shared.auth import bearer_guard

KEY_HELP = "the survey's write key, as the X-Pulse-Key header or the key query parameter"

#: The write key's two OpenAPI security schemes (either one authorises), so ``/docs`` has an Authorize button
#: for it beside the admin token's.
KEY_HEADER = APIKeyHeader(name="X-Pulse-Key", scheme_name="WriteKey", auto_error=False,
                          description="The survey's write key (browsers: the widget sends it as this header).")
KEY_QUERY = APIKeyQuery(name="key", scheme_name="WriteKeyQuery", auto_error=False,
                        description="The survey's write key as the `key` query parameter (for tools that cannot "
                                    "set headers); the header wins when both are given.")
#: ``security`` of an operation documented by hand (``openapi_extra``): the header or the query key.
WRITE_KEY_SECURITY: list[dict[str, list[str]]] = [{"WriteKey": []}, {"WriteKeyQuery": []}]


@dataclass(frozen=True)
class Submitter:
    """An authorised caller: the key it used and the survey it writes to."""

    key: WriteKey
    survey: Survey
    origin: str | None


def cors(response: Response, origin: str | None) -> None:
    """Grant CORS to an allowed browser origin: the exact origin echoed, never ``*``."""
    response.headers["Vary"] = "Origin"
    if origin is not None:
        response.headers["Access-Control-Allow-Origin"] = origin


def resolve_key(request: Request, header_key: str | None, query_key: str | None) -> tuple[WriteKey, Survey]:
    """The active key and its survey, or the 401/410 that says why not."""
    catalog: CatalogStore = request.app.state.catalog
    raw = header_key or query_key
    if not raw:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail=f"a write key is required: {KEY_HELP}")
    key = catalog.current.keys.get(raw)
    if key is None or key.revoked_at is not None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="unknown or revoked write key")
    survey = catalog.current.surveys.get(key.survey_id)
    if survey is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="the write key's survey does not exist")
    return key, survey


def authorize(request: Request, response: Response) -> Submitter:
    """Authorise the caller from its key (``X-Pulse-Key`` header or ``key`` query parameter), origin, survey
    and rate limits, or raise the 401/403/410/429 that says why not."""
    headers = request.headers
    origin = headers.get("origin")
    header_key = headers.get("x-pulse-key")  # the query string is parsed only when the header is absent
    write_key, survey = resolve_key(request, header_key, None if header_key else request.query_params.get("key"))
    if not origin_allowed(origin, write_key.allowed_origins):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=f"origin {origin!r} is not allowed for this key",
                            headers={"Vary": "Origin"})
    if survey.closed:
        raise HTTPException(status.HTTP_410_GONE, detail=f"survey {survey.survey_id!r} is closed",
                            headers=_cors_headers(origin))
    limiter: RateLimiter = request.app.state.limiter
    settings: IngestSettings = request.app.state.settings
    for name, per_minute in ((f"key:{write_key.key}", write_key.rate_per_minute),
                             (f"ip:{client_ip(request, settings)}", settings.rate_per_ip_per_minute)):
        wait = limiter.take(name, per_minute)
        if wait > 0:
            raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, detail="rate limit exceeded; retry later",
                                headers={"Retry-After": retry_after(wait), **_cors_headers(origin)})
    cors(response, origin)
    return Submitter(write_key, survey, origin)


async def submitter(
    request: Request,
    response: Response,
    header_key: Annotated[str | None, Security(KEY_HEADER)] = None,
    query_key: Annotated[str | None, Security(KEY_QUERY)] = None,
) -> Submitter:
    """Dependency: :func:`authorize` (the schemes are declared for the OpenAPI document)."""
    return authorize(request, response)


def _cors_headers(origin: str | None) -> dict[str, str]:
    headers = {"Vary": "Origin"}
    if origin is not None:
        headers["Access-Control-Allow-Origin"] = origin
    return headers


def client_ip(request: Request, settings: IngestSettings) -> str:
    """The caller's address: the right-most X-Forwarded-For address that is not a trusted proxy (when the peer
    is one), else the peer."""
    peer = request.client.host if request.client else "unknown"
    return client_address(peer, request.headers.get("x-forwarded-for"), settings.proxies)


#: Dependency: the admin token (INGEST_ADMIN_TOKEN) as a bearer token.
admin = bearer_guard("INGEST_ADMIN_TOKEN", lambda request: request.app.state.settings.admin_token)


SubmitterDep = Annotated[Submitter, Depends(submitter)]
AdminDep = Depends(admin)
