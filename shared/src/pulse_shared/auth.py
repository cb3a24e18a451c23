"""Bearer-token guards for the services' admin APIs (the token compared in constant time)."""

# No ``from __future__ import annotations`` here: FastAPI must see the guard's ``Depends(bearer)``, a closure
# variable that a string annotation could not be resolved against.
import hmac
from collections.abc import Callable, Sequence
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr

Guard = Callable[[Request, HTTPAuthorizationCredentials | None], None]


def bearer_guard(setting: str, token_of: Callable[[Request], SecretStr | Sequence[SecretStr] | None], *,
                 scheme_name: str = "AdminToken", what: str = "admin") -> Guard:
    """A FastAPI dependency requiring ``Authorization: Bearer <token>``, where ``token_of`` reads the token (or
    the tokens, several during a rotation) from the app's settings (named ``setting`` in messages). Without a
    token configured the API is off (503); a missing or wrong token is 401. Every configured token is compared in
    constant time, so the answer's timing says nothing about which one nearly matched. The scheme is declared in
    OpenAPI, so ``/docs`` has an Authorize button."""
    bearer = HTTPBearer(auto_error=False, scheme_name=scheme_name, description=f"{setting} as a bearer token.")

    def guard(request: Request,
              credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)] = None) -> None:
        configured = token_of(request)
        expected = [configured] if isinstance(configured, SecretStr) else list(configured or ())
        if not expected:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=f"the {what} API is off: set {setting}")
        given = (credentials.credentials if credentials is not None else "").encode()
        matches = [hmac.compare_digest(given, token.get_secret_value().encode()) for token in expected]
        if not any(matches):
            raise HTTPException(status.HTTP_401_UNAUTHORIZED,
                                detail=f"{what} token required (Authorization: Bearer ...)",
                                headers={"WWW-Authenticate": "Bearer"})

    return guard
