"""Bearer-token guards for the services' admin APIs (the token compared in constant time)."""

# No ``from __future__ import annotations`` here: FastAPI must see the guard's ``Depends(bearer)``, a closure
# variable that a string annotation could not be resolved against.
import hmac
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr

Guard = Callable[[Request, HTTPAuthorizationCredentials | None], None]


def bearer_guard(setting: str, token_of: Callable[[Request], SecretStr | None], *,
                 scheme_name: str = "AdminToken") -> Guard:
    """A FastAPI dependency requiring ``Authorization: Bearer <token>``, where ``token_of`` reads the token
    from the app's settings (named ``setting`` in messages). Without a token configured the API is off (503);
    a missing or wrong token is 401. The scheme is declared in OpenAPI, so ``/docs`` has an Authorize button."""
    bearer = HTTPBearer(auto_error=False, scheme_name=scheme_name, description=f"{setting} as a bearer token.")

    def guard(request: Request,
              credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)] = None) -> None:
        expected = token_of(request)
        if expected is None:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=f"the admin API is off: set {setting}")
        given = credentials.credentials if credentials is not None else ""
        if not hmac.compare_digest(given.encode(), expected.get_secret_value().encode()):
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="admin token required (Authorization: Bearer ...)",
                                headers={"WWW-Authenticate": "Bearer"})

    return guard
