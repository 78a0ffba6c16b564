"""Bearer JWTs verified against a real JWKS endpoint on 127.0.0.1 (no database needed)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from order_service.api.auth import Authenticator, AuthError, AuthUnavailable, Principal
from order_service.devstack.ports import free_port
from tests.jwt_helpers import (
    AUDIENCE,
    FakeClock,
    JwksServer,
    RawJwksServer,
    SigningKey,
    auth_settings,
    claims,
    hmac_token,
    make_key,
    mint,
    unsigned_token,
)

MakeAuth = Callable[..., Authenticator]


@pytest.fixture
async def jwks() -> AsyncIterator[JwksServer]:
    server = JwksServer()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def make_auth(jwks: JwksServer, clock: FakeClock) -> AsyncIterator[MakeAuth]:
    made: list[Authenticator] = []

    def make(url: str | None = None, fetch_timeout_s: float = 3.0) -> Authenticator:
        settings = auth_settings(url or jwks.url, auth_jwks_fetch_timeout_s=fetch_timeout_s)
        authenticator = Authenticator(settings, clock=clock)
        made.append(authenticator)
        return authenticator

    yield make
    for authenticator in made:
        await authenticator.aclose()


@pytest.fixture(scope="module")
def rsa_key() -> SigningKey:
    return make_key("RS256")


async def _rejection(call: Awaitable[Principal]) -> AuthError:
    with pytest.raises(AuthError) as caught:
        await call
    assert caught.value.status == 401
    assert caught.value.www_authenticate is not None
    assert 'error="invalid_token"' in caught.value.www_authenticate
    return caught.value


@pytest.mark.parametrize("alg", ["RS256", "RS512", "PS256", "ES256", "ES384", "ES512", "EdDSA"])
async def test_valid_token_yields_its_subject_and_scopes(
    alg: str, jwks: JwksServer, make_auth: MakeAuth
) -> None:
    key = make_key(alg)
    jwks.publish(key)
    principal = await make_auth().authenticate(f"Bearer {mint(key)}")
    assert principal == Principal("client-123@clients", frozenset({"orders:read", "orders:write"}))


async def test_token_whose_audience_list_includes_ours_is_accepted(
    rsa_key: SigningKey, jwks: JwksServer, make_auth: MakeAuth
) -> None:
    jwks.publish(rsa_key)
    token = mint(rsa_key, claims(aud=["https://tenant.example.auth0.com/userinfo", AUDIENCE]))
    assert (await make_auth().authenticate(f"Bearer {token}")).subject == "client-123@clients"


async def test_token_signed_by_another_key_under_the_same_kid_is_401(
    rsa_key: SigningKey, jwks: JwksServer, make_auth: MakeAuth
) -> None:
    jwks.publish(rsa_key)
    forger = make_key("RS256", kid=rsa_key.kid)
    error = await _rejection(make_auth().authenticate(f"Bearer {mint(forger)}"))
    assert error.detail == "the token signature is invalid"


async def test_token_with_a_tampered_payload_is_401_and_the_detail_never_echoes_it(
    rsa_key: SigningKey, jwks: JwksServer, make_auth: MakeAuth
) -> None:
    jwks.publish(rsa_key)
    header, _, signature = mint(rsa_key, claims(scope="orders:read")).split(".")
    forged_payload = mint(rsa_key, claims(scope="orders:write")).split(".")[1]
    token = f"{header}.{forged_payload}.{signature}"
    error = await _rejection(make_auth().authenticate(f"Bearer {token}"))
    assert forged_payload not in error.detail
    assert forged_payload not in (error.www_authenticate or "")


async def test_token_expired_beyond_the_leeway_is_401(
    rsa_key: SigningKey, jwks: JwksServer, make_auth: MakeAuth
) -> None:
    jwks.publish(rsa_key)
    now = int(time.time())
    token = mint(rsa_key, claims(iat=now - 600, exp=now - 60))
    error = await _rejection(make_auth().authenticate(f"Bearer {token}"))
    assert error.detail == "the token has expired"
    assert 'error_description="the token has expired"' in (error.www_authenticate or "")


async def test_token_expired_within_the_leeway_is_still_accepted(
    rsa_key: SigningKey, jwks: JwksServer, make_auth: MakeAuth
) -> None:
    jwks.publish(rsa_key)
    now = int(time.time())
    token = mint(rsa_key, claims(iat=now - 600, exp=now - 5))
    assert (await make_auth().authenticate(f"Bearer {token}")).subject == "client-123@clients"


async def test_token_without_exp_is_401(
    rsa_key: SigningKey, jwks: JwksServer, make_auth: MakeAuth
) -> None:
    jwks.publish(rsa_key)
    error = await _rejection(make_auth().authenticate(f"Bearer {mint(rsa_key, claims(exp=None))}"))
    assert error.detail == "the token lacks a required claim"


async def test_token_not_valid_before_a_future_nbf_is_401(
    rsa_key: SigningKey, jwks: JwksServer, make_auth: MakeAuth
) -> None:
    jwks.publish(rsa_key)
    token = mint(rsa_key, claims(nbf=int(time.time()) + 600))
    error = await _rejection(make_auth().authenticate(f"Bearer {token}"))
    assert error.detail == "the token is not valid yet"


async def test_token_for_another_audience_is_401(
    rsa_key: SigningKey, jwks: JwksServer, make_auth: MakeAuth
) -> None:
    jwks.publish(rsa_key)
    token = mint(rsa_key, claims(aud="https://billing.example.com"))
    error = await _rejection(make_auth().authenticate(f"Bearer {token}"))
    assert error.detail == "the token is not meant for this API (aud)"


async def test_token_from_another_issuer_is_401(
    rsa_key: SigningKey, jwks: JwksServer, make_auth: MakeAuth
) -> None:
    jwks.publish(rsa_key)
    token = mint(rsa_key, claims(iss="https://evil.example.auth0.com/"))
    error = await _rejection(make_auth().authenticate(f"Bearer {token}"))
    assert error.detail == "the token comes from an untrusted issuer (iss)"


async def test_alg_none_token_naming_a_published_kid_is_401(
    rsa_key: SigningKey, jwks: JwksServer, make_auth: MakeAuth
) -> None:
    jwks.publish(rsa_key)
    for alg in ("none", "None", "NONE"):
        error = await _rejection(
            make_auth().authenticate(f"Bearer {unsigned_token(rsa_key.kid, alg=alg)}")
        )
        assert error.detail == "the token algorithm is not accepted"


async def test_hs256_token_using_the_public_key_pem_as_secret_is_401(
    rsa_key: SigningKey, jwks: JwksServer, make_auth: MakeAuth
) -> None:
    jwks.publish(rsa_key)
    token = hmac_token(rsa_key.kid, rsa_key.public_pem)
    error = await _rejection(make_auth().authenticate(f"Bearer {token}"))
    assert error.detail == "the token algorithm is not accepted"


async def test_symmetric_keys_in_the_jwks_are_never_used(
    jwks: JwksServer, make_auth: MakeAuth
) -> None:
    secret = b"a-shared-secret-that-is-long-enough-for-hs256!"
    jwks.keys = [{"kty": "oct", "kid": "hmac", "k": "YS1zaGFyZWQtc2VjcmV0", "alg": "HS256"}]
    error = await _rejection(make_auth().authenticate(f"Bearer {hmac_token('hmac', secret)}"))
    assert error.detail == "the token algorithm is not accepted"


async def test_rs256_token_naming_an_ec_key_is_401(jwks: JwksServer, make_auth: MakeAuth) -> None:
    ec_key = make_key("ES256")
    jwks.publish(ec_key)
    impostor = SigningKey(kid=ec_key.kid, alg="RS256", private_key=make_key("RS256").private_key)
    await _rejection(make_auth().authenticate(f"Bearer {mint(impostor)}"))


async def test_token_with_an_algorithm_other_than_the_keys_declared_alg_is_401(
    jwks: JwksServer, make_auth: MakeAuth
) -> None:
    key = make_key("RS256")
    jwks.publish(key)
    as_ps256 = SigningKey(kid=key.kid, alg="PS256", private_key=key.private_key)
    await _rejection(make_auth().authenticate(f"Bearer {mint(as_ps256)}"))


async def test_token_without_a_subject_is_401(
    rsa_key: SigningKey, jwks: JwksServer, make_auth: MakeAuth
) -> None:
    jwks.publish(rsa_key)
    await _rejection(make_auth().authenticate(f"Bearer {mint(rsa_key, claims(sub=None))}"))


async def test_missing_scope_is_403_with_an_insufficient_scope_challenge(
    rsa_key: SigningKey, jwks: JwksServer, make_auth: MakeAuth
) -> None:
    jwks.publish(rsa_key)
    authenticator = make_auth()
    principal = await authenticator.authenticate(
        f"Bearer {mint(rsa_key, claims(scope=None, permissions=['orders:read']))}"
    )
    authenticator.require(principal, "orders:read")
    with pytest.raises(AuthError) as caught:
        authenticator.require(principal, "orders:write")
    assert caught.value.status == 403
    assert caught.value.www_authenticate is not None
    assert 'error="insufficient_scope"' in caught.value.www_authenticate
    assert 'scope="orders:write"' in caught.value.www_authenticate


async def test_keys_are_fetched_once_and_then_served_from_the_cache(
    rsa_key: SigningKey, jwks: JwksServer, make_auth: MakeAuth
) -> None:
    jwks.publish(rsa_key)
    authenticator = make_auth()
    for _ in range(5):
        await authenticator.authenticate(f"Bearer {mint(rsa_key)}")
    assert jwks.hits == 1


async def test_key_rotation_is_picked_up_by_refetching_on_an_unknown_kid(
    jwks: JwksServer, make_auth: MakeAuth, clock: FakeClock
) -> None:
    old, new = make_key("RS256"), make_key("RS256")
    jwks.publish(old)
    authenticator = make_auth()
    await authenticator.authenticate(f"Bearer {mint(old)}")
    jwks.publish(new)
    clock.advance(31)
    principal = await authenticator.authenticate(f"Bearer {mint(new)}")
    assert principal.subject == "client-123@clients"
    assert jwks.hits == 2


async def test_an_unknown_kid_is_not_refetched_before_the_refresh_interval(
    jwks: JwksServer, make_auth: MakeAuth, clock: FakeClock
) -> None:
    old, new = make_key("RS256"), make_key("RS256")
    jwks.publish(old)
    authenticator = make_auth()
    await authenticator.authenticate(f"Bearer {mint(old)}")
    jwks.publish(old, new)
    clock.advance(10)
    error = await _rejection(authenticator.authenticate(f"Bearer {mint(new)}"))
    assert error.detail == "the token is signed with an unknown key"
    assert jwks.hits == 1
    clock.advance(21)
    assert (await authenticator.authenticate(f"Bearer {mint(new)}")).subject
    assert jwks.hits == 2


async def test_a_flood_of_unknown_kids_refetches_at_most_once_per_interval(
    rsa_key: SigningKey, jwks: JwksServer, make_auth: MakeAuth, clock: FakeClock
) -> None:
    jwks.publish(rsa_key)
    authenticator = make_auth()
    await authenticator.authenticate(f"Bearer {mint(rsa_key)}")
    forged = [
        mint(SigningKey(f"random-{uuid.uuid4().hex}", "RS256", rsa_key.private_key))
        for _ in range(100)
    ]
    for expected_hits in (2, 3):
        clock.advance(31)
        results = await asyncio.gather(
            *(authenticator.authenticate(f"Bearer {token}") for token in forged),
            return_exceptions=True,
        )
        assert all(isinstance(r, AuthError) and r.status == 401 for r in results)
        assert jwks.hits == expected_hits


async def test_unreachable_jwks_endpoint_raises_auth_unavailable_not_401(
    rsa_key: SigningKey, make_auth: MakeAuth
) -> None:
    authenticator = make_auth(url=f"http://127.0.0.1:{free_port()}/.well-known/jwks.json")
    with pytest.raises(AuthUnavailable):
        await authenticator.authenticate(f"Bearer {mint(rsa_key)}")


async def test_jwks_endpoint_answering_500_raises_auth_unavailable(
    rsa_key: SigningKey, jwks: JwksServer, make_auth: MakeAuth
) -> None:
    jwks.publish(rsa_key)
    jwks.status = 500
    with pytest.raises(AuthUnavailable, match="HTTP 500"):
        await make_auth().authenticate(f"Bearer {mint(rsa_key)}")


async def test_slow_jwks_endpoint_times_out_as_auth_unavailable(
    rsa_key: SigningKey, jwks: JwksServer, make_auth: MakeAuth
) -> None:
    jwks.publish(rsa_key)
    jwks.delay_s = 2.0
    started = time.monotonic()
    with pytest.raises(AuthUnavailable):
        await make_auth(fetch_timeout_s=0.3).authenticate(f"Bearer {mint(rsa_key)}")
    assert time.monotonic() - started < 1.5


async def test_jwks_recovers_after_an_outage_once_the_failure_cooldown_passes(
    rsa_key: SigningKey, jwks: JwksServer, make_auth: MakeAuth, clock: FakeClock
) -> None:
    jwks.publish(rsa_key)
    jwks.status = 503
    authenticator = make_auth()
    with pytest.raises(AuthUnavailable):
        await authenticator.authenticate(f"Bearer {mint(rsa_key)}")
    jwks.status = 200
    with pytest.raises(AuthUnavailable):
        await authenticator.authenticate(f"Bearer {mint(rsa_key)}")
    assert jwks.hits == 1
    clock.advance(3)
    assert (await authenticator.authenticate(f"Bearer {mint(rsa_key)}")).subject
    assert jwks.hits == 2


async def test_cached_keys_keep_working_when_the_issuer_goes_down(
    rsa_key: SigningKey, jwks: JwksServer, make_auth: MakeAuth, clock: FakeClock
) -> None:
    jwks.publish(rsa_key)
    authenticator = make_auth()
    await authenticator.authenticate(f"Bearer {mint(rsa_key)}")
    await jwks.stop()
    clock.advance(601)  # past the cache's max age: a refresh is attempted and fails
    assert (await authenticator.authenticate(f"Bearer {mint(rsa_key)}")).subject
    with pytest.raises(AuthUnavailable):
        await authenticator.authenticate(f"Bearer {mint(make_key('ES256'))}")


async def test_concurrent_requests_on_a_cold_cache_share_one_fetch(
    rsa_key: SigningKey, jwks: JwksServer, make_auth: MakeAuth
) -> None:
    """Catches a cache without single flight: each waiting request fetching on its own."""
    jwks.publish(rsa_key)
    jwks.delay_s = 0.2
    authenticator = make_auth()
    principals = await asyncio.gather(
        *(authenticator.authenticate(f"Bearer {mint(rsa_key)}") for _ in range(20))
    )
    assert {principal.subject for principal in principals} == {"client-123@clients"}
    assert jwks.hits == 1


async def test_a_request_that_gives_up_does_not_cancel_the_fetch_others_share(
    rsa_key: SigningKey, jwks: JwksServer, make_auth: MakeAuth
) -> None:
    """Catches the fetch running in the caller's task: the old code's fetch died with the
    first caller's timeout, and the next caller got 503 (failure cooldown) instead of keys."""
    jwks.publish(rsa_key)
    jwks.delay_s = 0.3
    authenticator = make_auth()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):  # the client went away, or REQUEST_TIMEOUT_S hit
            await authenticator.authenticate(f"Bearer {mint(rsa_key)}")
    assert (await authenticator.authenticate(f"Bearer {mint(rsa_key)}")).subject
    assert jwks.hits == 1


async def test_a_jwks_endpoint_trickling_its_body_is_cut_off_at_the_fetch_timeout(
    rsa_key: SigningKey, make_auth: MakeAuth
) -> None:
    """Catches a fetch bounded per read only (httpx's timeouts): the old code waited as long
    as the endpoint kept sending a byte now and then, here 10 s against a 0.3 s timeout."""
    issuer = RawJwksServer(trickle_s=0.05, trickle_bytes=200)
    await issuer.start()
    try:
        issuer.publish(rsa_key)
        started = time.monotonic()
        with pytest.raises(AuthUnavailable, match="did not answer within"):
            await make_auth(url=issuer.url, fetch_timeout_s=0.3).authenticate(
                f"Bearer {mint(rsa_key)}"
            )
        assert time.monotonic() - started < 1.5
    finally:
        await issuer.stop()


async def test_cached_keys_outlive_failing_refreshes_up_to_max_stale_then_503(
    rsa_key: SigningKey, jwks: JwksServer, make_auth: MakeAuth, clock: FakeClock
) -> None:
    """Catches keys trusted forever while the issuer fails (the old code had no limit), and a
    cache that stays unavailable once the issuer is back."""
    jwks.publish(rsa_key)
    authenticator = make_auth()
    await authenticator.authenticate(f"Bearer {mint(rsa_key)}")
    jwks.status = 503
    clock.advance(601)  # due for a refresh, which fails in the background
    assert (await authenticator.authenticate(f"Bearer {mint(rsa_key)}")).subject
    clock.advance(6 * 3600)  # past max_stale_s since the last successful fetch
    with pytest.raises(AuthUnavailable, match="cannot be refreshed: JWKS endpoint answered"):
        await authenticator.authenticate(f"Bearer {mint(rsa_key)}")
    jwks.status = 200
    clock.advance(3)  # past the failure cooldown
    assert (await authenticator.authenticate(f"Bearer {mint(rsa_key)}")).subject
    assert jwks.hits == 3  # warm-up, the failed refresh (joined past max_stale), recovery


def _without_alg(key: SigningKey) -> dict[str, object]:
    return {name: value for name, value in key.jwk.items() if name != "alg"}


async def test_rsa_key_published_without_alg_verifies_any_rsa_algorithm(
    jwks: JwksServer, make_auth: MakeAuth
) -> None:
    key = make_key("RS256")
    jwks.keys = [_without_alg(key)]
    authenticator = make_auth()
    for alg in ("RS256", "PS256", "RS384"):
        signer = SigningKey(kid=key.kid, alg=alg, private_key=key.private_key)
        assert (await authenticator.authenticate(f"Bearer {mint(signer)}")).subject


async def test_ec_key_published_without_alg_refuses_an_rsa_token(
    jwks: JwksServer, make_auth: MakeAuth
) -> None:
    ec_key = make_key("ES256")
    jwks.keys = [_without_alg(ec_key)]
    impostor = SigningKey(kid=ec_key.kid, alg="RS256", private_key=make_key("RS256").private_key)
    await _rejection(make_auth().authenticate(f"Bearer {mint(impostor)}"))


async def test_oversized_jwks_document_is_refused_as_an_outage(
    rsa_key: SigningKey, jwks: JwksServer, make_auth: MakeAuth
) -> None:
    jwks.keys = [rsa_key.jwk, {"kty": "junk", "padding": "a" * 600_000}]
    with pytest.raises(AuthUnavailable, match="too large"):
        await make_auth().authenticate(f"Bearer {mint(rsa_key)}")
