"""Test-only issuer: keys generated in the test, tokens minted with them, and a real JWKS
endpoint served over HTTP on 127.0.0.1 (aiohttp), whose keys a test can rotate or break."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt
import orjson
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from order_service.config import Settings
from order_service.devstack.ports import free_port

ISSUER = "https://tenant.example.auth0.com/"
AUDIENCE = "https://orders.example.com"

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
_CURVES: dict[str, ec.EllipticCurve] = {
    "ES256": ec.SECP256R1(),
    "ES384": ec.SECP384R1(),
    "ES512": ec.SECP521R1(),
}


@dataclass(frozen=True)
class SigningKey:
    kid: str
    alg: str
    private_key: PrivateKey

    @property
    def jwk(self) -> dict[str, Any]:
        """The public half as the issuer publishes it (Auth0 style: kid, alg, use)."""
        public = self.private_key.public_key()
        if isinstance(public, rsa.RSAPublicKey):
            data = RSAAlgorithm.to_jwk(public, as_dict=True)
        elif isinstance(public, ec.EllipticCurvePublicKey):
            data = ECAlgorithm.to_jwk(public, as_dict=True)
        else:
            data = OKPAlgorithm.to_jwk(public, as_dict=True)
        return {**data, "kid": self.kid, "alg": self.alg, "use": "sig"}

    @property
    def public_pem(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def make_key(alg: str = "RS256", kid: str | None = None) -> SigningKey:
    private: PrivateKey
    if alg.startswith(("RS", "PS")):
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif alg in _CURVES:
        private = ec.generate_private_key(_CURVES[alg])
    elif alg == "EdDSA":
        private = ed25519.Ed25519PrivateKey.generate()
    else:
        raise ValueError(f"no test key for {alg}")
    return SigningKey(kid=kid or f"kid-{uuid.uuid4().hex[:12]}", alg=alg, private_key=private)


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "client-123@clients",
        "iat": now,
        "exp": now + 300,
        "scope": "orders:read orders:write",
    }
    base.update(overrides)
    return {name: value for name, value in base.items() if value is not None}


def mint(key: SigningKey, payload: dict[str, Any] | None = None, **headers: Any) -> str:
    header = {
        name: value for name, value in {"kid": key.kid, **headers}.items() if value is not None
    }
    return jwt.encode(payload or claims(), key.private_key, algorithm=key.alg, headers=header)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segments(header: dict[str, Any], payload: dict[str, Any]) -> str:
    return f"{_b64(orjson.dumps(header))}.{_b64(orjson.dumps(payload))}"


def unsigned_token(kid: str, payload: dict[str, Any] | None = None, alg: str = "none") -> str:
    """`alg: none`, built by hand because a careful library refuses to produce it."""
    return _segments({"alg": alg, "typ": "JWT", "kid": kid}, payload or claims()) + "."


def hmac_token(kid: str, secret: bytes, payload: dict[str, Any] | None = None) -> str:
    """HS256 with a chosen secret: with the public key's PEM as secret this is the classic
    key-confusion forgery (PyJWT refuses to sign it, so it is assembled by hand)."""
    signing_input = _segments({"alg": "HS256", "typ": "JWT", "kid": kid}, payload or claims())
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(mac)}"


def auth_settings(jwks_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "auth_enabled": True,
        "auth_issuer": ISSUER,
        "auth_audience": AUDIENCE,
        "auth_jwks_url": jwks_url,
        "environment": "test",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


@dataclass
class FakeClock:
    """Monotonic time a test can move forward, so refresh intervals need no sleeping."""

    now: float = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class JwksServer:
    """A real HTTP JWKS endpoint; `keys`, `status` and `delay_s` may change mid-test."""

    keys: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    delay_s: float = 0.0
    hits: int = 0
    port: int = 0
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/.well-known/jwks.json"

    def publish(self, *keys: SigningKey) -> None:
        self.keys = [key.jwk for key in keys]

    async def _serve(self, _: web.Request) -> web.Response:
        self.hits += 1
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.status != 200:
            return web.Response(status=self.status, text="issuer trouble")
        return web.Response(body=orjson.dumps({"keys": self.keys}), content_type="application/json")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/.well-known/jwks.json", self._serve)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        self.port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
