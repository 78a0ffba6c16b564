"""An Apache Kafka node secured as MSK runs SCRAM: a SASL_SSL listener (SCRAM-SHA-512) with a
certificate from a CA the test makes, beside the PLAINTEXT listener the test itself uses to
arrange and check records independently of the service's security settings."""

from __future__ import annotations

import secrets
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from order_service.devstack.kafka import KafkaBroker, Listener
from order_service.devstack.ports import free_port
from tests.tls import make_ca

USER = "order-service"
JAAS = "org.apache.kafka.common.security.scram.ScramLoginModule required;"


@dataclass(frozen=True)
class SecureKafka:
    broker: KafkaBroker
    secure_bootstrap: str  # SASL_SSL, SCRAM-SHA-512
    plain_bootstrap: str  # PLAINTEXT, for the test's own arranging and reading
    ca_file: Path  # the CA that signed the broker's certificate
    other_ca_file: Path  # a CA that did not
    username: str
    password: str

    def env(self, **overrides: str) -> dict[str, str]:
        """The settings (environment) that reach the secured listener."""
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.secure_bootstrap,
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "KAFKA_SASL_USERNAME": self.username,
            "KAFKA_SASL_PASSWORD": self.password,
            "KAFKA_SSL_CAFILE": str(self.ca_file),
            **overrides,
        }


@pytest.fixture(scope="session")
def secure_kafka() -> Iterator[SecureKafka]:
    base = Path(tempfile.mkdtemp(prefix="order-service-sasl-"))
    ca = make_ca(base / "ca")
    other = make_ca(base / "other-ca", name="a CA the broker does not use")
    host = "127.0.0.1"
    keystore = ca.issue_server(base / "ca", host)
    password = secrets.token_urlsafe(18)
    secure_port = free_port()
    prefix = "listener.name.secure."
    broker = KafkaBroker(
        base / "kafka",
        port=free_port(),
        host=host,
        log_path=base / "kafka.log",
        listeners=(Listener("SECURE", secure_port, "SASL_SSL"),),
        scram_users={USER: password},
        properties={
            f"{prefix}sasl.enabled.mechanisms": "SCRAM-SHA-512",
            f"{prefix}scram-sha-512.sasl.jaas.config": JAAS,
            f"{prefix}ssl.keystore.type": "PEM",
            f"{prefix}ssl.keystore.location": str(keystore),
        },
        heap_mb=384,
    )
    try:
        broker.start()
        yield SecureKafka(
            broker=broker,
            secure_bootstrap=f"{host}:{secure_port}",
            plain_bootstrap=broker.bootstrap_servers,
            ca_file=ca.cert_file,
            other_ca_file=other.cert_file,
            username=USER,
            password=password,
        )
    finally:
        broker.destroy()
        shutil.rmtree(base, ignore_errors=True)  # the keys, the certificates, the log
