"""The issuer's signing keys (a JWKS document), fetched with httpx and cached in memory.

The token's `kid` is attacker-controlled, so an unknown kid may trigger at most one refetch per
`min_refresh_interval_s`: a flood of random kids costs the issuer one request, not thousands.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import orjson
from jwt import PyJWK
from jwt.exceptions import InvalidAlgorithmError

from order_service.observability.logging import get_logger

log = get_logger(__name__)

# Far above any real key set (Auth0 publishes two keys, ~3 KiB); stops a hostile or broken
# endpoint from making us buffer an unbounded body.
MAX_JWKS_BYTES = 512 * 1024
SIGNING_KEY_TYPES = frozenset({"RSA", "EC", "OKP"})


class AuthUnavailable(Exception):
    """The issuer's keys could not be fetched: the caller cannot be judged, so 503, not 401."""

    def __init__(self, detail: str, retry_after_s: int = 5) -> None:
        super().__init__(detail)
        self.title = "Authentication unavailable"
        self.detail = detail
        self.retry_after_s = retry_after_s


def parse_jwks(body: bytes) -> dict[str, dict[str, Any]]:
    """Signing keys by kid; symmetric (`oct`) and encryption keys are dropped on purpose."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise AuthUnavailable("JWKS document is not JSON") from exc
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise AuthUnavailable("JWKS document has no `keys` list")
    keys: dict[str, dict[str, Any]] = {}
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        kid, kty, use = entry.get("kid"), entry.get("kty"), entry.get("use", "sig")
        if isinstance(kid, str) and kid and kty in SIGNING_KEY_TYPES and use == "sig":
            keys.setdefault(kid, entry)
    if not keys:
        raise AuthUnavailable("JWKS document holds no usable signing key")
    return keys


class JwksCache:
    def __init__(
        self,
        url: str,
        http: httpx.AsyncClient,
        *,
        fetch_timeout_s: float = 3.0,
        min_refresh_interval_s: float = 30.0,
        max_age_s: float = 600.0,
        failure_cooldown_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = url
        self._http = http
        self._timeout = httpx.Timeout(fetch_timeout_s)
        self._min_refresh_s = min_refresh_interval_s
        self._max_age_s = max_age_s
        self._failure_cooldown_s = failure_cooldown_s
        self._clock = clock
        self._lock = asyncio.Lock()
        self._keys: dict[str, dict[str, Any]] | None = None
        self._built: dict[tuple[str, str], PyJWK] = {}
        self._fetched_at = 0.0
        self._attempted_at: float | None = None
        self._failing = False
        self.fetches = 0

    async def signing_key(self, kid: str, alg: str) -> PyJWK | None:
        """The key for `kid`, usable only with `alg`; None when the issuer has no such key.

        Raises AuthUnavailable when the key set cannot be fetched, and a PyJWTError when the
        key exists but does not fit `alg` (e.g. an EC key named by an RS256 token).
        """
        jwk = self._fresh(kid)
        if jwk is None:
            jwk = await self._lookup(kid)
        if jwk is None:
            return None
        built = self._built.get((kid, alg))
        if built is None:
            declared = jwk.get("alg")
            if declared is not None and declared != alg:
                raise InvalidAlgorithmError("token algorithm differs from the key's `alg`")
            # Binding the algorithm to the key stops PyJWT from trusting the header's choice.
            built = PyJWK(jwk, algorithm=alg)
            self._built[(kid, alg)] = built
        return built

    def _fresh(self, kid: str) -> dict[str, Any] | None:
        if self._keys is None or self._clock() - self._fetched_at >= self._max_age_s:
            return None
        return self._keys.get(kid)

    async def _lookup(self, kid: str) -> dict[str, Any] | None:
        # One fetch at a time: concurrent requests wait and then reuse its result.
        async with self._lock:
            if self._should_fetch(kid, self._clock()):
                try:
                    await self._fetch()
                except AuthUnavailable as exc:
                    if self._keys is None or kid not in self._keys:
                        raise
                    log.warning("auth.jwks_refresh_failed_serving_cached", reason=exc.detail)
            if self._keys is None:
                raise AuthUnavailable("the issuer's signing keys could not be fetched yet")
            if kid not in self._keys and self._failing:
                # The issuer may have rotated while unreachable: we cannot call the token bad.
                raise AuthUnavailable("the issuer's signing keys cannot be refreshed")
            return self._keys.get(kid)

    def _should_fetch(self, kid: str, now: float) -> bool:
        if self._attempted_at is None:
            return True
        since_attempt = now - self._attempted_at
        if self._keys is None or now - self._fetched_at >= self._max_age_s:
            return since_attempt >= self._failure_cooldown_s
        if kid in self._keys:
            return False
        # Unknown kid: maybe the issuer rotated its keys, maybe someone is probing.
        return since_attempt >= self._min_refresh_s

    async def _fetch(self) -> None:
        self._attempted_at = self._clock()
        self._failing = True
        self.fetches += 1
        try:
            try:
                body = await self._download()
            except httpx.HTTPError as exc:
                detail = f"JWKS endpoint unreachable ({type(exc).__name__})"
                raise AuthUnavailable(detail) from exc
            keys = parse_jwks(body)
        except AuthUnavailable as exc:
            log.warning("auth.jwks_fetch_failed", url=self._url, reason=exc.detail)
            raise
        self._keys, self._built = keys, {}
        self._fetched_at = self._clock()
        self._failing = False
        log.info("auth.jwks_fetched", url=self._url, kids=sorted(keys))

    async def _download(self) -> bytes:
        headers = {"Accept": "application/json"}
        async with self._http.stream(
            "GET", self._url, headers=headers, timeout=self._timeout
        ) as response:
            if response.status_code != httpx.codes.OK:
                raise AuthUnavailable(f"JWKS endpoint answered HTTP {response.status_code}")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_JWKS_BYTES:
                    raise AuthUnavailable("JWKS document is too large")
        return bytes(body)
