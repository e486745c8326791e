"""JWT bearer authentication of everything under ``/api/v1``, by HTTP method.

GET and HEAD need the scope ``processing:read``, every other method ``processing:write``;
health, readiness and the documentation stay open. Tokens are checked with exactly one
configured key and its algorithm (HS256 secret or RS256 public key), so ``none`` and
algorithm confusion are impossible. Failures answer problem details: 401 with a
``WWW-Authenticate: Bearer`` challenge, or 403 when the token lacks the scope.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import FORBIDDEN, UNAUTHORIZED
from api.responses import problem_response
from service.settings import ConfigurationError, Settings

log = logging.getLogger(__name__)

READ_SCOPE = "processing:read"
WRITE_SCOPE = "processing:write"
PROTECTED_PREFIX = "/api/v1"
READ_METHODS = frozenset({"GET", "HEAD"})
SCOPE_CLAIMS = ("scope", "scp", "scopes")
# RFC 7518 3.2: an HS256 key must be at least as long as the hash output (256 bits).
MIN_SECRET_BYTES = 32
REALM = "energy-processing"
Algorithm = Literal["HS256", "RS256"]
_UNQUOTABLE = re.compile(r'["\\\x00-\x1f\x7f]')


def required_scope(method: str, path: str) -> str | None:
    """The scope a request needs, or None for the open endpoints outside ``/api/v1``."""
    if path != PROTECTED_PREFIX and not path.startswith(PROTECTED_PREFIX + "/"):
        return None
    return READ_SCOPE if method.upper() in READ_METHODS else WRITE_SCOPE


@dataclass(frozen=True)
class Principal:
    """Who called: the verified token's subject, scopes and claims."""

    subject: str | None
    scopes: frozenset[str]
    claims: Mapping[str, Any]


def principal(connection: HTTPConnection) -> Principal | None:
    """The caller of this request; None when authentication is disabled."""
    found = connection.scope.get("auth")
    return found if isinstance(found, Principal) else None


class InvalidToken(Exception):
    """The bearer token cannot be accepted; the message says why (it goes to the client)."""


def token_scopes(claims: Mapping[str, Any]) -> frozenset[str]:
    """Scopes from ``scope``, ``scp`` and ``scopes``: each a space-separated string or a list."""
    found: set[str] = set()
    for name in SCOPE_CLAIMS:
        value = claims.get(name)
        if isinstance(value, str):
            found.update(value.split())
        elif isinstance(value, list):
            found.update(item for item in value if isinstance(item, str) and item)
    return frozenset(found)


class JwtVerifier:
    """Checks a token's signature with one key and algorithm, ``exp``, and the configured
    issuer and audience; ``verify`` answers the Principal or raises InvalidToken."""

    def __init__(
        self,
        key: str | RSAPublicKey,
        algorithm: Algorithm,
        *,
        issuer: str | None = None,
        audience: str | None = None,
        leeway_s: float = 0.0,
    ) -> None:
        self.key = key
        self.algorithm: Algorithm = algorithm
        self.issuer = issuer
        self.audience = audience
        self.leeway_s = leeway_s
        required = ["exp"]
        if issuer is not None:
            required.append("iss")
        if audience is not None:
            required.append("aud")
        self._options: dict[str, Any] = {
            "require": required,
            # Without a configured audience, a token's ``aud`` is not checked (README).
            "verify_aud": audience is not None,
        }

    def verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:  # DecodeError, or a header field of a bad type
            raise InvalidToken("the token is not a well-formed JWT") from exc
        algorithm = header.get("alg")
        if algorithm != self.algorithm:
            raise InvalidToken(
                f"the token's algorithm {str(algorithm)[:20]!r} is not accepted; "
                f"expected {self.algorithm}"
            )
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self.key,
                algorithms=[self.algorithm],
                issuer=self.issuer,
                audience=self.audience,
                leeway=self.leeway_s,
                options=self._options,  # type: ignore[arg-type]
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidToken("the token has expired") from exc
        except jwt.ImmatureSignatureError as exc:
            raise InvalidToken("the token is not valid yet (nbf or iat in the future)") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidToken(f"the token has no {exc.claim!r} claim") from exc
        except jwt.InvalidIssuerError as exc:
            raise InvalidToken(f"the token's issuer is not {self.issuer!r}") from exc
        except jwt.InvalidAudienceError as exc:
            raise InvalidToken(f"the token's audience does not include {self.audience!r}") from exc
        except jwt.InvalidSignatureError as exc:
            raise InvalidToken("the token's signature does not verify") from exc
        except jwt.InvalidTokenError as exc:
            raise InvalidToken(f"the token is invalid ({type(exc).__name__})") from exc
        subject = claims.get("sub")
        return Principal(
            subject=subject if isinstance(subject, str) else None,
            scopes=token_scopes(claims),
            claims=claims,
        )


def verifier_from_settings(settings: Settings) -> JwtVerifier | None:
    """The verifier the settings describe; None when AUTH_DISABLED is set.

    Raises ConfigurationError naming the variables when no usable key is configured.
    """
    if settings.auth_disabled:
        if settings.auth_jwt_secret is not None or settings.auth_jwt_public_key is not None:
            log.warning("AUTH_DISABLED is set: the configured JWT key is ignored")
        return None
    common: dict[str, Any] = {
        "issuer": settings.auth_jwt_issuer,
        "audience": settings.auth_jwt_audience,
        "leeway_s": settings.auth_jwt_leeway,
    }
    if settings.auth_jwt_secret is not None:
        secret = settings.auth_jwt_secret.get_secret_value()
        if len(secret.encode()) < MIN_SECRET_BYTES:
            raise ConfigurationError(
                f"AUTH_JWT_SECRET: must be at least {MIN_SECRET_BYTES} bytes for HS256"
            )
        return JwtVerifier(secret, "HS256", **common)
    if settings.auth_jwt_public_key is not None:
        return JwtVerifier(_public_key(settings.auth_jwt_public_key), "RS256", **common)
    raise ConfigurationError(
        "the API needs a key to check JWTs: set AUTH_JWT_SECRET (HS256) or "
        "AUTH_JWT_PUBLIC_KEY (RS256), or AUTH_DISABLED=true to serve without authentication "
        "(local use only)"
    )


def _public_key(value: str) -> RSAPublicKey:
    text = value.strip()
    source = "AUTH_JWT_PUBLIC_KEY"
    if not text.startswith("-----BEGIN"):
        path = Path(text).expanduser()
        source = f"AUTH_JWT_PUBLIC_KEY file {path}"
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigurationError(
                f"AUTH_JWT_PUBLIC_KEY: neither PEM text nor a readable file: {exc}"
            ) from exc
    try:
        key = load_pem_public_key(text.encode())
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(f"{source}: not a PEM public key ({exc})") from exc
    if not isinstance(key, RSAPublicKey):
        raise ConfigurationError(f"{source}: must be an RSA public key for RS256")
    return key


class AuthMiddleware:
    """Pure ASGI: checks the bearer token of every ``/api/v1`` request before routing.

    The verified Principal is stored as ``scope["auth"]`` (see ``principal``).
    """

    def __init__(self, app: ASGIApp, verifier: JwtVerifier) -> None:
        self.app = app
        self.verifier = verifier

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        needed = required_scope(scope["method"], scope["path"])
        if needed is None:
            await self.app(scope, receive, send)
            return
        token = _bearer_token(scope)
        if token is None:
            response = problem_response(
                401,
                "Unauthorized",
                "this endpoint needs an `Authorization: Bearer <JWT>` header",
                type_=UNAUTHORIZED,
                headers={"WWW-Authenticate": f'Bearer realm="{REALM}", scope="{needed}"'},
            )
            await response(scope, receive, send)
            return
        try:
            caller = self.verifier.verify(token)
        except InvalidToken as exc:
            reason = str(exc)
            response = problem_response(
                401,
                "Unauthorized",
                reason,
                type_=UNAUTHORIZED,
                headers={
                    "WWW-Authenticate": f'Bearer realm="{REALM}", error="invalid_token", '
                    f'error_description="{_UNQUOTABLE.sub("", reason)}"'
                },
            )
            await response(scope, receive, send)
            return
        if needed not in caller.scopes:
            held = " ".join(sorted(caller.scopes))
            if len(held) > 200:
                held = held[:197] + "..."
            response = problem_response(
                403,
                "Forbidden",
                f"{scope['method']} {scope['path']} needs the scope {needed!r}; "
                f"the token has {held or 'none'}",
                type_=FORBIDDEN,
                headers={
                    "WWW-Authenticate": f'Bearer realm="{REALM}", error="insufficient_scope", '
                    f'scope="{needed}"'
                },
            )
            await response(scope, receive, send)
            return
        scope["auth"] = caller
        await self.app(scope, receive, send)


def _bearer_token(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            header: str = value.decode("latin-1")
            scheme, _, token = header.strip().partition(" ")
            token = token.strip()
            if scheme.lower() == "bearer" and token:
                return token
            return None
    return None
