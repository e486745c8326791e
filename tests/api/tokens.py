"""Tokens for API tests: the settings of a test deployment and JWTs it accepts.

``AUTH_SETTINGS`` configures HS256 with an issuer and an audience; ``issue()`` signs a token
for it (both scopes, five minutes) and ``bearer()`` makes the header.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import jwt
from pydantic import SecretStr

from api.auth import READ_SCOPE, WRITE_SCOPE

TEST_SECRET = "test-only-secret-0123456789abcdef"  # 33 bytes: HS256 needs at least 32
ISSUER = "https://auth.example.test"
AUDIENCE = "energy-processing"
ALL_SCOPES = (READ_SCOPE, WRITE_SCOPE)
AUTH_SETTINGS: dict[str, Any] = {
    "auth_jwt_secret": SecretStr(TEST_SECRET),
    "auth_jwt_issuer": ISSUER,
    "auth_jwt_audience": AUDIENCE,
}
AUTH_ENV = {
    "AUTH_JWT_SECRET": TEST_SECRET,
    "AUTH_JWT_ISSUER": ISSUER,
    "AUTH_JWT_AUDIENCE": AUDIENCE,
}


def issue(
    scopes: Iterable[str] = ALL_SCOPES,
    *,
    key: Any = TEST_SECRET,
    algorithm: str = "HS256",
    lifetime_s: float = 300,
    headers: dict[str, Any] | None = None,
    **claims: Any,
) -> str:
    """A signed token; ``claims`` override the defaults (``None`` removes a claim)."""
    now = int(time.time())
    payload: dict[str, Any] = {
        "sub": "test-client",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + lifetime_s,
        "scope": " ".join(scopes),
    }
    payload.update(claims)
    payload = {name: value for name, value in payload.items() if value is not None}
    return jwt.encode(payload, key, algorithm=algorithm, headers=headers)


def bearer(token: str | None = None) -> dict[str, str]:
    """``Authorization`` header with ``token`` (default: a fresh one with both scopes)."""
    return {"Authorization": f"Bearer {token if token is not None else issue()}"}
