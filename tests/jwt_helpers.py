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


@dataclass
class RawJwksServer:
    """A JWKS endpoint on a bare asyncio socket, for the faults an HTTP framework smooths over.

    `silent`: the connection is accepted and the request read, then nothing is said (a hung
    issuer, or one behind a blackholing proxy) until `answer()` or the client gives up.
    `trickle_s`: the body goes out one whitespace byte per `trickle_s` before the document.
    """

    keys: list[dict[str, Any]] = field(default_factory=list)
    silent: bool = False
    trickle_s: float = 0.0
    trickle_bytes: int = 0
    connections: int = 0  # accepted, i.e. fetches started
    waiting: int = 0  # requests read and not answered: the fetches in flight
    port: int = 0
    _server: asyncio.Server | None = None
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/.well-known/jwks.json"

    def publish(self, *keys: SigningKey) -> None:
        self.keys = [key.jwk for key in keys]

    def answer(self, *keys: SigningKey) -> None:
        """Speak again, with these keys, also to the requests held while silent."""
        self.publish(*keys)
        self.silent = False
        self._wake.set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        try:
            await reader.readuntil(b"\r\n\r\n")
            if self.silent and not await self._held_until_answer(reader):
                return
            await self._respond(writer)
        except (OSError, asyncio.IncompleteReadError):
            pass  # the client gave up: that is what a timeout looks like from here
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _held_until_answer(self, reader: asyncio.StreamReader) -> bool:
        self.waiting += 1
        self._wake.clear()
        woken = asyncio.ensure_future(self._wake.wait())
        gone = asyncio.ensure_future(reader.read(1))  # b"" once the client closes
        try:
            await asyncio.wait({woken, gone}, return_when=asyncio.FIRST_COMPLETED)
            return woken.done()
        finally:
            self.waiting -= 1
            woken.cancel()
            gone.cancel()

    async def _respond(self, writer: asyncio.StreamWriter) -> None:
        body = orjson.dumps({"keys": self.keys})
        length = self.trickle_bytes + len(body)
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {length}\r\nConnection: close\r\n\r\n".encode()
        )
        for _ in range(self.trickle_bytes):
            writer.write(b" ")  # JSON allows leading whitespace: a valid, very slow document
            await writer.drain()
            await asyncio.sleep(self.trickle_s)
        writer.write(body)
        await writer.drain()
