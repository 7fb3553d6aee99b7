"""Kafka TLS/SASL settings reach every client the bus builds, from one place (ADR 0018)."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path
from typing import Any, ClassVar

import pytest
from faust.auth import SASLCredentials, SSLCredentials

from esb.app import faust_settings
from esb.consumer_kit import build_consumer
from esb.errors import ConfigurationError
from esb.kafka import ProducerPool, TopicAdmin
from esb.kafka_security import kafka_client_options, kafka_credentials
from esb.settings import Settings


@pytest.fixture(scope="module")
def ca_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ca")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=test-ca", "-keyout", str(out / "ca.key"),
                    "-out", str(out / "ca.pem")], check=True, capture_output=True)
    return out / "ca.pem"


def _settings(**kw: Any) -> Settings:
    return Settings(mode="development", broker="kafka://k1:9093", **kw)


def test_plaintext_by_default() -> None:
    assert kafka_credentials(_settings()) is None
    assert kafka_client_options(_settings()) == {"bootstrap_servers": ["k1:9093"],
                                                 "security_protocol": "PLAINTEXT"}


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
async def test_sasl_ssl_reaches_consumers_and_faust(mechanism: str, ca_file: Path) -> None:
    settings = _settings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism=mechanism,
                         kafka_sasl_username="bus", kafka_sasl_password="s3cret-pw",
                         kafka_ssl_cafile=ca_file)
    creds = kafka_credentials(settings)
    assert isinstance(creds, SASLCredentials)
    assert faust_settings(settings)["broker_credentials"] is not None
    options = kafka_client_options(settings)
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == mechanism
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("bus",
                                                                                "s3cret-pw")
    context = options["ssl_context"]
    assert isinstance(context, ssl.SSLContext) and context.verify_mode == ssl.CERT_REQUIRED
    assert any(c["subject"] == ((("commonName", "test-ca"),),)
               for c in context.get_ca_certs())
    consumer = build_consumer(settings, "g1")
    assert consumer._client._security_protocol == "SASL_SSL"
    assert consumer._client._sasl_mechanism == mechanism
    assert consumer._client._ssl_context is not None
    assert "s3cret-pw" not in repr(settings)


class Recorder:
    """Stands in for an aiokafka client class: records the options it was built with."""

    built: ClassVar[list[dict[str, Any]]] = []

    def __init__(self, **options: Any) -> None:
        Recorder.built.append(options)

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None


async def test_producers_and_admin_are_built_with_the_options(
        ca_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import esb.kafka

    monkeypatch.setattr(esb.kafka, "AIOKafkaProducer", Recorder)
    monkeypatch.setattr(esb.kafka, "AIOKafkaAdminClient", Recorder)
    Recorder.built.clear()
    settings = _settings(kafka_security_protocol="SSL", kafka_ssl_cafile=ca_file)
    assert isinstance(kafka_credentials(settings), SSLCredentials)
    await ProducerPool(settings).get(None)
    await TopicAdmin(settings)._admin()
    assert [b["security_protocol"] for b in Recorder.built] == ["SSL", "SSL"]
    assert all(isinstance(b["ssl_context"], ssl.SSLContext) for b in Recorder.built)


def test_sasl_without_credentials_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="ESB_KAFKA_SASL_USERNAME"):
        kafka_credentials(_settings(kafka_security_protocol="SASL_PLAINTEXT",
                                    kafka_sasl_mechanism="PLAIN"))
