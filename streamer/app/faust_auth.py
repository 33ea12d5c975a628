"""The same Kafka security settings for Faust's own client, which only Faust's commands that start one on
demand use (`streamer send`): the worker starts no Faust client (faust_app.WithoutKafkaClient)."""

from __future__ import annotations

import ssl

import faust
from faust.types.auth import CredentialsT

from streamer.config import Settings


def faust_credentials(settings: Settings) -> CredentialsT | None:
    protocol = settings.security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = ssl.create_default_context(cafile=str(settings.ssl_ca_location) if settings.ssl_ca_location else None)
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    password = settings.sasl_password.get_secret_value() if settings.sasl_password else None
    return faust.SASLCredentials(
        username=settings.sasl_username,
        password=password,
        mechanism=settings.sasl_mechanism or "PLAIN",
        ssl_context=context if protocol == "SASL_SSL" else None,
    )
