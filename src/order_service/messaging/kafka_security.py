"""TLS and SASL for the Kafka clients, and why a secured broker turned us away, in one line.

aiokafka hides the cause of a failed bootstrap (it logs it and raises "Unable to bootstrap"),
so a wrong password and a broker that is merely down look alike, and start-up would retry a
bad setting until STARTUP_TIMEOUT_S. `refusal` connects once more the way the clients do
and names the setting to fix — never its secret.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiokafka.abc import AbstractTokenProvider
from aiokafka.conn import create_conn
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)

from order_service.config import Settings


class KafkaAccessRefused(ValueError):
    """TLS trust or the SASL login failed: waiting will not change it (a settings error)."""


class MskIamTokenProvider(AbstractTokenProvider):  # type: ignore[misc]
    """SASL/OAUTHBEARER tokens signed with the pod's IAM role (IRSA) for Amazon MSK."""

    def __init__(self, region: str) -> None:
        self._region = region

    async def token(self) -> str:
        from aws_msk_iam_sasl_signer import MSKAuthTokenProvider

        token, _expiry_ms = await asyncio.to_thread(
            MSKAuthTokenProvider.generate_auth_token, self._region
        )
        return str(token)


def ssl_context(settings: Settings) -> ssl.SSLContext:
    """The system's trusted CAs, or only KAFKA_SSL_CAFILE's when set (a private cluster's CA)."""
    cafile = settings.kafka_ssl_cafile
    try:
        return ssl.create_default_context(cafile=cafile)
    except ssl.SSLError as exc:  # a file without a PEM certificate in it
        raise KafkaAccessRefused(
            f"KAFKA_SSL_CAFILE={cafile} cannot be loaded: {exc.reason or exc}"
        ) from exc
    except OSError as exc:  # missing, unreadable
        reason = exc.strerror or str(exc)
        raise KafkaAccessRefused(f"KAFKA_SSL_CAFILE={cafile} cannot be loaded: {reason}") from exc


def security_options(settings: Settings) -> dict[str, Any]:
    """aiokafka's TLS and SASL options for KAFKA_SECURITY_PROTOCOL / KAFKA_SASL_MECHANISM."""
    options: dict[str, Any] = {"security_protocol": settings.kafka_security_protocol}
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = ssl_context(settings)
    mechanism = settings.kafka_sasl_mechanism
    if mechanism == "AWS_MSK_IAM":
        if not settings.aws_region:
            raise ValueError("KAFKA_SASL_MECHANISM=AWS_MSK_IAM needs AWS_REGION")
        options["sasl_mechanism"] = "OAUTHBEARER"
        options["sasl_oauth_token_provider"] = MskIamTokenProvider(settings.aws_region)
    elif mechanism is not None:
        password = settings.kafka_sasl_password
        if not settings.kafka_sasl_username or password is None or not len(password):
            raise KafkaAccessRefused(
                f"KAFKA_SASL_MECHANISM={mechanism} needs KAFKA_SASL_USERNAME and "
                "KAFKA_SASL_PASSWORD"
            )
        options["sasl_mechanism"] = mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        options["sasl_plain_password"] = password.get_secret_value()
    return options


@asynccontextmanager
async def refusal_explained(settings: Settings) -> AsyncIterator[None]:
    """A failed bootstrap inside the block comes out as KafkaAccessRefused when TLS trust or
    the SASL login is its cause; any other failure as it was."""
    try:
        yield
    except KafkaConnectionError:
        refused = await refusal(settings)
        if refused is not None:
            raise refused from None
        raise


async def refusal(settings: Settings, timeout_s: float = 5.0) -> KafkaAccessRefused | None:
    """Why the bootstrap servers refuse us, when TLS trust or the SASL login is the cause;
    None when they answer, or fail in a way that may pass (down, restarting, unreachable)."""
    if settings.kafka_security_protocol == "PLAINTEXT":
        return None
    options = security_options(settings)
    for server in settings.kafka_bootstrap_servers.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            async with asyncio.timeout(timeout_s):
                conn = await create_conn(
                    host, int(port), request_timeout_ms=int(timeout_s * 1000), **options
                )
        except ssl.SSLCertVerificationError as exc:
            return KafkaAccessRefused(f"Kafka at {server}: {_untrusted(settings, exc)}")
        except (SaslAuthenticationFailed, UnsupportedSaslMechanismError) as exc:
            return KafkaAccessRefused(f"Kafka at {server}: {_login_refused(settings, exc)}")
        except (OSError, KafkaError, TimeoutError, ValueError):
            continue  # this one is away; another may tell
        conn.close()
        return None  # TLS and the login pass: the failure was something else
    return None


def _untrusted(settings: Settings, exc: ssl.SSLCertVerificationError) -> str:
    why = exc.verify_message or exc.reason or "certificate verify failed"
    cafile = settings.kafka_ssl_cafile
    if cafile:
        return f"its TLS certificate is not trusted ({why}); check KAFKA_SSL_CAFILE={cafile}"
    return (
        f"its TLS certificate is not trusted ({why}); set KAFKA_SSL_CAFILE to the CA that "
        "signed it (without it, only the system's CAs are trusted)"
    )


def _login_refused(settings: Settings, exc: KafkaError) -> str:
    mechanism = settings.kafka_sasl_mechanism
    if isinstance(exc, UnsupportedSaslMechanismError):
        return f"the broker does not offer {mechanism}; check KAFKA_SASL_MECHANISM"
    if mechanism == "AWS_MSK_IAM":
        return (
            "the AWS_MSK_IAM login was refused; check the pod's IAM role (its kafka-cluster "
            "permissions) and AWS_REGION"
        )
    return (
        f"the {mechanism} login of user {settings.kafka_sasl_username!r} was refused; check "
        "KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"
    )
