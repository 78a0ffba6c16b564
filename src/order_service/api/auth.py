"""Bearer-JWT authentication against the issuer's JWKS (Auth0 or any OIDC issuer), and scopes.

RFC 6750 shapes the 401/403 answers; RFC 8725 (JWT best current practice) shapes the checks:
the algorithm comes from an allow-list of asymmetric ones and is bound to the key, never
taken on the token's word, so `alg: none` and HS256-signed-with-the-public-key both fail.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
from jwt.exceptions import (
    ExpiredSignatureError,
    ImmatureSignatureError,
    InvalidAudienceError,
    InvalidIssuerError,
    InvalidSignatureError,
    MissingRequiredClaimError,
    PyJWTError,
)
from jwt.types import Options

from order_service.api.jwks import AuthUnavailable, JwksCache
from order_service.config import Settings
from order_service.observability.logging import get_logger

__all__ = [
    "ANONYMOUS",
    "SCOPE_ADMIN",
    "SCOPE_READ",
    "SCOPE_STOCK_WRITE",
    "SCOPE_WRITE",
    "AuthError",
    "AuthUnavailable",
    "Authenticator",
    "Principal",
    "scopes_from_claims",
]

log = get_logger(__name__)

SCOPE_READ = "orders:read"
SCOPE_WRITE = "orders:write"
SCOPE_ADMIN = "orders:admin"  # reads every order, not only the caller's own
SCOPE_STOCK_WRITE = "stock:write"
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
LEEWAY_S = 30
MAX_TOKEN_CHARS = 8192  # real access tokens are ~1 KiB; bigger is garbage or an attack
_DECODE_OPTIONS: Options = {
    "require": ["exp", "iss", "aud", "sub"],
    "enforce_minimum_key_length": True,
}


@dataclass(frozen=True)
class Principal:
    subject: str  # JWT `sub`; "anonymous" when auth is disabled
    scopes: frozenset[str]

    @property
    def owner_filter(self) -> str | None:
        """Whose orders this caller may see: its own, or every order (None) with orders:admin."""
        return None if SCOPE_ADMIN in self.scopes else self.subject


# Without auth there is one caller, so it sees everything (also orders from before 0003).
ANONYMOUS = Principal(
    subject="anonymous",
    scopes=frozenset({SCOPE_READ, SCOPE_WRITE, SCOPE_ADMIN, SCOPE_STOCK_WRITE}),
)


class AuthError(Exception):
    """A 401 or 403, ready to become problem+json plus its `WWW-Authenticate` header."""

    def __init__(
        self, status: int, title: str, detail: str, www_authenticate: str | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.www_authenticate = www_authenticate


def scopes_from_claims(claims: Mapping[str, Any]) -> frozenset[str]:
    """Auth0 puts scopes in `scope` (space-separated) and RBAC permissions in `permissions`;
    Azure AD and others use `scp` (list or string). The union of all three is granted."""
    found: set[str] = set()
    for name in ("scope", "scp", "permissions"):
        value = claims.get(name)
        items: Iterable[object] = value.split() if isinstance(value, str) else ()
        if isinstance(value, list):
            items = value
        found.update(item for item in items if isinstance(item, str) and item)
    return frozenset(found)


def _describe(exc: PyJWTError) -> str:
    # Fixed phrases only: they end up in a header, and must never echo token content.
    reasons: list[tuple[type[PyJWTError], str]] = [
        (ExpiredSignatureError, "the token has expired"),
        (ImmatureSignatureError, "the token is not valid yet"),
        (InvalidAudienceError, "the token is not meant for this API (aud)"),
        (InvalidIssuerError, "the token comes from an untrusted issuer (iss)"),
        (InvalidSignatureError, "the token signature is invalid"),
        (MissingRequiredClaimError, "the token lacks a required claim"),
    ]
    for kind, reason in reasons:
        if isinstance(exc, kind):
            return reason
    return "the token is invalid"


class Authenticator:
    def __init__(
        self,
        settings: Settings,
        http: httpx.AsyncClient | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._enabled = settings.auth_enabled
        self._realm = settings.service_name.replace('"', "").replace("\\", "")
        self._owns_http = False
        self._http = http
        self._jwks: JwksCache | None = None
        self._issuer = settings.auth_issuer or ""
        self._audience = settings.auth_audience or ""
        if not self._enabled:
            return
        url = settings.auth_jwks_url
        if not (url and self._issuer and self._audience):
            raise ValueError("AUTH_ENABLED needs AUTH_ISSUER, AUTH_AUDIENCE and AUTH_JWKS_URL")
        if settings.environment == "prod" and not url.startswith("https://"):
            raise ValueError("AUTH_JWKS_URL must be an https:// URL when ENVIRONMENT=prod")
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=settings.auth_jwks_fetch_timeout_s)
            self._owns_http = True
        self._jwks = JwksCache(
            url,
            self._http,
            fetch_timeout_s=settings.auth_jwks_fetch_timeout_s,
            max_age_s=settings.auth_jwks_max_age_s,
            max_stale_s=settings.auth_jwks_max_stale_s,
            clock=clock,
        )

    async def authenticate(self, authorization: str | None) -> Principal:
        if self._jwks is None:
            return ANONYMOUS
        token = self._bearer_token(authorization)
        try:
            header = jwt.get_unverified_header(token)
        except PyJWTError:
            raise self._invalid("the token is not a well-formed JWT") from None
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in ASYMMETRIC_ALGORITHMS:
            raise self._invalid("the token algorithm is not accepted")
        if not isinstance(kid, str) or not kid:
            raise self._invalid("the token names no signing key (kid)")
        try:
            key = await self._jwks.signing_key(kid, alg)
            if key is None:
                raise self._invalid("the token is signed with an unknown key")
            claims = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=self._audience,
                issuer=self._issuer,
                leeway=LEEWAY_S,
                options=_DECODE_OPTIONS,
            )
        except PyJWTError as exc:
            raise self._invalid(_describe(exc)) from None
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise self._invalid("the token has no subject (sub)")
        return Principal(subject=subject, scopes=scopes_from_claims(claims))

    def require(self, principal: Principal, scope: str) -> None:
        if not self._enabled or scope in principal.scopes:
            return
        log.info("auth.insufficient_scope", subject=principal.subject, scope=scope)
        raise AuthError(
            403,
            "Insufficient scope",
            f"this operation needs the `{scope}` scope",
            f'Bearer realm="{self._realm}", error="insufficient_scope", scope="{scope}"',
        )

    async def aclose(self) -> None:
        if self._jwks is not None:
            await self._jwks.aclose()
        if self._owns_http and self._http is not None:
            await self._http.aclose()

    def _bearer_token(self, authorization: str | None) -> str:
        scheme, _, token = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer":
            # RFC 6750 §3.1: no error code when the request carried no bearer credentials.
            raise AuthError(
                401,
                "Authentication required",
                "send an `Authorization: Bearer <access token>` header",
                f'Bearer realm="{self._realm}"',
            )
        token = token.strip()
        if not token or " " in token or len(token) > MAX_TOKEN_CHARS:
            raise self._invalid("the Authorization header is not `Bearer <token>`")
        return token

    def _invalid(self, reason: str) -> AuthError:
        log.info("auth.rejected", reason=reason)
        return AuthError(
            401,
            "Invalid token",
            reason,
            f'Bearer realm="{self._realm}", error="invalid_token", error_description="{reason}"',
        )
