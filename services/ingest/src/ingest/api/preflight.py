"""CORS preflight for the browser-facing paths.

A preflight carries no custom header values, so browsers pass the write key in the ``key`` query
parameter; the origin is checked against that key's list. Refusals carry no CORS headers at all.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Query, Request, Response, status

from ingest.access import resolve_key
from ingest.protection import origin_allowed

router = APIRouter(prefix="/v1", include_in_schema=False)

BROWSER_PATHS = ("/responses", "/responses/batch", "/widget/eligibility", "/widget/displays", "/widget/snooze",
                 "/widget/dismissals")
PREFLIGHT_MAX_AGE = "600"


async def preflight(
    request: Request,
    key: Annotated[str | None, Query(max_length=100)] = None,
    origin: Annotated[str | None, Header()] = None,
    access_control_request_headers: Annotated[str | None, Header()] = None,
) -> Response:
    """Grant the preflight to an origin on the key's list; refuse everything else with 403."""
    try:
        write_key, _survey = resolve_key(request, None, key)
    except HTTPException:
        return Response(status_code=status.HTTP_403_FORBIDDEN)
    if origin is None or not origin_allowed(origin, write_key.allowed_origins):
        return Response(status_code=status.HTTP_403_FORBIDDEN, headers={"Vary": "Origin"})
    return Response(status_code=status.HTTP_204_NO_CONTENT, headers={
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Methods": "GET, POST",
        "Access-Control-Allow-Headers": access_control_request_headers or "content-type",
        "Access-Control-Max-Age": PREFLIGHT_MAX_AGE,
        "Vary": "Origin",
    })


for path in BROWSER_PATHS:
    router.add_api_route(path, preflight, methods=["OPTIONS"])
