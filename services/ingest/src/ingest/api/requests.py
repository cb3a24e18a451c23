"""Reading the answer endpoints' requests directly: JSON bodies validated in one pass from the raw bytes,
and headers read once, with the same 422 shape FastAPI gives.

FastAPI resolves every declared parameter and dependency per request; on ``POST /v1/responses`` that
machinery cost several times the endpoint's own work (profiled under load), so the hot endpoints take the
``Request`` and document their body and parameters with :func:`documented`.
"""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, TypeAdapter, ValidationError

from pulse_shared.events import validate_json

T = TypeVar("T")


def validation_error(exc: ValidationError, *where: str) -> RequestValidationError:
    """FastAPI's 422 for a pydantic error, located in ``where`` (``"body"``, or ``"header", name``)."""
    errors: list[dict[str, Any]] = []
    for error in exc.errors(include_url=False):
        located: dict[str, Any] = {**error, "loc": (*where, *error["loc"])}
        if isinstance(located.get("input"), bytes):  # unparseable bytes are not echoed (nor always text)
            del located["input"]
        errors.append(located)
    return RequestValidationError(errors)


async def json_body(request: Request, adapter: TypeAdapter[T]) -> T:
    """The request's JSON body validated by ``adapter`` straight from its bytes, or a 422 naming the problem."""
    try:
        return validate_json(adapter, await request.body())
    except ValidationError as exc:
        raise validation_error(exc, "body") from exc


def header(request: Request, name: str, adapter: TypeAdapter[str]) -> str | None:
    """An optional header validated by ``adapter``, or a 422 naming it."""
    value = request.headers.get(name)
    if value is None:
        return None
    try:
        return adapter.validate_python(value)
    except ValidationError as exc:
        raise validation_error(exc, "header", name) from exc


def documented(body: type[BaseModel], *parameters: dict[str, Any],
               security: list[dict[str, list[str]]]) -> dict[str, Any]:
    """``openapi_extra`` describing a JSON body of ``body``'s schema, the given parameters and the security
    requirements (schemes declared elsewhere in the app)."""
    schema = body.model_json_schema(ref_template="#/components/schemas/{model}")
    return {
        "parameters": list(parameters),
        "requestBody": {"required": True, "content": {"application/json": {"schema": schema}}},
        "security": security,
    }


def parameter(name: str, where: str, description: str, **schema: Any) -> dict[str, Any]:
    """One OpenAPI parameter: a string in ``where`` (header or query) with the given constraints."""
    return {"name": name, "in": where, "required": False, "description": description,
            "schema": {"type": "string", **schema}}
