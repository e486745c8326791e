"""JWT authentication of /api/v1 against the real app: keys, algorithms, claims and scopes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from api.app import create_app
from api.auth import (
    READ_SCOPE,
    WRITE_SCOPE,
    AuthMiddleware,
    InvalidToken,
    JwtVerifier,
    principal,
    required_scope,
    token_scopes,
)
from models.api import Problem
from service.settings import ConfigurationError, Settings, load_settings
from tests.api.fakes import FakeKafka, FakeReader, FakeStatsStore
from tests.api.tokens import AUDIENCE, AUTH_SETTINGS, ISSUER, TEST_SECRET, bearer, issue

URL = "/api/v1/metrics"


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def serve(settings: Settings) -> TestClient:
    app = create_app(settings, reader=FakeReader(), stats_store=FakeStatsStore(), kafka=FakeKafka())
    return TestClient(app, raise_server_exceptions=False)


@pytest.fixture
def anonymous(settings: Settings) -> Iterator[TestClient]:
    """The HS256 test deployment, with no default Authorization header."""
    with serve(settings) as client:
        yield client


@pytest.fixture
def rs256(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> Iterator[TestClient]:
    settings = Settings(
        data_dir=tmp_path,
        auth_jwt_public_key=public_pem(rsa_key),
        auth_jwt_issuer=ISSUER,
        auth_jwt_audience=AUDIENCE,
    )
    with serve(settings) as client:
        yield client


def unauthorized(response: Any, *words: str) -> Problem:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="energy-processing"'), challenge
    found = Problem.model_validate_json(response.content)
    assert (found.status, found.title, found.type) == (
        401,
        "Unauthorized",
        "/docs#problem-unauthorized",
    )
    for word in words:
        assert word in found.detail, found.detail
    return found


def forbidden(response: Any, scope: str) -> Problem:
    assert response.status_code == 403, response.text
    assert response.headers["content-type"] == "application/problem+json"
    challenge = response.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge and f'scope="{scope}"' in challenge
    found = Problem.model_validate_json(response.content)
    assert (found.status, found.type) == (403, "/docs#problem-forbidden")
    assert scope in found.detail
    return found


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_signed(header: dict[str, Any], payload: dict[str, Any], secret: bytes) -> str:
    """A token built by hand, for algorithms PyJWT refuses to produce with such keys."""
    encode = json.JSONEncoder(allow_nan=False).encode
    signing_input = f"{b64(encode(header).encode())}.{b64(encode(payload).encode())}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    payload = {"iss": ISSUER, "aud": AUDIENCE, "exp": now + 300, "scope": READ_SCOPE}
    payload.update(overrides)
    return payload


# --- accepted tokens ------------------------------------------------------------------------


def test_hs256_token_reads(anonymous: TestClient) -> None:
    response = anonymous.get(URL, headers=bearer(issue([READ_SCOPE])))
    assert response.status_code == 200, response.text
    assert response.json() == {"items": [], "next_cursor": None}
    assert anonymous.head(URL, headers=bearer(issue([READ_SCOPE]))).status_code == 200
    assert anonymous.get("/api/v1/stats", headers=bearer(issue([READ_SCOPE]))).status_code == 200


def test_rs256_token_reads(rs256: TestClient, rsa_key: rsa.RSAPrivateKey) -> None:
    token = issue([READ_SCOPE], key=rsa_key, algorithm="RS256")
    assert rs256.get(URL, headers=bearer(token)).status_code == 200


def test_rs256_public_key_from_a_file(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey, caplog: pytest.LogCaptureFixture
) -> None:
    pem = tmp_path / "auth.pem"
    pem.write_text(public_pem(rsa_key))
    settings = Settings(data_dir=tmp_path, auth_jwt_public_key=str(pem))
    with serve(settings) as client:
        token = issue([READ_SCOPE], key=rsa_key, algorithm="RS256", iss=None, aud=None)
        assert client.get(URL, headers=bearer(token)).status_code == 200


@pytest.mark.parametrize(
    "scope_claims",
    [
        {"scope": f"openid {READ_SCOPE} profile"},
        {"scope": [READ_SCOPE]},
        {"scp": [READ_SCOPE, "other"]},
        {"scp": READ_SCOPE},
        {"scopes": [READ_SCOPE]},
        {"scope": "openid", "scopes": [READ_SCOPE]},
    ],
)
def test_scope_claims_accepted(anonymous: TestClient, scope_claims: dict[str, Any]) -> None:
    payload = {name: value for name, value in claims().items() if name != "scope"}
    token = jwt.encode(payload | scope_claims, TEST_SECRET, algorithm="HS256")
    assert anonymous.get(URL, headers=bearer(token)).status_code == 200


def test_token_scopes_ignores_junk() -> None:
    assert token_scopes({"scope": "a  b", "scp": ["c", 3, "", None], "scopes": {"d": 1}}) == {
        "a",
        "b",
        "c",
    }


def test_bearer_scheme_is_case_insensitive(anonymous: TestClient) -> None:
    response = anonymous.get(URL, headers={"Authorization": f"bearer  {issue()}"})
    assert response.status_code == 200


def test_small_clock_skew_is_tolerated(anonymous: TestClient) -> None:
    token = issue(lifetime_s=-10)  # expired 10 s ago; AUTH_JWT_LEEWAY is 30 s
    assert anonymous.get(URL, headers=bearer(token)).status_code == 200


# --- rejected tokens: 401 -------------------------------------------------------------------


def test_missing_token_is_401_with_challenge(anonymous: TestClient) -> None:
    response = anonymous.get(URL)
    unauthorized(response, "Authorization: Bearer")
    assert response.headers["www-authenticate"] == (
        f'Bearer realm="energy-processing", scope="{READ_SCOPE}"'
    )
    assert "error=" not in response.headers["www-authenticate"]


@pytest.mark.parametrize(
    "header",
    ["Basic dXNlcjpwYXNz", "Bearer", "Bearer   ", "Token abc", issue()],
)
def test_other_schemes_are_401(anonymous: TestClient, header: str) -> None:
    unauthorized(anonymous.get(URL, headers={"Authorization": header}), "Bearer")


@pytest.mark.parametrize("token", ["abc", "a.b.c", "Zm9v.YmFy.YmF6", "....", "ä.ö.ü"])
def test_malformed_token_is_401(anonymous: TestClient, token: str) -> None:
    raw = f"Bearer {token}".encode("latin-1")  # headers are octets; latin-1 passes them all
    response = anonymous.get(URL, headers={"Authorization": raw})  # type: ignore[dict-item]
    unauthorized(response)
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_header_of_a_bad_type_is_401(anonymous: TestClient) -> None:
    # PyJWT raises InvalidTokenError, not DecodeError, for this one (it used to be a 500).
    token = hand_signed({"alg": "HS256", "kid": 5}, claims(), TEST_SECRET.encode())
    unauthorized(anonymous.get(URL, headers=bearer(token)), "well-formed")


def test_expired_token_is_401(anonymous: TestClient) -> None:
    response = anonymous.get(URL, headers=bearer(issue(lifetime_s=-3600)))
    unauthorized(response, "expired")
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert 'error_description="the token has expired"' in response.headers["www-authenticate"]


def test_token_without_exp_is_401(anonymous: TestClient) -> None:
    unauthorized(anonymous.get(URL, headers=bearer(issue(exp=None))), "'exp'")


def test_token_not_yet_valid_is_401(anonymous: TestClient) -> None:
    token = issue(nbf=int(time.time()) + 3600)
    unauthorized(anonymous.get(URL, headers=bearer(token)), "not valid yet")


def test_wrong_audience_is_401(anonymous: TestClient) -> None:
    response = anonymous.get(URL, headers=bearer(issue(aud="another-service")))
    unauthorized(response, "audience", AUDIENCE)
    unauthorized(anonymous.get(URL, headers=bearer(issue(aud=None))), "'aud'")


def test_wrong_issuer_is_401(anonymous: TestClient) -> None:
    response = anonymous.get(URL, headers=bearer(issue(iss="https://evil.example")))
    unauthorized(response, "issuer", ISSUER)
    unauthorized(anonymous.get(URL, headers=bearer(issue(iss=None))), "'iss'")


def test_wrong_secret_is_401(anonymous: TestClient) -> None:
    token = issue(key="another-secret-that-is-32-bytes-long")
    unauthorized(anonymous.get(URL, headers=bearer(token)), "signature")


def test_tampered_payload_is_401(anonymous: TestClient) -> None:
    header, _, signature = issue([READ_SCOPE]).split(".")
    payload = b64(json.dumps(claims(scope=f"{READ_SCOPE} {WRITE_SCOPE}")).encode())
    token = f"{header}.{payload}.{signature}"
    unauthorized(anonymous.get(URL, headers=bearer(token)), "signature")


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_alg_none_is_401(anonymous: TestClient, alg: str) -> None:
    token = f"{b64(json.dumps({'alg': alg, 'typ': 'JWT'}).encode())}.{b64(json.dumps(claims()).encode())}."
    unauthorized(anonymous.get(URL, headers=bearer(token)), "algorithm", "HS256")


def test_unsigned_token_from_pyjwt_is_401(anonymous: TestClient) -> None:
    token = issue(key=None, algorithm="none")
    unauthorized(anonymous.get(URL, headers=bearer(token)), "algorithm")


def test_hs256_token_is_401_when_rs256_is_configured(
    rs256: TestClient, rsa_key: rsa.RSAPrivateKey
) -> None:
    # The classic confusion attack: HMAC keyed with the (public) RSA key's PEM text.
    pem = public_pem(rsa_key).encode()
    token = hand_signed({"alg": "HS256", "typ": "JWT"}, claims(), pem)
    response = rs256.get(URL, headers=bearer(token))
    unauthorized(response, "algorithm", "RS256")
    unauthorized(rs256.get(URL, headers=bearer(issue())), "algorithm", "RS256")


def test_rs256_token_is_401_when_hs256_is_configured(
    anonymous: TestClient, rsa_key: rsa.RSAPrivateKey
) -> None:
    token = issue(key=rsa_key, algorithm="RS256")
    unauthorized(anonymous.get(URL, headers=bearer(token)), "algorithm", "HS256")


def test_rs256_token_of_another_key_is_401(rs256: TestClient) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = issue(key=other, algorithm="RS256")
    unauthorized(rs256.get(URL, headers=bearer(token)), "signature")


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
CLAIM_NAMES = st.sampled_from(["exp", "nbf", "iat", "iss", "aud", "sub", "scope", "scp", "jti"])


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(
    header_extra=st.dictionaries(st.sampled_from(["alg", "typ", "kid", "crit"]), JSON_VALUES),
    payload=st.dictionaries(CLAIM_NAMES | st.text(max_size=5), JSON_VALUES, max_size=6),
    signed=st.booleans(),
)
def test_any_token_is_accepted_or_invalid_never_an_error(
    header_extra: dict[str, Any], payload: dict[str, Any], signed: bool
) -> None:
    verifier = JwtVerifier(TEST_SECRET, "HS256", issuer=ISSUER, audience=AUDIENCE)
    header = {"alg": "HS256", "typ": "JWT", **header_extra}
    secret = TEST_SECRET.encode() if signed else b"another secret"
    try:
        token = hand_signed(header, payload, secret)
    except ValueError:  # NaN and infinities are not JSON
        return
    try:
        verifier.verify(token)
    except InvalidToken as exc:
        assert str(exc)


def test_unknown_path_under_api_v1_needs_a_token(anonymous: TestClient) -> None:
    unauthorized(anonymous.get("/api/v1/nothing-here"))
    assert anonymous.get("/api/v1/nothing-here", headers=bearer()).status_code == 404


# --- scopes: 403 ----------------------------------------------------------------------------


def test_token_without_scopes_is_403(anonymous: TestClient) -> None:
    found = forbidden(anonymous.get(URL, headers=bearer(issue([]))), READ_SCOPE)
    assert "none" in found.detail


def test_write_scope_does_not_read(anonymous: TestClient) -> None:
    forbidden(anonymous.get(URL, headers=bearer(issue([WRITE_SCOPE]))), READ_SCOPE)


def test_read_scope_on_post_is_403(anonymous: TestClient) -> None:
    response = anonymous.post(URL, headers=bearer(issue([READ_SCOPE])), json={})
    forbidden(response, WRITE_SCOPE)
    # With the write scope the request reaches the router, which has no POST here.
    assert anonymous.post(URL, headers=bearer(issue([WRITE_SCOPE])), json={}).status_code == 405


@pytest.mark.parametrize(
    ("method", "path", "scope"),
    [
        ("GET", "/api/v1/metrics", READ_SCOPE),
        ("HEAD", "/api/v1/stats", READ_SCOPE),
        ("GET", "/api/v1/jobs/3f2b", READ_SCOPE),
        ("POST", "/api/v1/jobs", WRITE_SCOPE),
        ("POST", "/api/v1/aggregate", WRITE_SCOPE),
        ("DELETE", "/api/v1/jobs/1", WRITE_SCOPE),
        ("OPTIONS", "/api/v1/metrics", WRITE_SCOPE),
        ("get", "/api/v1", READ_SCOPE),
        ("GET", "/health", None),
        ("GET", "/ready", None),
        ("GET", "/openapi.json", None),
        ("GET", "/docs", None),
        ("GET", "/api/v10/metrics", None),
        ("POST", "/", None),
    ],
)
def test_required_scope_by_method(method: str, path: str, scope: str | None) -> None:
    assert required_scope(method, path) == scope


# --- open endpoints -------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/health", "/ready", "/openapi.json", "/docs"])
def test_health_and_docs_stay_open(anonymous: TestClient, path: str) -> None:
    assert anonymous.get(path).status_code == 200
    garbage = {"Authorization": "Bearer not-a-token"}
    assert anonymous.get(path, headers=garbage).status_code == 200


def test_principal_reaches_the_handler() -> None:
    seen: list[Any] = []

    async def whoami(request: Request) -> Response:
        caller = principal(request)
        seen.append(caller)
        assert caller is not None
        return JSONResponse({"sub": caller.subject, "scopes": sorted(caller.scopes)})

    verifier = JwtVerifier(TEST_SECRET, "HS256", issuer=ISSUER, audience=AUDIENCE)
    app = Starlette(
        routes=[Route("/api/v1/whoami", whoami)],
        middleware=[Middleware(AuthMiddleware, verifier=verifier)],
    )
    with TestClient(app) as client:
        response = client.get("/api/v1/whoami", headers=bearer(issue(sub="analytics")))
    assert response.json() == {"sub": "analytics", "scopes": [READ_SCOPE, WRITE_SCOPE]}
    assert seen[0].claims["aud"] == AUDIENCE


# --- configuration --------------------------------------------------------------------------


def test_no_key_refuses_to_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as raised:
        create_app(Settings(data_dir=tmp_path))
    message = str(raised.value)
    for variable in ("AUTH_JWT_SECRET", "AUTH_JWT_PUBLIC_KEY", "AUTH_DISABLED=true"):
        assert variable in message


def test_auth_disabled_serves_without_token(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with serve(Settings(data_dir=tmp_path, auth_disabled=True)) as client:
        assert client.get(URL).status_code == 200
        assert client.post(URL).status_code == 405
    assert "authentication is DISABLED" in caplog.text


@pytest.mark.parametrize(
    ("value", "disabled"),
    [
        ("true", True),
        ("1", True),
        ("yes", True),
        ("TRUE", True),
        ("false", False),
        ("0", False),
        ("no", False),
        ("off", False),
        ("", False),
    ],
)
def test_auth_disabled_is_an_explicit_boolean(
    clean_env: pytest.MonkeyPatch, value: str, disabled: bool
) -> None:
    clean_env.setenv("AUTH_DISABLED", value)
    assert load_settings().auth_disabled is disabled


@pytest.mark.parametrize("value", ["maybe", "2", "disabled"])
def test_auth_disabled_rejects_other_values(clean_env: pytest.MonkeyPatch, value: str) -> None:
    clean_env.setenv("AUTH_DISABLED", value)
    with pytest.raises(ConfigurationError, match="AUTH_DISABLED"):
        load_settings()


def test_auth_settings_from_the_environment(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("AUTH_JWT_SECRET", TEST_SECRET)
    clean_env.setenv("AUTH_JWT_ISSUER", ISSUER)
    clean_env.setenv("AUTH_JWT_AUDIENCE", AUDIENCE)
    clean_env.setenv("AUTH_JWT_LEEWAY", "5")
    clean_env.setenv("AUTH_JWT_PUBLIC_KEY", "")
    settings = load_settings()
    assert settings.auth_jwt_secret == SecretStr(TEST_SECRET)
    assert TEST_SECRET not in repr(settings)
    assert (settings.auth_jwt_issuer, settings.auth_jwt_audience) == (ISSUER, AUDIENCE)
    assert settings.auth_jwt_leeway == 5
    assert settings.auth_jwt_public_key is None


def test_both_keys_are_refused(clean_env: pytest.MonkeyPatch, rsa_key: rsa.RSAPrivateKey) -> None:
    clean_env.setenv("AUTH_JWT_SECRET", TEST_SECRET)
    clean_env.setenv("AUTH_JWT_PUBLIC_KEY", public_pem(rsa_key))
    with pytest.raises(ConfigurationError, match="AUTH_JWT_SECRET or AUTH_JWT_PUBLIC_KEY"):
        load_settings()


def test_short_secret_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="AUTH_JWT_SECRET: must be at least 32 bytes"):
        create_app(Settings(data_dir=tmp_path, auth_jwt_secret=SecretStr("short")))


def test_bad_public_keys_are_refused(tmp_path: Path) -> None:
    cases = {
        "-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----": "not a PEM public key",
        str(tmp_path / "missing.pem"): "neither PEM text nor a readable file",
        public_pem(ec.generate_private_key(ec.SECP256R1())): "must be an RSA public key",
    }
    for value, message in cases.items():
        with pytest.raises(ConfigurationError, match="AUTH_JWT_PUBLIC_KEY") as raised:
            create_app(Settings(data_dir=tmp_path, auth_jwt_public_key=value))
        assert message in str(raised.value)


def test_disabled_wins_over_a_configured_key(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(data_dir=tmp_path, auth_disabled=True, **AUTH_SETTINGS)
    with serve(settings) as client:
        assert client.get(URL).status_code == 200
    assert "configured JWT key is ignored" in caplog.text


# --- OpenAPI --------------------------------------------------------------------------------


def test_openapi_documents_security(anonymous: TestClient) -> None:
    document = anonymous.get("/openapi.json").json()
    scheme = document["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"], scheme["bearerFormat"]) == ("http", "bearer", "JWT")
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            scope = required_scope(method, path)
            responses = operation["responses"]
            if scope is None:
                assert operation["security"] == [], path
                assert "401" not in responses and "403" not in responses, path
                continue
            assert operation["security"] == [{"bearerAuth": [scope]}], path
            for status in ("401", "403"):
                content = responses[status]["content"]["application/problem+json"]
                assert content["schema"] == {"$ref": "#/components/schemas/Problem"}
                assert responses[status]["headers"]["WWW-Authenticate"]["required"] is True
    types = document["x-problem-types"]
    assert "/docs#problem-unauthorized" in types and "/docs#problem-forbidden" in types


def test_docs_page_explains_authentication(anonymous: TestClient) -> None:
    page = anonymous.get("/docs").text
    assert "id='authentication'" in page
    assert f"<code>{READ_SCOPE}</code>" in page
    assert "id='problem-unauthorized'" in page and "id='problem-forbidden'" in page
