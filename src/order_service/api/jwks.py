"""The issuer's signing keys (a JWKS document), fetched with httpx and cached in memory.

A request whose kid is cached never waits for the issuer: keys older than `max_age_s` go on
being served while one background task refreshes them, and a failing refresh leaves them in
service until `max_stale_s` after the last successful fetch. Past that the caller cannot be
judged (503, not 401). Only a cold cache, keys past `max_stale_s` and an unknown kid wait, for
one fetch shared by every waiting request and bounded as a whole by `fetch_timeout_s`.

The token's `kid` is attacker-controlled, so an unknown kid may trigger at most one refetch per
`min_refresh_interval_s`: a flood of random kids costs the issuer one request, not thousands.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import httpx
import orjson
from jwt import PyJWK
from jwt.exceptions import InvalidAlgorithmError

from order_service.observability.logging import get_logger
from order_service.observability.metrics import JWKS_REFRESHES

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
        max_stale_s: float = 6 * 3600.0,
        failure_cooldown_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = url
        self._http = http
        self._fetch_timeout_s = fetch_timeout_s
        self._timeout = httpx.Timeout(fetch_timeout_s)
        self._min_refresh_s = min_refresh_interval_s
        self._max_age_s = max_age_s
        self._max_stale_s = max_stale_s
        self._failure_cooldown_s = failure_cooldown_s
        self._clock = clock
        self._keys: dict[str, dict[str, Any]] | None = None
        self._built: dict[tuple[str, str], PyJWK] = {}
        self._fetched_at = 0.0  # of the last successful fetch
        self._attempted_at = float("-inf")
        self._failure: str | None = None  # why the last fetch failed; None once one succeeds
        self._inflight: asyncio.Task[None] | None = None

    async def signing_key(self, kid: str, alg: str) -> PyJWK | None:
        """The key for `kid`, usable only with `alg`; None when the issuer has no such key.

        Raises AuthUnavailable when no trustworthy key set can be had, and a PyJWTError when
        the key exists but does not fit `alg` (e.g. an EC key named by an RS256 token).
        """
        jwk = self._cached(kid)
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

    async def aclose(self) -> None:
        task, self._inflight = self._inflight, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _usable(self, now: float) -> dict[str, dict[str, Any]] | None:
        if self._keys is None or now - self._fetched_at >= self._max_stale_s:
            return None
        return self._keys

    def _cached(self, kid: str) -> dict[str, Any] | None:
        """The cached key without waiting; a refresh starts in the background when one is due."""
        now = self._clock()
        keys = self._usable(now)
        if keys is None:
            return None
        if now - self._fetched_at >= self._max_age_s and self._may_retry(now):
            self._start_fetch(now)
        return keys.get(kid)

    async def _lookup(self, kid: str) -> dict[str, Any] | None:
        now = self._clock()
        if self._usable(now) is None:
            # Cold, or too stale to trust: the request can only be judged with fresh keys.
            if self._may_retry(now):
                self._start_fetch(now)
            await self._join()
            keys = self._usable(self._clock())
            if keys is None:
                raise AuthUnavailable(self._unavailable_detail())
            return keys.get(kid)
        # Unknown kid: maybe the issuer rotated its keys, maybe someone is probing. A fetch
        # already in flight answers it for free; a new one only once per interval.
        if now - self._attempted_at >= self._min_refresh_s:
            self._start_fetch(now)
        await self._join()
        keys = self._usable(self._clock())
        if keys is None:
            raise AuthUnavailable(self._unavailable_detail())
        if kid not in keys and self._failure is not None:
            # The issuer may have rotated while unreachable: we cannot call the token bad.
            raise AuthUnavailable("the issuer's signing keys cannot be refreshed")
        return keys.get(kid)

    def _may_retry(self, now: float) -> bool:
        if self._inflight is not None:
            return False
        if self._failure is None:
            return True
        return now - self._attempted_at >= self._failure_cooldown_s

    def _start_fetch(self, now: float) -> None:
        if self._inflight is not None:
            return  # single flight: whoever needs keys now joins the fetch under way
        self._attempted_at = now
        self._inflight = asyncio.create_task(self._refresh(), name="jwks-refresh")

    async def _join(self) -> None:
        task = self._inflight
        if task is not None:
            # Shielded: a request that gives up (client gone, request timeout) must not cancel
            # the fetch other requests share.
            await asyncio.shield(task)

    def _unavailable_detail(self) -> str:
        reason = self._failure or "no fetch has completed"
        if self._keys is None:
            return f"the issuer's signing keys could not be fetched: {reason}"
        age_s = self._clock() - self._fetched_at
        return f"the issuer's signing keys are {age_s:.0f} s old and cannot be refreshed: {reason}"

    async def _refresh(self) -> None:
        try:
            keys = await self._fetch()
        except AuthUnavailable as exc:
            self._failure = exc.detail
            JWKS_REFRESHES.labels(outcome="failed").inc()
            log.warning(
                "auth.jwks_fetch_failed",
                url=self._url,
                reason=exc.detail,
                serving_cached=self._usable(self._clock()) is not None,
            )
        else:
            self._keys, self._built = keys, {}
            self._fetched_at = self._clock()
            self._failure = None
            JWKS_REFRESHES.labels(outcome="ok").inc()
            log.info("auth.jwks_fetched", url=self._url, kids=sorted(keys))
        finally:
            self._inflight = None

    async def _fetch(self) -> dict[str, dict[str, Any]]:
        """The issuer's keys, or AuthUnavailable, within `fetch_timeout_s` all told: httpx's
        timeouts apply per read, so an endpoint trickling bytes would otherwise never end."""
        try:
            async with asyncio.timeout(self._fetch_timeout_s):
                return parse_jwks(await self._download())
        except TimeoutError as exc:
            detail = f"JWKS endpoint did not answer within {self._fetch_timeout_s:g} s"
            raise AuthUnavailable(detail) from exc
        except httpx.HTTPError as exc:
            raise AuthUnavailable(f"JWKS endpoint unreachable ({type(exc).__name__})") from exc
        except AuthUnavailable:
            raise
        except Exception as exc:  # nobody awaits a background refresh to see it: keep it here
            log.exception("auth.jwks_fetch_crashed", url=self._url)
            raise AuthUnavailable(f"JWKS fetch failed ({type(exc).__name__})") from exc

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
