"""Scopes from claims, the 403 challenge, and which JWKS entries count as signing keys."""

from __future__ import annotations

from typing import Any

import pytest

from order_service.api.auth import Authenticator, AuthError, Principal, scopes_from_claims
from order_service.api.jwks import AuthUnavailable, parse_jwks
from tests.jwt_helpers import auth_settings


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        ({"scope": "orders:read  orders:write"}, {"orders:read", "orders:write"}),
        ({"scp": ["orders:read"]}, {"orders:read"}),
        ({"scp": "orders:write"}, {"orders:write"}),
        ({"permissions": ["orders:write", 7, ""]}, {"orders:write"}),
        ({"scope": "openid", "permissions": ["orders:read"]}, {"openid", "orders:read"}),
        ({"scope": 42, "scp": {"orders:read": True}}, set()),
        ({}, set()),
    ],
)
def test_scopes_come_from_scope_scp_and_permissions(
    claims: dict[str, Any], expected: set[str]
) -> None:
    assert scopes_from_claims(claims) == frozenset(expected)


async def test_missing_scope_is_403_naming_the_scope_in_the_challenge() -> None:
    authenticator = Authenticator(auth_settings("http://127.0.0.1:9/jwks.json"))
    reader = Principal("alice", frozenset({"orders:read"}))
    authenticator.require(reader, "orders:read")
    with pytest.raises(AuthError) as caught:
        authenticator.require(reader, "orders:write")
    await authenticator.aclose()
    assert caught.value.status == 403
    assert caught.value.title == "Insufficient scope"
    assert caught.value.www_authenticate == (
        'Bearer realm="order-service", error="insufficient_scope", scope="orders:write"'
    )


def test_jwks_keeps_only_asymmetric_signing_keys_with_a_kid() -> None:
    body = (
        b'{"keys": ['
        b'{"kty": "RSA", "kid": "rsa", "n": "x", "e": "AQAB"},'
        b'{"kty": "EC", "kid": "ec", "use": "sig"},'
        b'{"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},'
        b'{"kty": "RSA", "kid": "enc", "use": "enc"},'
        b'{"kty": "RSA", "n": "no-kid"},'
        b'"not-an-object"'
        b"]}"
    )
    assert sorted(parse_jwks(body)) == ["ec", "rsa"]


@pytest.mark.parametrize(
    "body", [b"<html>", b"[]", b'{"keys": {}}', b'{"keys": []}', b'{"keys": [{"kty": "oct"}]}']
)
def test_unusable_jwks_document_is_an_outage_not_a_bad_token(body: bytes) -> None:
    with pytest.raises(AuthUnavailable):
        parse_jwks(body)
