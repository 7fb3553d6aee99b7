"""Kafka transport security (TLS, SASL PLAIN / SCRAM) chosen once from the settings.

The settings become one Faust credentials object (the worker's ``broker_credentials``), and
every aiokafka client the bus builds itself (producers, admin, consumers, catalog) gets the
options Faust's own driver derives from that same object, so both kinds of client always
connect the same way.
"""

from __future__ import annotations

import ssl
from typing import Any

from aiokafka.helpers import create_ssl_context
from faust.auth import SASLCredentials, SSLCredentials
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from faust.types.auth import CredentialsT

from esb.errors import ConfigurationError
from esb.settings import Settings


def _ssl_context(settings: Settings) -> ssl.SSLContext:
    context = create_ssl_context(
        cafile=settings.kafka_ssl_cafile, certfile=settings.kafka_ssl_certfile,
        keyfile=settings.kafka_ssl_keyfile)
    context.check_hostname = settings.kafka_ssl_check_hostname
    return context


def kafka_credentials(settings: Settings) -> CredentialsT | None:
    """Faust ``broker_credentials`` for the configured protocol (None for PLAINTEXT)."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    if protocol == "SSL":
        return SSLCredentials(_ssl_context(settings))
    if not (settings.kafka_sasl_mechanism and settings.kafka_sasl_username
            and settings.kafka_sasl_password):
        raise ConfigurationError(
            f"ESB_KAFKA_SECURITY_PROTOCOL={protocol} needs ESB_KAFKA_SASL_MECHANISM, "
            "ESB_KAFKA_SASL_USERNAME and ESB_KAFKA_SASL_PASSWORD")
    return SASLCredentials(
        username=settings.kafka_sasl_username,
        password=settings.kafka_sasl_password.get_secret_value(),
        mechanism=settings.kafka_sasl_mechanism,
        ssl_context=_ssl_context(settings) if protocol == "SASL_SSL" else None)


def kafka_security_options(settings: Settings) -> dict[str, Any]:
    """The security options (protocol, TLS context, SASL) for an aiokafka client."""
    return dict(credentials_to_aiokafka_auth(kafka_credentials(settings)))


def kafka_client_options(settings: Settings) -> dict[str, Any]:
    """``bootstrap_servers`` and the security options for an aiokafka client."""
    return {"bootstrap_servers": settings.bootstrap_servers, **kafka_security_options(settings)}
