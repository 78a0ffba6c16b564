"""Kafka security settings: combinations that can never connect are refused by name, the CA
file is the only trust when set, and the SASL password stays a secret."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from order_service.config import Settings
from order_service.messaging.kafka_client import client_options
from order_service.messaging.kafka_security import KafkaAccessRefused, security_options
from tests.tls import make_ca

SCRAM: dict[str, Any] = {
    "kafka_security_protocol": "SASL_SSL",
    "kafka_sasl_mechanism": "SCRAM-SHA-512",
    "kafka_sasl_username": "order-service",
    "kafka_sasl_password": "s3cret-value",
}


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"kafka_security_protocol": "SASL_SSL"}, "needs KAFKA_SASL_MECHANISM"),
        ({**SCRAM, "kafka_security_protocol": "SSL"}, "needs KAFKA_SECURITY_PROTOCOL=SASL_SSL"),
        # aiokafka's OAUTHBEARER needs a token provider, and the only one here is MSK IAM's.
        ({**SCRAM, "kafka_sasl_mechanism": "OAUTHBEARER"}, "KAFKA_SASL_MECHANISM=AWS_MSK_IAM"),
    ],
)
def test_a_security_setting_that_cannot_connect_is_refused_by_name(
    values: dict[str, Any], named: str
) -> None:
    with pytest.raises(ValidationError, match=named):
        settings(**values)


@pytest.mark.parametrize("missing", ["kafka_sasl_password", "kafka_sasl_username"])
def test_a_login_without_its_user_or_password_is_refused_where_a_client_is_built(
    missing: str,
) -> None:
    """Not in Settings: `migrate` (the chart's hook) reads them without the Kafka secret."""
    configured = settings(**{**SCRAM, missing: None})

    with pytest.raises(KafkaAccessRefused, match="needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASS"):
        client_options(configured)


def test_msk_iam_and_scram_over_tls_are_accepted() -> None:
    settings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="AWS_MSK_IAM")
    settings(**SCRAM)


def test_the_sasl_password_reaches_the_client_and_nothing_else() -> None:
    """Catches the password kept as a plain str (tried: it shows in the Settings repr)."""
    configured = settings(**SCRAM)

    assert "s3cret-value" not in repr(configured)
    assert "s3cret-value" not in str(configured.model_dump())
    options = client_options(configured)
    assert (options["sasl_mechanism"], options["sasl_plain_username"]) == (
        "SCRAM-SHA-512",
        "order-service",
    )
    assert options["sasl_plain_password"] == "s3cret-value"


def test_with_a_ca_file_only_that_ca_is_trusted(tmp_path: Path) -> None:
    ca = make_ca(tmp_path, name="the cluster's own CA")

    private = security_options(settings(**SCRAM, kafka_ssl_cafile=str(ca.cert_file)))
    system = security_options(settings(**SCRAM))

    trusted = [dict(x[0] for x in c["subject"]) for c in private["ssl_context"].get_ca_certs()]
    assert trusted == [{"commonName": "the cluster's own CA"}]
    assert private["ssl_context"].check_hostname and system["ssl_context"].check_hostname
    assert private["security_protocol"] == "SASL_SSL"


@pytest.mark.parametrize("content", [None, b"not a certificate\n"])
def test_a_ca_file_that_cannot_be_loaded_is_named(tmp_path: Path, content: bytes | None) -> None:
    path = tmp_path / "ca.pem"
    if content is not None:
        path.write_bytes(content)

    with pytest.raises(KafkaAccessRefused, match=f"KAFKA_SSL_CAFILE={path} cannot be loaded"):
        security_options(settings(**SCRAM, kafka_ssl_cafile=str(path)))
