"""What the authenticator decides before any key is fetched: the header, the algorithm, the
disabled mode. The JWKS URL points at a closed port, so reaching the network would surface
as AuthUnavailable instead of the expected 401."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from order_service.api.auth import ANONYMOUS, Authenticator, AuthError
from order_service.config import Settings
from order_service.devstack.ports import free_port
from tests.jwt_helpers import auth_settings, hmac_token, make_key, mint, unsigned_token


@pytest.fixture
async def authenticator() -> AsyncIterator[Authenticator]:
    closed = f"http://127.0.0.1:{free_port()}/.well-known/jwks.json"
    made = Authenticator(auth_settings(closed))
    yield made
    await made.aclose()


async def _reject(authenticator: Authenticator, header: str | None) -> AuthError:
    with pytest.raises(AuthError) as caught:
        await authenticator.authenticate(header)
    assert caught.value.status == 401
    return caught.value


async def test_disabled_auth_returns_anonymous_whatever_the_header() -> None:
    authenticator = Authenticator(Settings(_env_file=None, environment="test"))
    for header in (None, "", "Bearer not-a-jwt", "Basic dXNlcjpwdw=="):
        assert await authenticator.authenticate(header) is ANONYMOUS
    authenticator.require(ANONYMOUS, "orders:write")
    authenticator.require(ANONYMOUS, "orders:read")
    await authenticator.aclose()


def test_anonymous_holds_both_order_scopes() -> None:
    assert ANONYMOUS.subject == "anonymous"
    assert {"orders:read", "orders:write"} <= ANONYMOUS.scopes


@pytest.mark.parametrize("header", [None, "", "   ", "Basic dXNlcjpwdw==", "Token abc"])
async def test_request_without_bearer_credentials_gets_a_bare_challenge(
    authenticator: Authenticator, header: str | None
) -> None:
    error = await _reject(authenticator, header)
    assert error.title == "Authentication required"
    assert error.www_authenticate == 'Bearer realm="order-service"'


@pytest.mark.parametrize("header", ["Bearer", "Bearer ", "Bearer a b", "Bearer " + "x" * 9000])
async def test_malformed_bearer_header_is_an_invalid_token(
    authenticator: Authenticator, header: str
) -> None:
    error = await _reject(authenticator, header)
    assert error.www_authenticate is not None
    assert error.www_authenticate.startswith('Bearer realm="order-service", error="invalid_token"')


async def test_bearer_scheme_is_case_insensitive(authenticator: Authenticator) -> None:
    error = await _reject(authenticator, "bearer not-a-jwt")
    assert error.detail == "the token is not a well-formed JWT"


async def test_garbage_token_is_401_and_not_echoed(authenticator: Authenticator) -> None:
    error = await _reject(authenticator, "Bearer secret-garbage-value")
    assert "secret-garbage-value" not in error.detail
    assert "secret-garbage-value" not in (error.www_authenticate or "")


@pytest.mark.parametrize("alg", ["none", "HS256", "HS384", "HS512"])
async def test_unsigned_and_symmetric_tokens_are_refused_before_any_key_lookup(
    authenticator: Authenticator, alg: str
) -> None:
    error = await _reject(authenticator, f"Bearer {unsigned_token('kid-1', alg=alg)}")
    assert error.detail == "the token algorithm is not accepted"


async def test_hs256_token_keyed_with_a_public_pem_is_refused(
    authenticator: Authenticator,
) -> None:
    key = make_key("RS256")
    error = await _reject(authenticator, f"Bearer {hmac_token(key.kid, key.public_pem)}")
    assert error.detail == "the token algorithm is not accepted"


async def test_token_without_a_kid_is_refused(authenticator: Authenticator) -> None:
    key = make_key("ES256")
    token = mint(key, kid=None)
    error = await _reject(authenticator, f"Bearer {token}")
    assert error.detail == "the token names no signing key (kid)"


def test_prod_refuses_a_plain_http_jwks_url() -> None:
    settings = auth_settings("http://issuer.internal/jwks.json", environment="prod")
    with pytest.raises(ValueError, match="AUTH_JWKS_URL must be an https"):
        Authenticator(settings)
